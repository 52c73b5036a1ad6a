"""A failed or interrupted build tags nothing: the local tag keeps pointing at the last good image."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from vre.build import run as vre_build
from vre import engine, matrix
from vre.workspace import Workspace

from tests.testkit import build_or_fail, mini_repo


def test_interrupted_build_leaves_the_tag_alone(docker_engine, tmp_path):
    root = mini_repo(tmp_path, {"test-interrupt": {"apt.txt": "\n", "postBuild": "echo v1\n"}})
    m = matrix.load(root / "images" / "matrix.yaml")
    ref = build_or_fail(m, ["test-interrupt/debian"], root / ".vre")["test-interrupt/debian"]
    good = engine.image_id(ref)

    (root / "environments/debian/test-interrupt/postBuild").write_text("echo building-v2\nsleep 300\n")
    log = root / ".vre" / "logs" / "test-interrupt-debian.log"
    log.unlink()
    proc = subprocess.Popen(["vre", "build", "test-interrupt", "--matrix", str(root / "images/matrix.yaml")],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (log.is_file() and "building-v2" in log.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, "the build never reached postBuild"
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        output = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    assert "interrupted" in output
    assert engine.image_id(ref) == good


@pytest.fixture
def stacked_repo(tmp_path):
    root = mini_repo(tmp_path, {"test-stacked": {"apt.txt": "\n", "postBuild": "date +%s%N > $HOME/.built-at\n"}})
    m = matrix.load(root / "images" / "matrix.yaml")
    return m, m.targets["test-stacked/debian"], vre_build.BuildOptions(workspace=Workspace(root / ".vre"))


def content_not_from_cache(monkeypatch, times: int) -> None:
    """The factory builds the content stage a second time expecting BuildKit's cache (seen missing once, with other
    builds on the engine); built anew, it is not the tested image's content. Simulated with --no-cache there."""
    real_run_build, missed = vre_build._run_build, []

    def run_build(args, *rest, **kw):
        if "content" in args and len(missed) < times:
            missed.append(args)
            args = [*args, "--no-cache"]
        return real_run_build(args, *rest, **kw)

    monkeypatch.setattr(vre_build, "_run_build", run_build)


def test_stages_that_do_not_stack_are_built_again(docker_engine, stacked_repo, monkeypatch):
    m, target, options = stacked_repo
    content_not_from_cache(monkeypatch, times=1)
    results = []
    assert vre_build.build(m, [target], options, vre_build.Progress(), results)
    refs = (vre_build.content_ref(target.ref), target.ref)
    content, image = (engine.inspect(ref)["RootFS"]["Layers"] for ref in refs)
    assert image[:len(content)] == content


def test_stages_that_never_stack_tag_nothing(docker_engine, stacked_repo, monkeypatch):
    m, target, options = stacked_repo
    refs = (target.ref, vre_build.content_ref(target.ref))
    before = [engine.image_id(ref) for ref in refs]  # an earlier run's, or None
    content_not_from_cache(monkeypatch, times=2)
    results = []
    assert not vre_build.build(m, [target], options, vre_build.Progress(), results)
    assert results[-1].status == "failed" and "even with every step run anew" in results[-1].error
    assert [engine.image_id(ref) for ref in refs] == before
