"""Fixtures of the hub contract tests: JupyterHub (PyPI) with DockerSpawner and configurable-http-proxy (npm) on the
host, spawning the factory's images as user servers on a Docker network of their own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.e2e.hub.hubclient import IMAGES, USERS_GID, running_hub
from tests.testkit import ROOT, build_or_fail

from vre.verify.browser import runner

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def hub_images(docker_engine, real_matrix) -> dict[str, str]:
    """alias -> local image ref, built through the factory (from BuildKit's cache when nothing changed)."""
    refs = build_or_fail(real_matrix, list(IMAGES.values()), ROOT / ".vre")
    return {alias: refs[key] for alias, key in IMAGES.items()}


@pytest.fixture(scope="session")
def proxy_command() -> str:
    try:
        runner.npm_ci(HERE, "configurable-http-proxy")
    except runner.BrowserSetupError as err:
        pytest.fail(str(err))
    return str(HERE / "node_modules" / ".bin" / "configurable-http-proxy")


@pytest.fixture(scope="session")
def team_dir(tmp_path_factory) -> Path:
    """The team's folder as a platform prepares it: group `users` (gid 100), group-writable, setgid (files and
    folders made in it keep the group, whatever the uid of their author)."""
    path = tmp_path_factory.mktemp("team")
    os.chown(path, 0, USERS_GID)
    path.chmod(0o2775)
    return path


@pytest.fixture(scope="session")
def hub(hub_images, proxy_command, team_dir, tmp_path_factory):
    with running_hub(hub_images, proxy_command, team_dir, tmp_path_factory.mktemp("hub")) as the_hub:
        yield the_hub


@pytest.fixture(scope="module")
def base_geo_hub(base_geo, proxy_command, team_dir, tmp_path_factory):
    """A hub offering base-geo only, for tests that need nothing else (no desktop or ide build)."""
    with running_hub({"base-geo": base_geo}, proxy_command, team_dir, tmp_path_factory.mktemp("hub")) as the_hub:
        yield the_hub


