"""Shared fixtures (the repository, a Docker engine, images built through the factory itself), and the markers every
test gets from where it lives: its tier (unit, integration, e2e) and the machinery its folder names (conda, hub)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testkit import ROOT, build_or_fail
from vre import engine, matrix

pytest_plugins = ["tests.testkit.conda_fixtures"]

TIERS = ("unit", "integration", "e2e")
# Folders whose name is a marker of their tests (registered in pyproject.toml).
FOLDER_MARKERS = ("conda", "hub")
# The browser checks that `vre test` runs live in the package; the end-to-end tier runs them too (testpaths).
BROWSER_CHECKS = ROOT / "src" / "vre" / "verify" / "browser" / "checks"


def markers_of(path: Path) -> list[str]:
    """The markers a test gets from its file's place in the repository."""
    path = path.resolve()
    if BROWSER_CHECKS in path.parents:
        return ["e2e"]
    parts = path.relative_to(ROOT / "tests").parts[:-1] if (ROOT / "tests") in path.parents else ()
    return [part for part in parts if part in TIERS or part in FOLDER_MARKERS]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for name in markers_of(item.path):
            item.add_marker(getattr(pytest.mark, name))
        if "docker_engine" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_engine():
    try:
        engine.ping()
    except engine.EngineError as e:
        pytest.skip(f"no Docker engine here: {e}")


@pytest.fixture(scope="session")
def real_matrix() -> matrix.Matrix:
    return matrix.load(ROOT / "images" / "matrix.yaml")


@pytest.fixture(scope="session")
def base_geo(docker_engine, real_matrix) -> str:
    """The debian base-geo image, built from the repository (BuildKit's cache makes a rebuild cheap)."""
    return build_or_fail(real_matrix, ["base-geo/debian"], ROOT / ".vre")["base-geo/debian"]
