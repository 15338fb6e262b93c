"""compose.yaml: valid against the Compose Specification, its references whole, hardened.

check-jsonschema's vendored Compose Specification schema checks fields and types; it does
not follow references, so the tests below check that every `depends_on` names a service,
every named volume and secret is declared, and every interpolated variable is in
.env.example (with no secret value there). Then the hardening of the Sealdrop services,
their health checks and start order, and the commands against the real CLI.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import _parser
from app.settings import Settings
from tests.deploy.files import (
    COMPOSE_FILE,
    SEALDROP_SERVICES,
    Obj,
    compose_variables,
    env_example,
    filled_env_example,
    load_compose,
)

# The variables of .env.example that hold secrets: the example leaves them empty.
SECRET_VARIABLES = ("POSTGRES_PASSWORD", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")
LONG_RUNNING = ("postgres", "redis", "s3", "api", "worker")
ONE_SHOT = ("storage-init", "migrate")


@pytest.fixture(scope="module")
def compose() -> Obj:
    """compose.yaml, interpolated with .env.example filled in."""
    return load_compose(filled_env_example())


@pytest.fixture(scope="module")
def services(compose: Obj) -> dict[str, Obj]:
    """The services of compose.yaml, by name."""
    services_: dict[str, Obj] = compose["services"]
    return services_


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with the Compose Specification's schema, on `path`."""
    command = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(command), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_compose_file_matches_the_compose_specification() -> None:
    result = check_jsonschema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_misspelled_service_field_breaks_the_specification(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE_FILE.read_text().replace("healthcheck:", "helthcheck:", 1))
    assert check_jsonschema(broken).returncode != 0


def test_every_dependency_is_a_defined_service(services: dict[str, Obj]) -> None:
    undefined = {
        f"{name} -> {dependency}"
        for name, service in services.items()
        for dependency in service.get("depends_on", {})
        if dependency not in services
    }
    assert undefined == set()


def test_every_named_volume_is_declared(compose: Obj) -> None:
    declared = set(compose.get("volumes", {}))
    used = {
        volume.split(":", 1)[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/"))
    }
    assert used == declared


def test_every_secret_used_is_declared(compose: Obj) -> None:
    declared = set(compose.get("secrets", {}))
    used = {
        secret if isinstance(secret, str) else secret["source"]
        for service in compose["services"].values()
        for secret in service.get("secrets", [])
    }
    assert used <= declared


def test_every_interpolated_variable_is_in_the_env_example() -> None:
    assert compose_variables() <= set(env_example())


def test_the_env_example_holds_no_secret_value() -> None:
    example = env_example()
    assert {name: example[name] for name in SECRET_VARIABLES} == dict.fromkeys(SECRET_VARIABLES, "")
    assert example["SEALDROP_MASTER_KEYS"] == ""


def test_compose_refuses_to_start_without_the_secrets() -> None:
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        load_compose(env_example())


def test_the_env_file_is_ignored_by_git() -> None:
    ignored = (COMPOSE_FILE.parent / ".gitignore").read_text().splitlines()
    assert ".env" in ignored


@pytest.mark.parametrize("name", SEALDROP_SERVICES)
def test_sealdrop_services_run_unprivileged_on_a_read_only_root(
    services: dict[str, Obj], name: str
) -> None:
    service = services[name]
    assert service["user"].split(":")[0] not in ("0", "root")
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert any(mount.startswith("/tmp:") for mount in service["tmpfs"])


@pytest.mark.parametrize("name", [*SEALDROP_SERVICES, "postgres", "redis", "s3"])
def test_every_image_has_an_explicit_tag_that_is_not_latest(
    services: dict[str, Obj], name: str
) -> None:
    image: str = services[name]["image"]
    tag = image.rpartition(":")[2]
    assert ":" in image
    assert "/" not in tag
    assert tag != "latest"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_a_health_check_and_restart(
    services: dict[str, Obj], name: str
) -> None:
    service = services[name]
    assert service["healthcheck"]["test"][0] == "CMD"
    assert service["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", ONE_SHOT)
def test_one_shot_services_run_once(services: dict[str, Obj], name: str) -> None:
    assert services[name]["restart"] == "no"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_api_and_worker_start_after_migrations_and_buckets(
    services: dict[str, Obj], name: str
) -> None:
    conditions = {dep: c["condition"] for dep, c in services[name]["depends_on"].items()}
    assert conditions == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
        "s3": "service_healthy",
        "migrate": "service_completed_successfully",
        "storage-init": "service_completed_successfully",
    }


def test_the_api_is_published_on_localhost_8000(services: dict[str, Obj]) -> None:
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]


def test_direct_uploads_are_presigned_for_the_s3_port_published_on_localhost(
    services: dict[str, Obj],
) -> None:
    # Part URLs for the in-network name `s3:8333` would not resolve in a browser.
    assert services["s3"]["ports"] == ["127.0.0.1:8333:8333"]
    endpoint = services["api"]["environment"]["SEALDROP_DIRECT_ENDPOINT_URL"]
    assert endpoint == "http://localhost:8333"


def test_the_worker_stop_grace_outlasts_the_job_lease(services: dict[str, Obj]) -> None:
    grace = int(services["worker"]["stop_grace_period"].removesuffix("s"))
    assert grace > Settings.model_fields["job_lease_seconds"].default


@pytest.mark.parametrize("name", SEALDROP_SERVICES)
def test_every_sealdrop_command_is_one_the_cli_accepts(services: dict[str, Obj], name: str) -> None:
    with contextlib.redirect_stderr(io.StringIO()):
        _parser().parse_args(services[name]["command"])


def test_the_worker_health_check_reads_the_heartbeat_the_worker_writes(
    services: dict[str, Obj],
) -> None:
    worker = services["worker"]
    heartbeat = str(_parser().parse_args(worker["command"]).heartbeat_file)
    assert heartbeat in worker["healthcheck"]["test"]
