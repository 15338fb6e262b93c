"""Rendered deployment trees, once per session: `kubectl kustomize` takes a moment."""

from __future__ import annotations

import pytest

from tests.deploy.files import TREES, Obj, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Obj]]:
    """The objects of every kustomize tree, by tree name (`base`, `dev`)."""
    return {name: render(path) for name, path in TREES.items()}


@pytest.fixture(params=sorted(TREES))
def tree(request: pytest.FixtureRequest, rendered: dict[str, list[Obj]]) -> list[Obj]:
    """The objects of one tree; tests using it run once per tree."""
    objects: list[Obj] = rendered[request.param]
    return objects


@pytest.fixture
def base(rendered: dict[str, list[Obj]]) -> list[Obj]:
    """The objects of `kubectl kustomize k8s/`."""
    return rendered["base"]
