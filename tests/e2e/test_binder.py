"""The Binder template (templates/binder/) built by real repo2docker FROM a locally built eo-vre image, and run the
way repo2docker runs what it builds (`jupyter notebook --ip=0.0.0.0 --port=N --NotebookApp.default_url=/lab`, with
its NB_USER/NB_UID build args): JupyterLab answers, a kernel runs code, and nothing was pulled from a registry."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.hub.hubclient import _execute, free_port, plain_session
from tests.testkit import ROOT
from vre import engine

REPO2DOCKER = shutil.which("repo2docker")
pytestmark = pytest.mark.skipif(REPO2DOCKER is None, reason="repo2docker is not installed (`make setup` installs "
                                                            "jupyter-repo2docker 2024.7.0 with the test extras)")
PROBE = "import json, os; from osgeo import gdal; print(json.dumps({'uid': os.getuid(), 'gdal': gdal.__version__, " \
        "'readme': os.path.isfile(os.path.expanduser('~/README.md'))}))"


def _pulls(since: str, until: str) -> list[str]:
    """Image pulls the engine reported between two of its own timestamps."""
    out = engine.docker("events", "--since", since, "--until", until, "--filter", "type=image", "--filter",
                        "event=pull", "--format", "{{.Actor.ID}}").stdout.decode()
    return out.split()


def _engine_time() -> str:
    return engine.docker("info", "--format", "{{.SystemTime}}").stdout.decode().strip()


def test_repo2docker_builds_and_runs_the_template(base_geo, real_matrix, tmp_path):
    repo = shutil.copytree(ROOT / "templates" / "binder", tmp_path / "repo")
    tag = f"{real_matrix.spec.name}-binder/template:test"
    name = f"{real_matrix.spec.name}-binder-test-{uuid.uuid4().hex[:8]}"
    (tmp_path / "repo2docker_config.py").write_text(f"c.Repo2Docker.extra_run_kwargs = {{'name': {name!r}}}\n")
    port, token = free_port(), uuid.uuid4().hex
    started = _engine_time()
    log = (tmp_path / "repo2docker.log").open("w")  # a file, not a pipe: the server's log must never block it
    # What BinderHub asks of repo2docker (user jovyan, uid 1000); the FROM image is the one this run built.
    proc = subprocess.Popen([REPO2DOCKER, "--config", str(tmp_path / "repo2docker_config.py"), "--user-id", "1000",
                             "--user-name", "jovyan", "--image-name", tag, "--build-arg", f"EO_VRE_IMAGE={base_geo}",
                             "-e", f"JUPYTER_TOKEN={token}", "-p", f"127.0.0.1:{port}:8888", str(repo)],
                            stdout=log, stderr=subprocess.STDOUT)
    session = plain_session()
    session.headers["Authorization"] = f"token {token}"
    url = f"http://127.0.0.1:{port}"
    try:
        status = _wait_up(proc, session, url, tmp_path / "repo2docker.log")
        assert status.get("started"), status
        lab = session.get(f"{url}/lab", timeout=60)
        assert lab.status_code == 200 and "JupyterLab" in lab.text, f"/lab: {lab.status_code} {lab.text[:300]}"
        home = session.get(url + "/", timeout=60, allow_redirects=False)
        assert urlsplit(home.headers.get("Location", "")).path == "/lab", \
            f"/ redirects to {home.headers.get('Location')!r}, not repo2docker's default_url /lab"
        kernel = session.post(f"{url}/api/kernels", json={}, timeout=120)
        assert kernel.status_code == 201, f"POST /api/kernels: {kernel.status_code} {kernel.text[:300]}"
        channels = f"{url}/api/kernels/{kernel.json()['id']}/channels?token={token}"
        result = asyncio.run(_execute(session, channels, PROBE, 300))
        assert result["status"] == "ok", f"the kernel failed:\n{result['error']}\n{result['stderr']}"
        facts = json.loads(result["stdout"].strip().splitlines()[-1])
        assert facts["uid"] == 1000 and facts["readme"], facts  # jovyan, with the repository in its home
        assert facts["gdal"].startswith("3."), facts
        command = engine.docker("inspect", "--format", "{{json .Config.Cmd}}", name).stdout.decode()
        assert json.loads(command)[:2] == ["jupyter", "notebook"], f"repo2docker ran {command}"
    finally:
        # repo2docker's main thread reads the container's log stream until it ends, then removes the container and
        # exits. A ^C (SIGINT) is not always seen there: once it got no reaction in 120 s, its log waiting for a next
        # line that never came. Stopping the container ends the stream, whatever the signals.
        engine.docker("stop", name, check=False)
        try:
            proc.wait(timeout=120)
        finally:  # nothing of a failed run left behind (its container would keep running)
            if proc.poll() is None:
                proc.kill()
            log.close()
            engine.docker("rm", "-f", name, check=False)
            engine.docker("rmi", tag, check=False)
    assert not _pulls(started, _engine_time()), "the engine pulled an image while repo2docker built the template"
    print((tmp_path / "repo2docker.log").read_text()[-4000:])


def _wait_up(proc: subprocess.Popen, session, url: str, log: Path, timeout: float = 900) -> dict:
    """The server's /api/status once it answers; fails with repo2docker's output if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"repo2docker exited {proc.returncode} before the server answered:\n{log.read_text()[-4000:]}")
        try:
            answer = session.get(f"{url}/api/status", timeout=5)
            if answer.status_code == 200:
                return answer.json()
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"no answer from {url} within {timeout} s")
