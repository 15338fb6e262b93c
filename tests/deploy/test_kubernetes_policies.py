"""The rules every container and the Sealdrop objects follow, checked on the rendered trees.

Each container of each tree (base and dev overlay, backends included): runs as non-root,
read-only root filesystem, no privilege escalation, all capabilities dropped, resource
requests and a memory limit, an image with an explicit tag that is not `latest`, a
liveness probe if it runs for good, a readiness probe if it serves a port. Then what is
particular to Sealdrop: the API's probes, replicas and spread, the worker's grace period
against the job lease, the ingress's buffering, body size and access log, the autoscaler
and the disruption budget, and the network policies.
"""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from app.cli import _parser
from app.settings import Settings, parse_size
from tests.deploy.files import (
    LONG_RUNNING_KINDS,
    Obj,
    configmap_value,
    containers,
    is_sealdrop,
    named,
    pod_spec,
    security,
    where,
)

# What the API and the workers may reach, by tree: DNS, then PostgreSQL, Redis, S3.
ALLOWED_EGRESS = {
    "base": {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 6379), ("TCP", 443)},
    "dev": {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 6379), ("TCP", 8333)},
    "oauth2-proxy": {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 6379), ("TCP", 443)},
}
INGRESS = "nginx.ingress.kubernetes.io/"


def violations(tree: list[Obj], rule: str) -> list[str]:
    """The containers of `tree` that break `rule` (a name of RULES)."""
    return [where(w, c) for w, c in containers(tree) if not RULES[rule](w, c)]


def _non_root(workload: Obj, container: Obj) -> bool:
    return security(workload, container, "runAsNonRoot") is True and security(
        workload, container, "runAsUser"
    ) not in (0, "0")


def _read_only_root(workload: Obj, container: Obj) -> bool:
    return container.get("securityContext", {}).get("readOnlyRootFilesystem") is True


def _no_escalation(workload: Obj, container: Obj) -> bool:
    context = container.get("securityContext", {})
    return context.get("allowPrivilegeEscalation") is False and not context.get("privileged")


def _drops_all_capabilities(workload: Obj, container: Obj) -> bool:
    capabilities = container.get("securityContext", {}).get("capabilities", {})
    return capabilities.get("drop") == ["ALL"] and not capabilities.get("add")


def _has_resources(workload: Obj, container: Obj) -> bool:
    resources = container.get("resources", {})
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    return {"cpu", "memory"} <= set(requests) and "memory" in limits


def _pinned_image(workload: Obj, container: Obj) -> bool:
    image: str = container["image"]
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def _liveness_if_long_running(workload: Obj, container: Obj) -> bool:
    return workload["kind"] not in LONG_RUNNING_KINDS or "livenessProbe" in container


def _readiness_if_serving(workload: Obj, container: Obj) -> bool:
    return not container.get("ports") or "readinessProbe" in container


def _seccomp_runtime_default(workload: Obj, container: Obj) -> bool:
    profile = security(workload, container, "seccompProfile") or {}
    return profile.get("type") == "RuntimeDefault"


