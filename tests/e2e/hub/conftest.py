"""Fixtures of the hub contract tests: JupyterHub (PyPI) with DockerSpawner and configurable-http-proxy (npm) on the
host, spawning the factory's images as user servers on a Docker network of their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from tests.e2e.hub.hubclient import IMAGES, TEAM_MOUNT, USERS, USERS_GID, Hub, containers, free_port
from tests.testkit import ROOT, build_or_fail

from vre import engine
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
    run_id = uuid.uuid4().hex[:8]
    network = f"eo-vre-hub-{run_id}"
    engine.docker("network", "create", network)
    proc = the_hub = None
    try:
        gateway = engine.docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}",
                                network).stdout.decode().strip()
        runtime = tmp_path_factory.mktemp("hub")
        public_port = free_port()
        settings = {
            "runtime_dir": str(runtime), "password": uuid.uuid4().hex, "token": uuid.uuid4().hex,
            "users": sorted(USERS.values()), "public_port": public_port, "proxy_api_port": free_port(),
            "proxy_command": proxy_command, "gateway": gateway, "hub_port": free_port(gateway),
            "images": hub_images, "prefix": network, "network": network,
            "team_dir": str(team_dir), "team_mount": TEAM_MOUNT,
        }
        settings_file = runtime / "settings.json"
        settings_file.touch(mode=0o600)
        settings_file.write_text(json.dumps(settings))
        log = runtime / "hub.log"
        with log.open("w") as out:
            # Its own process group: the proxy it starts goes with it at the end, and only that.
            proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(HERE / "jupyterhub_config.py")],
                                    cwd=runtime, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, "VRE_HUB_SETTINGS": str(settings_file)})
        the_hub = Hub(f"http://127.0.0.1:{public_port}", settings["token"], settings["password"], hub_images,
                      network, log, proc)
        the_hub.wait_up()
        yield the_hub
    finally:
        if proc is not None:
            shut_down(proc, network, the_hub)
        engine.docker("network", "rm", network, check=False)


def shut_down(proc: subprocess.Popen, prefix: str, the_hub: Hub | None) -> None:
    """Stop every server through the hub, then the hub (which stops its proxy), then whatever is left of them."""
    if the_hub is not None and proc.poll() is None:
        for user in USERS.values():
            try:
                the_hub.stop(user)
            except (RuntimeError, requests.RequestException) as err:
                print(f"stopping {user}'s server: {err}")
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the proxy, if the hub could not stop it
    except ProcessLookupError:
        pass
    proc.wait()
    names = containers(prefix)
    if names:
        engine.docker("rm", "-f", *names, check=False)


