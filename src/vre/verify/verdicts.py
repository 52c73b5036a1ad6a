"""The test verdict on an image id, which `vre publish` requires (kept in the workspace's tested/ folder)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

from vre.verify.compat import SuiteResult
from vre.workspace import Workspace


@dataclass
class Verdict:
    """`vre publish` pushes an image only when the verdict on its current id is a complete, passing run."""

    image_id: str
    ref: str
    ok: bool
    complete: bool  # the whole suite ran: no pytest selection, browser checks included where the image needs them
    tested_at: str
    compat: dict[str, Any]
    browser: dict[str, Any] | None = None
    pytest_args: list[str] | None = None
    gpu: bool = False


def _summary(result: SuiteResult) -> dict[str, Any]:
    return {"passed": result.passed, "failed": result.failed, "skipped": result.skipped,
            "exit_code": result.exit_code, "seconds": round(result.seconds, 1), "log": str(result.log or "")}


def record(workspace: Workspace, compat: SuiteResult, browser: SuiteResult | None, *, complete: bool,
           pytest_args: Sequence[str] = (), gpu: bool = False) -> Path | None:
    """Keep the verdict of a test run on its image id. A complete run always counts; a partial run (a selection)
    counts only when it failed: a failure anywhere condemns the image, a partial pass proves nothing."""
    ok = compat.ok and (browser is None or browser.ok)
    # The browser checks run the tag: if it moved to another image meanwhile, they say nothing about this id.
    complete = complete and (browser is None or browser.image_id == compat.image_id)
    if not complete and ok:
        return None
    path = workspace.verdict(compat.image_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    verdict = Verdict(image_id=compat.image_id, ref=compat.ref, ok=ok, complete=complete,
                      tested_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), compat=_summary(compat),
                      browser=_summary(browser) if browser else None, pytest_args=list(pytest_args), gpu=gpu)
    path.write_text(json.dumps(asdict(verdict), indent=2) + "\n")
    return path


def verdict(workspace: Workspace, image_id: str) -> tuple[Path, Verdict | None]:
    """Where the verdict on `image_id` is kept, and the verdict (None: never tested)."""
    path = workspace.verdict(image_id)
    return path, Verdict(**json.loads(path.read_text())) if path.is_file() else None
