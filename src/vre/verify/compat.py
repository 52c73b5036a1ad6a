"""The compat suite (`vre-compat`, in every image) run in a fresh container of an image, with its counts."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vre import engine
from vre.verify.junit import counts
from vre.workspace import Workspace

Stream = Callable[[str], None]


@dataclass
class SuiteResult:
    """One run of a test suite against an image."""

    ref: str
    image_id: str = ""
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    exit_code: int = -1
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.failed == 0 and self.passed > 0


def started(ref: str, workspace: Workspace, kind: str) -> SuiteResult:
    """A result for a run of `kind` (test, browser) on `ref`, its log ready; EngineError when the image is missing."""
    result = SuiteResult(ref=ref, image_id=engine.image_id(ref) or "")
    if not result.image_id:
        raise engine.EngineError(f"image {ref} not found: build it first (vre build)")
    result.log = workspace.log(f"{kind}-{ref}")
    result.log.parent.mkdir(parents=True, exist_ok=True)
    return result


def run_compat(ref: str, workspace: Workspace, *, gpu: bool = False, pytest_args: Sequence[str] = (),
               stream: Stream | None = None) -> SuiteResult:
    """Run `vre-compat` in a fresh container of `ref`, as the image's default user."""
    result = started(ref, workspace, "test")
    with tempfile.TemporaryDirectory(prefix="vre-report-") as report_dir:
        Path(report_dir).chmod(0o777)  # written by the image's user (uid 1000)
        args = ["run", "--rm", "-v", f"{report_dir}:/tmp/vre-report"]
        if gpu:
            args += ["--gpus", "all"]
        # Run the exact image id that was tested, so a tag moving meanwhile cannot change what passed.
        args += [result.image_id, "vre-compat", "-v", "-p", "no:cacheprovider",
                 "--junitxml=/tmp/vre-report/junit.xml", *pytest_args]
        run_logged([engine.client(), *args], result, Path(report_dir) / "junit.xml", stream)
    return result


def run_logged(cmd: list[str], result: SuiteResult, junit: Path, stream: Stream | None,
               cwd: Path | None = None) -> None:
    """Run a test command, its output to result.log (and `stream`), its counts from the JUnit report."""
    assert result.log is not None  # set by started()
    began = time.monotonic()
    with result.log.open("w", buffering=1) as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=engine.env(),
                                text=True, errors="replace")
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            log.write(line)
            if stream:
                stream(line.rstrip())
        result.exit_code = proc.wait()
    result.seconds = time.monotonic() - began
    if junit.is_file():
        result.passed, result.failed, result.skipped = counts(junit)


def merge(first: SuiteResult, second: SuiteResult) -> SuiteResult:
    """One row for an image tested twice (compat suite inside, browser checks outside)."""
    return SuiteResult(ref=first.ref, image_id=first.image_id, passed=first.passed + second.passed,
                       failed=first.failed + second.failed, skipped=first.skipped + second.skipped,
                       seconds=first.seconds + second.seconds,
                       exit_code=first.exit_code if first.exit_code != 0 else second.exit_code, log=first.log)
