"""docker/Dockerfile, parsed: multi-stage, locked dependencies, non-root, a health check.

No Docker engine here, so the image is not built; the parser (dockerfile-parse) reads the
instructions as the builder would, and the tests check what the image promises. The lock
it installs from is checked against pyproject.toml in test_lock.py, and its health check
runs for real in test_native_stack.py.
"""

from __future__ import annotations

import re

import pytest
from dockerfile_parse import DockerfileParser

from app.settings import Settings
from tests.deploy.files import DOCKERFILE, REPO

Instruction = dict[str, str]


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, in order."""
    parser = DockerfileParser(path=str(DOCKERFILE))
    structure: list[Instruction] = parser.structure
    return structure


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions after the last FROM: the image that runs."""
    last_from = max(i for i, ins in enumerate(instructions) if ins["instruction"] == "FROM")
    return instructions[last_from:]


def values(instructions: list[Instruction], name: str) -> list[str]:
    """The values of every `name` instruction."""
    return [ins["value"] for ins in instructions if ins["instruction"] == name]


def test_the_image_is_built_in_stages(instructions: list[Instruction]) -> None:
    assert len(values(instructions, "FROM")) >= 2


def test_the_base_image_is_a_slim_python_with_an_explicit_tag(
    instructions: list[Instruction],
) -> None:
    default = next(v for v in values(instructions, "ARG") if v.startswith("PYTHON_IMAGE="))
    image = default.partition("=")[2]
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image)


def test_the_image_runs_as_a_non_root_user(instructions: list[Instruction]) -> None:
    users = values(final_stage(instructions), "USER")
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_the_image_has_a_health_check(instructions: list[Instruction]) -> None:
    checks = values(final_stage(instructions), "HEALTHCHECK")
    assert len(checks) == 1
    assert "healthcheck.py" in checks[0]
    assert "NONE" not in checks[0]


def test_the_health_check_script_is_copied_into_the_image(instructions: list[Instruction]) -> None:
    copies = values(final_stage(instructions), "COPY")
    assert any(c.startswith("docker/healthcheck.py ") for c in copies)
    assert (REPO / "docker" / "healthcheck.py").is_file()


def test_dependencies_come_from_the_lock_with_hashes(instructions: list[Instruction]) -> None:
    runs = " ".join(values(instructions, "RUN"))
    assert "--require-hashes" in runs
    assert "-r requirements.lock" in runs
    assert "requirements.lock" in " ".join(values(instructions, "COPY"))


def test_python_writes_no_bytecode_at_run_time(instructions: list[Instruction]) -> None:
    env = " ".join(values(final_stage(instructions), "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env


def test_every_sealdrop_variable_the_image_sets_is_a_setting(
    instructions: list[Instruction],
) -> None:
    env = " ".join(values(final_stage(instructions), "ENV"))
    names = {name.removeprefix("SEALDROP_").lower() for name in re.findall(r"SEALDROP_\w+", env)}
    assert names <= set(Settings.model_fields)


def test_the_image_carries_open_container_labels(instructions: list[Instruction]) -> None:
    labels = " ".join(values(final_stage(instructions), "LABEL"))
    for key in ("title", "source", "licenses", "version", "revision"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_the_build_context_admits_only_what_the_image_needs() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    admitted = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert not {".env", ".git", ".venv", "tests"} & admitted