RULES = {
    "non-root": _non_root,
    "read-only root": _read_only_root,
    "no privilege escalation": _no_escalation,
    "all capabilities dropped": _drops_all_capabilities,
    "resources": _has_resources,
    "explicit tag, not latest": _pinned_image,
    "liveness probe": _liveness_if_long_running,
    "readiness probe": _readiness_if_serving,
    "seccomp RuntimeDefault": _seccomp_runtime_default,
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_container_follows_the_rule(tree: list[Obj], rule: str) -> None:
    assert violations(tree, rule) == []


def test_every_sealdrop_container_has_a_memory_backed_tmp(tree: list[Obj]) -> None:
    missing = []
    for workload, container in containers(tree):
        if not is_sealdrop(container):
            continue
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        tmp = volumes.get(mounts.get("/tmp", ""), {})
        if tmp.get("emptyDir", {}).get("medium") != "Memory":
            missing.append(where(workload, container))
    assert missing == []


def test_every_sealdrop_command_is_one_the_cli_accepts(tree: list[Obj]) -> None:
    refused = []
    for workload, container in containers(tree):
        if not is_sealdrop(container):
            continue
        args = [*container.get("command", []), *container.get("args", [])]
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                _parser().parse_args(args)
        except SystemExit:
            refused.append(f"{where(workload, container)}: {args}")
    assert refused == []


def _api_container(objects: list[Obj]) -> Obj:
    containers_: list[Obj] = pod_spec(named(objects, "Deployment", "sealdrop-api"))["containers"]
    return containers_[0]


def test_the_api_is_ready_on_readyz_and_alive_on_healthz(base: list[Obj]) -> None:
    api = _api_container(base)
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_api_runs_two_replicas_or_more_spread_over_nodes_and_zones(base: list[Obj]) -> None:
    deployment = named(base, "Deployment", "sealdrop-api")
    spread = {c["topologyKey"] for c in pod_spec(deployment)["topologySpreadConstraints"]}
    assert deployment["spec"]["replicas"] >= 2
    assert named(base, "HorizontalPodAutoscaler", "sealdrop-api")["spec"]["minReplicas"] >= 2
    assert spread == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}


def test_the_api_pods_run_no_embedded_worker(tree: list[Obj]) -> None:
    assert configmap_value(tree, "SEALDROP_WORKER") == "off"


def test_the_worker_grace_period_outlasts_the_job_lease(tree: list[Obj]) -> None:
    worker = named(tree, "Deployment", "sealdrop-worker")
    configured = configmap_value(tree, "SEALDROP_JOB_LEASE_SECONDS")
    default: float = Settings.model_fields["job_lease_seconds"].default
    lease = float(configured) if configured else default
    assert pod_spec(worker)["terminationGracePeriodSeconds"] > lease


def test_the_worker_liveness_probe_reads_the_heartbeat_the_worker_writes(base: list[Obj]) -> None:
    worker = pod_spec(named(base, "Deployment", "sealdrop-worker"))["containers"][0]
    args = _parser().parse_args(worker["args"])
    assert isinstance(args, argparse.Namespace)
    assert str(args.heartbeat_file) in worker["livenessProbe"]["exec"]["command"]


def test_the_ingress_streams_uploads_and_downloads_without_buffering(tree: list[Obj]) -> None:
    annotations = named(tree, "Ingress", "sealdrop")["metadata"]["annotations"]
    assert annotations[INGRESS + "proxy-request-buffering"] == "off"
    assert annotations[INGRESS + "proxy-buffering"] == "off"
    assert annotations[INGRESS + "proxy-max-temp-file-size"] == "0"


def test_the_ingress_keeps_no_access_log_of_the_links_it_passes(tree: list[Obj]) -> None:
    # An access log line holds the path, and the path of /s/ and /d/ is a working link.
    annotations = named(tree, "Ingress", "sealdrop")["metadata"]["annotations"]
    assert annotations.get(INGRESS + "enable-access-log") == "false"


def test_the_ingress_admits_the_largest_upload_the_api_accepts(tree: list[Obj]) -> None:
    annotations = named(tree, "Ingress", "sealdrop")["metadata"]["annotations"]
    body_limit = parse_size(annotations[INGRESS + "proxy-body-size"].replace("g", "GiB"))
    configured = configmap_value(tree, "SEALDROP_MAX_UPLOAD_BYTES")
    assert configured is not None
    assert body_limit > parse_size(configured)


def test_the_ingress_allows_an_hour_for_a_transfer(tree: list[Obj]) -> None:
    annotations = named(tree, "Ingress", "sealdrop")["metadata"]["annotations"]
    assert int(annotations[INGRESS + "proxy-read-timeout"]) >= 3600
    assert int(annotations[INGRESS + "proxy-send-timeout"]) >= 3600


