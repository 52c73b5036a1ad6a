"""Run figures of the benchmark: container start to JupyterLab ready, the compat suite's time, and the hub's
spawn-to-ready figures (written by tests/e2e/hub to .vre/bench/hub.json)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from vre import engine
from vre.verify.browser.runner import start_container  # the browser checks' container: as a hub runs the image
from vre.verify.compat import run_compat
from vre.workspace import Workspace

POLL = 0.1  # seconds between two /api/status requests: the figures are a few seconds


def start_to_ready(ref: str, runs: int) -> dict:
    """From `docker run` (the image's default command, `jupyter lab`) to /api/status answering 200, `runs` times."""
    seconds = []
    for _ in range(runs):
        started = time.monotonic()
        container = start_container(ref, poll=POLL)
        seconds.append(time.monotonic() - started)
        container.remove()
    return {"runs": [round(s, 1) for s in seconds], "median": round(statistics.median(seconds), 1)}


def compat(ref: str, pytest_args: list[str], workspace: Workspace) -> dict:
    result = run_compat(ref, workspace, pytest_args=pytest_args)
    return {"seconds": round(result.seconds, 1), "passed": result.passed, "failed": result.failed,
            "skipped": result.skipped, "exit_code": result.exit_code, "selection": pytest_args,
            "log": str(result.log)}


def hub(path: Path, refs: list[str]) -> dict[str, dict]:
    """The hub's figures of these refs, each marked with whether it was measured on the image the tag names now."""
    figures = json.loads(path.read_text()) if path.is_file() else {}
    return {row["ref"]: {**row, "current_image": row["image_id"] == engine.image_id(row["ref"])}
            for row in figures.values() if row["ref"] in refs}
