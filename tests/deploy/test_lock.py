"""requirements.lock, which the image installs from, covers pyproject.toml and pins hashes.

When a dependency changes in pyproject.toml, regenerate the lock (the command is in its
first lines; docs/deploy.md, "Building the image") and commit both.
"""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.files import REPO

LOCK = REPO / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", re.MULTILINE)
REGENERATE = "out of date: regenerate requirements.lock with the command in its header"


def locked() -> dict[str, Version]:
    """Every pinned package of the lock, by canonical name."""
    return {canonicalize_name(m[1]): Version(m[2]) for m in _PIN.finditer(LOCK.read_text())}


def project_requirements() -> list[Requirement]:
    """The `[project] dependencies` of pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


@pytest.mark.parametrize("requirement", project_requirements(), ids=str)
def test_every_dependency_is_pinned_within_its_range(requirement: Requirement) -> None:
    pins = locked()
    name = canonicalize_name(requirement.name)
    assert name in pins, f"{requirement.name} is not in requirements.lock: {REGENERATE}"
    assert requirement.specifier.contains(pins[name], prereleases=True), REGENERATE


def test_every_pin_carries_a_hash() -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().split("\n", 2)[2])
    unhashed = [e.split()[0] for e in entries if "==" in e and "--hash=sha256:" not in e]
    assert unhashed == []


def test_the_lock_pins_the_build_tool_the_image_uses_offline() -> None:
    assert "setuptools" in locked()
