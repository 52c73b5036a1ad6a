"""Shared fixtures: the repository, a Docker engine, and images built through the factory itself."""

from __future__ import annotations

import pytest
from vrekit import ROOT, build_or_fail

from vre import engine, matrix


def pytest_collection_modifyitems(items):
    for item in items:
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
