"""Run the compat suite inside a built image (`vre-compat`, shipped in every image) and read its JUnit report."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from vre import engine


@dataclass
class TestResult:
    __test__ = False  # not a pytest test class

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


def counts(junit: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) from a JUnit XML report; errors count as failures."""
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return total - failed - skipped, failed, skipped


def run_compat(ref: str, *, gpu: bool = False, pytest_args: list[str] = (), workdir: Path = Path(".vre"),
               stream=None) -> TestResult:
    """Run `vre-compat` in a fresh container of `ref`, as the image's default user."""
    result = TestResult(ref=ref, image_id=engine.image_id(ref) or "")
    if not result.image_id:
        raise engine.EngineError(f"image {ref} not found: build it first (vre build)")
    result.log = workdir.resolve() / "logs" / ("test-" + ref.replace("/", "-").replace(":", "-") + ".log")
    result.log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vre-report-") as report_dir:
        Path(report_dir).chmod(0o777)  # written by the image's user (uid 1000)
        args = ["run", "--rm", "-v", f"{report_dir}:/tmp/vre-report"]
        if gpu:
            args += ["--gpus", "all"]
        # Run the exact image id that was tested, so a tag moving meanwhile cannot change what passed.
        args += [result.image_id, "vre-compat", "-v", "-p", "no:cacheprovider",
                 "--junitxml=/tmp/vre-report/junit.xml", *pytest_args]
        _run_logged([engine.client(), *args], result, Path(report_dir) / "junit.xml", stream)
    return result


def _run_logged(cmd: list[str], result: TestResult, junit: Path, stream, cwd: Path | None = None) -> None:
    """Run a test command, its output to result.log (and `stream`), its counts from the JUnit report."""
    started = time.monotonic()
    with result.log.open("w", buffering=1) as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=engine.env(),
                                text=True, errors="replace")
        for line in proc.stdout:
            log.write(line)
            if stream:
                stream(line.rstrip())
        result.exit_code = proc.wait()
    result.seconds = time.monotonic() - started
    if junit.is_file():
        result.passed, result.failed, result.skipped = counts(junit)


# Layers whose images get the host-side browser tests (tests/browser/: Chromium against a running container).
BROWSER_LAYERS = ("desktop", "ide")


def needs_browser(layers) -> bool:
    return any(name in BROWSER_LAYERS for name in layers)


def run_browser(ref: str, root: Path, *, workdir: Path = Path(".vre"), stream=None) -> TestResult:
    """Run the browser tests (tests/browser/, pytest on the host) against `ref`; screenshots in .vre/artifacts/."""
    result = TestResult(ref=ref, image_id=engine.image_id(ref) or "")
    if not result.image_id:
        raise engine.EngineError(f"image {ref} not found: build it first (vre build)")
    result.log = workdir.resolve() / "logs" / ("browser-" + ref.replace("/", "-").replace(":", "-") + ".log")
    result.log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vre-browser-") as report_dir:
        junit = Path(report_dir) / "junit.xml"
        args = [sys.executable, "-m", "pytest", str(root / "tests" / "browser"), "-v", "-p", "no:cacheprovider",
                "--rootdir", str(root), f"--vre-image={ref}", f"--junitxml={junit}"]
        _run_logged(args, result, junit, stream, cwd=root)
    return result


def merge(first: TestResult, second: TestResult) -> TestResult:
    """One row for an image tested twice (compat suite inside, browser tests outside)."""
    return TestResult(ref=first.ref, image_id=first.image_id, passed=first.passed + second.passed,
                      failed=first.failed + second.failed, skipped=first.skipped + second.skipped,
                      seconds=first.seconds + second.seconds,
                      exit_code=first.exit_code if first.exit_code != 0 else second.exit_code, log=first.log)


@dataclass
class Verdict:
    """The test verdict on one image id, kept in .vre/tested/<id>.json: `vre publish` pushes an image only when
    the verdict on its current id is a complete, passing run."""

    image_id: str
    ref: str
    ok: bool
    complete: bool  # the whole suite ran: no pytest selection, browser tests included where the image needs them
    tested_at: str
    compat: dict
    browser: dict | None = None
    pytest_args: list[str] | None = None
    gpu: bool = False


def _verdict_path(workdir: Path, image_id: str) -> Path:
    return workdir / "tested" / (image_id.removeprefix("sha256:") + ".json")


def _summary(result: TestResult) -> dict:
    return {"passed": result.passed, "failed": result.failed, "skipped": result.skipped,
            "exit_code": result.exit_code, "seconds": round(result.seconds, 1), "log": str(result.log or "")}


def record(workdir: Path, compat: TestResult, browser: TestResult | None, *, complete: bool,
           pytest_args: list[str] = (), gpu: bool = False) -> Path | None:
    """Keep the verdict of a test run on its image id. A complete run always counts; a partial run (a selection)
    counts only when it failed: a failure anywhere condemns the image, a partial pass proves nothing."""
    ok = compat.ok and (browser is None or browser.ok)
    # The browser tests run the tag: if it moved to another image meanwhile, they say nothing about this id.
    complete = complete and (browser is None or browser.image_id == compat.image_id)
    if not complete and ok:
        return None
    path = _verdict_path(workdir, compat.image_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    verdict = Verdict(image_id=compat.image_id, ref=compat.ref, ok=ok, complete=complete,
                      tested_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), compat=_summary(compat),
                      browser=_summary(browser) if browser else None, pytest_args=list(pytest_args), gpu=gpu)
    path.write_text(json.dumps(asdict(verdict), indent=2) + "\n")
    return path


def verdict(workdir: Path, image_id: str) -> tuple[Path, Verdict | None]:
    """Where the verdict on `image_id` is kept, and the verdict (None: never tested)."""
    path = _verdict_path(workdir, image_id)
    return path, Verdict(**json.loads(path.read_text())) if path.is_file() else None
