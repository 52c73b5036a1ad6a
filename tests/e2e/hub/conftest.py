"""Fixtures of the hub contract tests: the platform's JupyterHub configuration (deploy/jupyterhub-docker) with
DockerSpawner and configurable-http-proxy (npm) on the host, spawning the factory's images as user servers on a
Docker network of their own."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.e2e.hub.hubclient import IMAGES, TEAMS, running_hub
from tests.testkit import ROOT, build_or_fail




@pytest.fixture(scope="session")
def hub_images(docker_engine, real_matrix) -> dict[str, str]:
    """alias -> local image ref, built through the factory (from BuildKit's cache when nothing changed)."""
    refs = build_or_fail(real_matrix, list(IMAGES.values()), ROOT / ".vre")
    return {alias: refs[key] for alias, key in IMAGES.items()}


@pytest.fixture(scope="session")
def teams_root(tmp_path_factory) -> Path:
    """The host folder of the teams' folders (the hub makes each team's folder in it, as a platform prepares it)."""
    return tmp_path_factory.mktemp("teams")


@pytest.fixture(scope="session")
def team_dir(teams_root) -> Path:
    return teams_root / "eo"


@pytest.fixture(scope="session")
def hub(hub_images, proxy_command, teams_root, tmp_path_factory):
    with running_hub(tmp_path_factory.mktemp("hub"), hub_images, proxy_command, teams_root, TEAMS) as the_hub:
        yield the_hub


@pytest.fixture(scope="module")
def base_geo_hub(base_geo, proxy_command, teams_root, tmp_path_factory):
    """A hub offering base-geo only, for tests that need nothing else (no desktop or ide build)."""
    with running_hub(tmp_path_factory.mktemp("hub"), {"base-geo": base_geo}, proxy_command, teams_root,
                     TEAMS) as the_hub:
        yield the_hub


@pytest.fixture(scope="module")
def desktop_hub(docker_engine, real_matrix, proxy_command, teams_root, tmp_path_factory):
    """A hub offering desktop only: base-geo with the 3D stack, for tests that need 2D and 3D in one server."""
    ref = build_or_fail(real_matrix, ["desktop/debian"], ROOT / ".vre")["desktop/debian"]
    with running_hub(tmp_path_factory.mktemp("hub"), {"desktop": ref}, proxy_command, teams_root,
                     TEAMS) as the_hub:
        yield the_hub
