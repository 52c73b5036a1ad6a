"""A failed or interrupted build tags nothing: the local tag keeps pointing at the last good image."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from vre import build as vre_build
from vre import engine, matrix

from vrekit import build_or_fail, mini_repo


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



def test_a_stage_not_reused_tags_nothing(docker_engine, tmp_path, monkeypatch):
    """The factory builds the content stage a second time expecting BuildKit's cache (seen missing once, with other
    builds on the engine); built anew, it is not the tested image's content. Simulated with --no-cache there."""
    root = mini_repo(tmp_path, {"test-stacked": {"apt.txt": "\n", "postBuild": "date +%s%N > $HOME/.built-at\n"}})
    m = matrix.load(root / "images" / "matrix.yaml")
    target = m.targets["test-stacked/debian"]
    refs = (target.ref, vre_build.content_ref(target.ref))
    before = [engine.image_id(ref) for ref in refs]  # an earlier run's, or None
    real_run_build = vre_build._run_build

    def content_not_from_cache(args, *rest, **kw):
        return real_run_build([*args, "--no-cache"] if "content" in args else args, *rest, **kw)

    monkeypatch.setattr(vre_build, "_run_build", content_not_from_cache)
    results = []
    assert not vre_build.build(m, [target], vre_build.BuildOptions(workdir=root / ".vre"), vre_build.Progress(),
                               results)
    assert results[-1].status == "failed" and "BuildKit did not reuse a stage" in results[-1].error
    assert [engine.image_id(ref) for ref in refs] == before
