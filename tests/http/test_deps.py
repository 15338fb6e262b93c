"""The aliases of `app.http.deps`: every route that takes a link's token takes the one `Token`.

A route declaring its own token type could add a constraint (a `max_length`, a pattern)
that turns a wrongly shaped token into a 400, where DESIGN §6 promises a 404 everywhere.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing
from collections.abc import Iterator
from types import ModuleType

from fastapi import APIRouter
from fastapi.routing import APIRoute

import app.api
import app.web
from app.http.deps import Token


def _routes(*packages: ModuleType) -> Iterator[APIRoute]:
    for package in packages:
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            router = getattr(module, "router", None)
            if isinstance(router, APIRouter):
                yield from (route for route in router.routes if isinstance(route, APIRoute))


TOKEN_ROUTES = [route for route in _routes(app.api, app.web) if "{token}" in route.path]


def test_the_routes_of_files_pages_and_the_link_api_take_a_token() -> None:
    paths = {route.path for route in TOKEN_ROUTES}
    assert {"/d/{token}", "/s/{token}", "/api/v1/links/{token}"} <= paths


def test_every_route_with_a_token_in_its_path_takes_the_shared_token_type() -> None:
    for route in TOKEN_ROUTES:
        hints = typing.get_type_hints(route.endpoint, include_extras=True)
        assert hints["token"] is Token, f"{route.path} declares its own token type"
