"""k8s/overlays/oauth2-proxy: sign-in in front of uploads only; downloads stay anonymous,
and Sealdrop believes the proxy's user header."""

from __future__ import annotations

import pytest

from app.settings import Settings
from tests.deploy.files import Obj, named

INGRESS = "nginx.ingress.kubernetes.io/"


@pytest.fixture
def overlay(rendered: dict[str, list[Obj]]) -> list[Obj]:
    """The objects of `kubectl kustomize k8s/overlays/oauth2-proxy`."""
    return rendered["oauth2-proxy"]


def paths(ingress: Obj) -> set[str]:
    """The paths an Ingress routes."""
    return {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}


def test_only_the_upload_routes_ask_for_a_sign_in(overlay: list[Obj]) -> None:
    signed_in = named(overlay, "Ingress", "sealdrop-signed-in")
    anonymous = named(overlay, "Ingress", "sealdrop")
    annotations = signed_in["metadata"]["annotations"]
    assert annotations[INGRESS + "auth-url"].endswith("/oauth2/auth")
    assert "/oauth2/start" in annotations[INGRESS + "auth-signin"]
    assert annotations[INGRESS + "auth-response-headers"] == "X-Auth-Request-User"
    assert paths(signed_in) == {"/"}
    assert {"/s/", "/d/", "/oauth2"} <= paths(anonymous)
    assert not any(
        key.startswith(INGRESS + "auth-") for key in anonymous["metadata"]["annotations"]
    )


def test_the_signed_in_ingress_streams_like_the_base_one(overlay: list[Obj]) -> None:
    base = named(overlay, "Ingress", "sealdrop")["metadata"]["annotations"]
    signed_in = named(overlay, "Ingress", "sealdrop-signed-in")["metadata"]["annotations"]
    assert {k: v for k, v in signed_in.items() if not k.startswith(INGRESS + "auth-")} == base


def test_sealdrop_takes_the_header_the_ingress_passes_and_would_start(overlay: list[Obj]) -> None:
    data = named(overlay, "ConfigMap", "sealdrop-config")["data"]
    assert data["SEALDROP_UPLOAD_POLICY"] == "proxy"
    assert data["SEALDROP_PROXY_USER_HEADER"] == "X-Auth-Request-User"
    settings = Settings(
        **{
            k.removeprefix("SEALDROP_").lower(): v
            for k, v in data.items()
            if k.startswith("SEALDROP_") and "URL" not in k
        }
    )
    assert settings.trusted_proxy_list