def test_the_base_ingress_terminates_tls_for_its_host(base: list[Obj]) -> None:
    spec = named(base, "Ingress", "sealdrop")["spec"]
    assert spec["tls"][0]["hosts"] == [rule["host"] for rule in spec["rules"]]


def test_the_autoscaler_and_the_disruption_budget_cover_the_api(base: list[Obj]) -> None:
    labels = named(base, "Deployment", "sealdrop-api")["spec"]["template"]["metadata"]["labels"]
    hpa = named(base, "HorizontalPodAutoscaler", "sealdrop-api")["spec"]["scaleTargetRef"]
    budget = named(base, "PodDisruptionBudget", "sealdrop-api")["spec"]
    assert (hpa["kind"], hpa["name"]) == ("Deployment", "sealdrop-api")
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["minAvailable"] >= 1


def test_the_migration_runs_as_a_job(base: list[Obj]) -> None:
    job = named(base, "Job", "sealdrop-migrate")
    assert pod_spec(job)["containers"][0]["args"] == ["migrate"]


def test_the_base_holds_no_secret(base: list[Obj]) -> None:
    assert [o["metadata"]["name"] for o in base if o["kind"] == "Secret"] == []


# --------------------------------------------------------------------- network policies


def _selects(policy: Obj, labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", "only In expressions are understood here"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _pod_labels(objects: list[Obj], deployment: str) -> dict[str, str]:
    labels: dict[str, str] = named(objects, "Deployment", deployment)["spec"]["template"][
        "metadata"
    ]["labels"]
    return labels


def _policies(objects: list[Obj], labels: dict[str, str], direction: str) -> list[Obj]:
    return [
        p
        for p in objects
        if p["kind"] == "NetworkPolicy"
        and direction in p["spec"]["policyTypes"]
        and _selects(p, labels)
    ]


@pytest.mark.parametrize("deployment", ["sealdrop-api", "sealdrop-worker"])
def test_every_sealdrop_pod_is_under_a_default_deny(tree: list[Obj], deployment: str) -> None:
    labels = _pod_labels(tree, deployment)
    for direction in ("Ingress", "Egress"):
        rules = [p["spec"].get(direction.lower()) for p in _policies(tree, labels, direction)]
        assert None in rules, f"no default-deny {direction} policy selects {deployment}"


@pytest.mark.parametrize("deployment", ["sealdrop-api", "sealdrop-worker"])
def test_api_and_worker_reach_only_dns_postgres_redis_and_s3(
    request: pytest.FixtureRequest, tree: list[Obj], deployment: str
) -> None:
    reached: set[tuple[str, int]] = set()
    for policy in _policies(tree, _pod_labels(tree, deployment), "Egress"):
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to"), f"{policy['metadata']['name']}: a rule to anywhere"
            assert all(peer.get("ipBlock", {}).get("cidr") != "0.0.0.0/0" for peer in rule["to"]), (
                f"{policy['metadata']['name']}: a rule to anywhere"
            )
            reached |= {(port["protocol"], port["port"]) for port in rule["ports"]}
    tree_name = request.node.callspec.params["tree"]
    assert reached <= ALLOWED_EGRESS[tree_name]
    assert {("TCP", 5432), ("UDP", 53)} <= reached


def test_only_the_ingress_controller_reaches_the_api(tree: list[Obj]) -> None:
    rules = [
        rule
        for policy in _policies(tree, _pod_labels(tree, "sealdrop-api"), "Ingress")
        for rule in policy["spec"].get("ingress", [])
    ]
    sources = [peer["namespaceSelector"]["matchLabels"] for rule in rules for peer in rule["from"]]
    assert sources == [{"kubernetes.io/metadata.name": "ingress-nginx"}]
    assert [port["port"] for rule in rules for port in rule["ports"]] == [8000]


def test_the_worker_accepts_no_connection(tree: list[Obj]) -> None:
    policies = _policies(tree, _pod_labels(tree, "sealdrop-worker"), "Ingress")
    assert [rule for p in policies for rule in p["spec"].get("ingress", [])] == []
