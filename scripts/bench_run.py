"""Run figures of the benchmark: container start to JupyterLab ready, the compat suite's time, and the hub's
spawn-to-ready figures (written by tests/hub to .vre/bench/hub.json)."""

from __future__ import annotations

import json
import secrets
import statistics
import time
import uuid
from pathlib import Path

import requests

from vre import engine
from vre.test import run_compat

POLL = 0.1  # seconds between two /api/status requests: the figures are a few seconds
READY_LIMIT = 600  # seconds; generous, the machine is shared


def start_to_ready(ref: str, runs: int) -> dict:
    """From `docker run` (the image's default command, `jupyter lab`) to /api/status answering 200, `runs` times."""
    session = requests.Session()
    session.trust_env = False  # loopback: never through a proxy from the environment
    seconds = []
    for _ in range(runs):
        name, token = f"vre-bench-{uuid.uuid4().hex[:12]}", secrets.token_hex(16)
        started = time.monotonic()
        engine.docker("run", "-d", "--name", name, "-p", "127.0.0.1::8888", "-e", f"JUPYTER_TOKEN={token}", ref)
        try:
            port = engine.docker("port", name, "8888/tcp").stdout.decode().split()[0].rsplit(":", 1)[1]
            url = f"http://127.0.0.1:{port}/api/status?token={token}"
            while not _answers(session, url):
                if time.monotonic() - started > READY_LIMIT or not _running(name):
                    logs = engine.docker("logs", "--tail", "30", name, check=False)
                    raise engine.EngineError(f"{ref}: JupyterLab did not answer /api/status:\n"
                                             + (logs.stdout + logs.stderr).decode(errors="replace"))
                time.sleep(POLL)
            seconds.append(time.monotonic() - started)
        finally:
            engine.docker("rm", "-f", name, check=False)
    return {"runs": [round(s, 1) for s in seconds], "median": round(statistics.median(seconds), 1)}


def _answers(session: requests.Session, url: str) -> bool:
    try:
        return session.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _running(name: str) -> bool:
    return engine.docker("inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip() == b"true"


def compat(ref: str, pytest_args: list[str], workdir: Path) -> dict:
    result = run_compat(ref, pytest_args=pytest_args, workdir=workdir)
    return {"seconds": round(result.seconds, 1), "passed": result.passed, "failed": result.failed,
            "skipped": result.skipped, "exit_code": result.exit_code, "selection": pytest_args,
            "log": str(result.log)}


def hub(path: Path, refs: list[str]) -> dict[str, dict]:
    """The hub's figures of these refs, each marked with whether it was measured on the image the tag names now."""
    figures = json.loads(path.read_text()) if path.is_file() else {}
    return {row["ref"]: {**row, "current_image": row["image_id"] == engine.image_id(row["ref"])}
            for row in figures.values() if row["ref"] in refs}
