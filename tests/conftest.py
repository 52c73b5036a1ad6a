"""Shared fixtures: the repository, a Docker engine, and images built through the factory itself."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from vre import engine, matrix
from vre.build import BuildOptions, Progress, build

ROOT = Path(__file__).resolve().parent.parent


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


def build_or_fail(m: matrix.Matrix, keys: list[str], workdir: Path) -> dict[str, str]:
    """Build targets through the factory; fail the test with the build's own error."""
    results = []
    ok = build(m, [m.targets[k] for k in keys], BuildOptions(workdir=workdir), Progress(), results)
    if not ok:
        pytest.fail(f"{results[-1].key}: {results[-1].error}")
    return {r.key: r.ref for r in results}


@pytest.fixture(scope="session")
def real_matrix() -> matrix.Matrix:
    return matrix.load(ROOT / "images" / "matrix.yaml")


@pytest.fixture(scope="session")
def base_geo(docker_engine, real_matrix) -> str:
    """The debian base-geo image, built from the repository (BuildKit's cache makes a rebuild cheap)."""
    return build_or_fail(real_matrix, ["base-geo/debian"], ROOT / ".vre")["base-geo/debian"]


def mini_repo(tmp: Path, layers: dict[str, dict[str, str]], parents: dict[str, str] | None = None) -> Path:
    """A throwaway repository with the real foundation and layer Dockerfile and the given debian layers.

    `layers` maps an image name to its files (apt.txt, requirements.txt, postBuild, start ...).
    """
    shutil.copytree(ROOT / "images" / "foundation", tmp / "images" / "foundation")
    shutil.copy(ROOT / "images" / "layer.Dockerfile", tmp / "images" / "layer.Dockerfile")
    shutil.copytree(ROOT / "compat-tests", tmp / "compat-tests",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    images = {}
    for name, files in layers.items():
        spec = tmp / "environments" / "debian" / name
        spec.mkdir(parents=True)
        for file, text in files.items():
            (spec / file).write_text(textwrap.dedent(text))
            if file == "postBuild":
                (spec / file).chmod(0o755)
        images[name] = {"flavors": ["debian"], **({"parent": parents[name]} if parents and name in parents else {})}
    # Same name and base as the real matrix: the foundation and the base come from the build cache.
    spec = yaml.safe_load((ROOT / "images" / "matrix.yaml").read_text())
    spec["flavors"] = {"debian": spec["flavors"]["debian"]}
    spec["images"] = images
    (tmp / "images" / "matrix.yaml").write_text(yaml.safe_dump(spec))
    return tmp
