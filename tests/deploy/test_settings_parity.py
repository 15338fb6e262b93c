"""The settings the deployment files give Sealdrop are the settings the tests run it with.

The production-mode end-to-end stack (tests/support/production.py) names the `SEALDROP_*`
variables it gives its API and worker processes. The API and worker containers of the
Kubernetes trees and of compose.yaml must get exactly those, plus only the deploy-only
extras listed here with their reason; and every `SEALDROP_*` name anywhere in the
deployment files must be a field of `app.settings.Settings` (a misspelled name would be
silently ignored by pydantic-settings).
"""

from __future__ import annotations

import re

import pytest

from app.settings import Settings
from tests.deploy.files import (
    COMPOSE_FILE,
    K8S,
    Obj,
    containers,
    env_names,
    filled_env_example,
    load_compose,
    sealdrop_names,
    service_env,
    where,
)
from tests.support.production import production_setting_names

# Settings a deployment sets that the loopback test stack has no use for, and why.
DEPLOY_ONLY = {
    "SEALDROP_HOST": "containers listen on 0.0.0.0; the tests on loopback",
    "SEALDROP_PORT": "a fixed container port; the tests pick free ports (--port)",
    "SEALDROP_PUBLIC_URL": "links carry the operator's host; the tests take it from the request",
    "SEALDROP_TRUSTED_PROXIES": "only behind an ingress; the tests talk to uvicorn directly",
    "SEALDROP_MAX_UPLOAD_BYTES": "stated next to the ingress body limit it must stay under",
    "SEALDROP_MAX_TTL": "stated for operators to see; the default (24h)",
    "SEALDROP_JOB_LEASE_SECONDS": "stated beside the worker grace period it must stay under",
    "SEALDROP_SEAL_IN_REQUEST": "stated for operators to see, at its default (false) that the "
    "production tests run; tests/production_stack/test_sealed_in_request.py runs the other",
    "SEALDROP_DIRECT_ENDPOINT_URL": "compose's S3 is `s3:8333` inside its network: clients"
    " reach the published port; the tests' S3 is on loopback for both",
}
# Settings one overlay adds for what it is about, and why.
OVERLAY_ONLY = {
    "oauth2-proxy": {
        "SEALDROP_UPLOAD_POLICY": "the overlay's point: uploaders named by the sign-in proxy",
        "SEALDROP_PROXY_USER_HEADER": "stated beside the ingress's auth-response-headers",
        "SEALDROP_PROXY_DEFAULT_MAX_BYTES_PER_DAY": "a proxy user's first limits",
        "SEALDROP_PROXY_DEFAULT_MAX_LIVE_LINKS": "a proxy user's first limits",
    },
}
ROLES = ("api", "worker")


def k8s_names(objects: list[Obj], role: str) -> set[str]:
    """The SEALDROP_* names the `role` container of a tree gets."""
    found = [
        env_names(objects, container)
        for workload, container in containers(objects)
        if workload["metadata"]["name"] == f"sealdrop-{role}"
    ]
    assert len(found) == 1, f"expected one sealdrop-{role} container"
    return sealdrop_names(found[0])


def compose_names(role: str) -> set[str]:
    """The SEALDROP_* names compose.yaml gives its `role` service."""
    return sealdrop_names(service_env(load_compose(filled_env_example())["services"][role]))


def field_name(variable: str) -> str:
    """`SEALDROP_MAX_TTL` -> `max_ttl`."""
    return variable.removeprefix("SEALDROP_").lower()


def test_the_deploy_only_extras_are_settings() -> None:
    extras = set(DEPLOY_ONLY).union(*OVERLAY_ONLY.values())
    assert {field_name(name) for name in extras} <= set(Settings.model_fields)


@pytest.mark.parametrize("role", ROLES)
def test_kubernetes_gives_the_settings_the_production_tests_use(
    request: pytest.FixtureRequest, tree: list[Obj], role: str
) -> None:
    names = k8s_names(tree, role)
    extras = set(DEPLOY_ONLY) | set(OVERLAY_ONLY.get(request.node.callspec.params["tree"], {}))
    assert production_setting_names() <= names
    assert names - production_setting_names() <= extras


@pytest.mark.parametrize("role", ROLES)
def test_compose_gives_the_settings_the_production_tests_use(role: str) -> None:
    names = compose_names(role)
    assert production_setting_names() <= names
    assert names - production_setting_names() <= set(DEPLOY_ONLY)


def test_every_container_variable_in_the_trees_names_a_setting(tree: list[Obj]) -> None:
    unknown = {
        f"{where(workload, container)}: {name}"
        for workload, container in containers(tree)
        for name in sealdrop_names(env_names(tree, container))
        if field_name(name) not in Settings.model_fields
    }
    assert unknown == set()


def test_every_sealdrop_name_in_the_deployment_files_is_a_setting() -> None:
    files = [COMPOSE_FILE, *K8S.rglob("*.yaml")]
    names = {name for path in files for name in re.findall(r"SEALDROP_\w+", path.read_text())}
    assert {name for name in names if field_name(name) not in Settings.model_fields} == set()
