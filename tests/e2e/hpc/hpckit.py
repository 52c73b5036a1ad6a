"""Helpers of the HPC tests: Unix test users, commands run as them, a JupyterLab run by a rootless runtime and a
kernel cell executed in it, the figures the tests print."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path

import pytest
import requests

from tests.e2e.hub import hubclient  # the hub's API, logins, kernels over websockets
from tests.testkit import ROOT
from vre.workspace import Workspace

HERE = Path(__file__).resolve().parent

# Heavy (exports of a 2.3 GB image, rootless Podman's load, a Slurm cluster and a hub; ~10 min here): opt-in.
OPT_IN = os.environ.get("VRE_TEST_HPC") == "1"
USERS = ("vrehpc1", "vrehpc2")  # made by the fixtures when missing
BENCH = Workspace.of(ROOT).bench / "hpc.json"
READY_LIMIT = 900  # seconds: a deadline for a loaded machine, never a figure asserted


def as_user(user: str, cmd: list[str], timeout: float = 1800, check: bool = True) -> subprocess.CompletedProcess:
    """A command in the user's login environment (HOME, PATH, no variable of ours), as a site's user runs it."""
    proc = subprocess.run(["runuser", "-l", user, "-c", shlex.join(cmd)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        pytest.fail(f"as {user}: {shlex.join(cmd)} exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}"
                    f"\n--- stderr ---\n{proc.stderr[-3000:]}")
    return proc


def home(user: str) -> Path:
    import pwd

    return Path(pwd.getpwnam(user).pw_dir)


def record(key: str, figures: dict) -> None:
    """Figures for the README (.vre/bench/hpc.json), merged per key; printed too."""
    print(f"\n{key}: {json.dumps(figures)}")
    data = json.loads(BENCH.read_text()) if BENCH.is_file() else {}
    data[key] = {**figures, "measured": datetime.now(UTC).isoformat(timespec="seconds")}
    BENCH.parent.mkdir(parents=True, exist_ok=True)
    BENCH.write_text(json.dumps(data, indent=1))


@dataclass
class Lab:
    url: str
    token: str
    proc: subprocess.Popen
    log: Path

    def execute(self, code: str, timeout: float = 300) -> str:
        """Run code in a new kernel of this Lab (REST, then the kernel protocol over its websocket); its stdout."""
        headers = {"Authorization": f"token {self.token}"}
        session = hubclient.plain_session()
        answer = session.post(f"{self.url}/api/kernels", json={}, headers=headers, timeout=120)
        assert answer.status_code == 201, f"starting a kernel: {answer.status_code} {answer.text[:300]}"
        kernel = answer.json()["id"]
        try:
            # The websocket authenticates with the token in its URL, as JupyterLab's own links do.
            result = asyncio.run(hubclient._execute(
                session, f"{self.url}/api/kernels/{kernel}/channels?token={self.token}", code, timeout))
        finally:
            session.delete(f"{self.url}/api/kernels/{kernel}", headers=headers, timeout=60)
        assert result["status"] == "ok", f"the kernel cell failed:\n{result['error']}\n{result['stderr']}"
        return result["stdout"]


@contextmanager
def lab_as(user: str, cmd: list[str], port: int, token: str, log: Path, stop: list[str] | None = None):
    """JupyterLab started by `cmd` (a runtime's command line) as the user; ready once /api/status answers."""
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(["runuser", "-l", user, "-c", shlex.join(cmd)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        started = time.monotonic()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the Lab exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/api/status", headers={"Authorization": f"token {token}"},
                                timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() - started > READY_LIMIT:
                pytest.fail(f"the Lab did not answer within {READY_LIMIT} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Lab(url, token, proc, log), time.monotonic() - started
    finally:
        if stop:
            as_user(user, stop, check=False, timeout=120)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def new_token() -> str:
    return secrets.token_hex(16)


# What a kernel cell reports about where it runs; the tests compare it with the host's view of the user.
WHO_AM_I = """
import getpass, json, os, pathlib, rasterio
probe = pathlib.Path.home() / "vre-hpc-probe.txt"
probe.write_text("written from the kernel")
print(json.dumps({"uid": os.getuid(), "user": getpass.getuser(), "home": str(pathlib.Path.home()),
                  "probe": str(probe), "in_image": os.path.exists("/opt/vre/layers.txt"),
                  "gdal": rasterio.__gdal_version__, "slurm_job": os.environ.get("SLURM_JOB_ID")}))
"""
