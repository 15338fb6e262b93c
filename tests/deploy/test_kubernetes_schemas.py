"""Every object that `kubectl apply -k` would send is valid for the Kubernetes API.

kubernetes-validate holds the API's own OpenAPI schemas; in strict mode a field the
schema does not know (a misspelling) is an error, and an unknown kind or a removed
apiVersion has no schema at all, which counts as a failure too. Checked against the oldest
Kubernetes release the manifests support and against the newest the validator knows.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from tests.deploy.files import SECRET_EXAMPLE, Obj, load_yaml_documents

OLDEST_SUPPORTED = "1.30.0"
VERSIONS = (OLDEST_SUPPORTED, latest_version())


def schema_errors(objects: list[Obj], version: str) -> list[str]:
    """One line per object that fails validation against `version`."""
    errors = []
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(map(str, error.absolute_path))
            errors.append(f"{name}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(f"{name}: {error.message}")
    return errors


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_object_matches_the_kubernetes_schema(tree: list[Obj], version: str) -> None:
    assert schema_errors(tree, version) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_the_secret_example_matches_the_kubernetes_schema(version: str) -> None:
    assert schema_errors(load_yaml_documents(SECRET_EXAMPLE), version) == []


def test_a_misspelled_field_is_reported(base: list[Obj]) -> None:
    api = next(o for o in base if o["kind"] == "Deployment")
    spec = api["spec"]["template"]["spec"]
    broken = {**api, "spec": {**api["spec"], "template": {"spec": {**spec, "contianers": []}}}}
    assert schema_errors([broken], OLDEST_SUPPORTED) != []
