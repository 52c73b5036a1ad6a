"""The command line's one error path: a VreError ends a command with its code; an interrupt always exits 130."""

from __future__ import annotations

import signal

import pytest
import typer
from typer.testing import CliRunner

from tests.testkit import ROOT
from vre import errors
from vre.cli import app
from vre.cli.report import handled
from vre.engine import EngineError
from vre.workspace import Workspace, slug


@pytest.fixture
def no_interrupt(monkeypatch):
    monkeypatch.setattr(errors, "_interrupt", [])


@pytest.fixture
def interrupt(monkeypatch):
    """A SIGINT as the handler records it (the process got one)."""
    monkeypatch.setattr(errors, "_interrupt", [signal.SIGINT])


def exit_code(command) -> int:
    with pytest.raises(typer.Exit) as ended:
        handled(command)()
    return ended.value.exit_code


def test_an_error_exits_with_its_code(no_interrupt, capsys):
    def no_engine() -> None:
        raise EngineError("no Docker engine answers")

    def stale() -> None:
        raise errors.VreError("a lock is stale")

    assert exit_code(no_engine) == errors.USAGE
    assert exit_code(stale) == errors.FAILED
    assert "error: a lock is stale" in capsys.readouterr().err


def test_unknown_image_is_a_usage_error_named_on_stderr(tmp_path):
    result = CliRunner().invoke(app, ["lock", "nope", "--check", "--matrix", str(ROOT / "images" / "matrix.yaml")])
    assert result.exit_code == 2
    assert "error:" in result.stderr and "unknown image 'nope'" in result.stderr
    assert "error:" not in result.stdout


@pytest.mark.parametrize("outcome", ["returned", "failed", "errored", "keyboard"])
def test_an_interrupt_wins_over_what_the_command_reported(interrupt, outcome):
    """SIGINT reaches `docker build` too, which may exit first ("context canceled"): the command then sees a failed
    build, or Python raises KeyboardInterrupt somewhere else. Whatever it saw, the interrupt is what it reports."""

    def command() -> None:
        if outcome == "failed":
            raise typer.Exit(1)
        if outcome == "errored":
            raise errors.VreError("docker build failed (exit 1): context canceled")
        if outcome == "keyboard":
            raise KeyboardInterrupt

    assert exit_code(command) == errors.INTERRUPTED


def test_without_an_interrupt_the_command_keeps_its_code(no_interrupt):
    def command() -> None:
        raise typer.Exit(1)

    assert exit_code(command) == 1
    assert handled(lambda: "done")() == "done"


def test_sigint_is_recorded_then_raised(no_interrupt):
    before = signal.getsignal(signal.SIGINT)
    try:
        errors.watch_interrupts()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert errors.interrupted()
    finally:
        signal.signal(signal.SIGINT, before)


def test_workspace_paths_are_under_one_root(tmp_path):
    ws = Workspace.of(tmp_path)
    assert ws.dir == tmp_path.resolve() / ".vre"
    assert slug("eo-vre/ide:debian") == "eo-vre-ide-debian" and slug("base-geo/debian/cpu") == "base-geo-debian-cpu"
    assert ws.log("base-geo/debian") == ws.dir / "logs" / "base-geo-debian.log"
    assert ws.log("test-eo-vre/ide:debian") == ws.dir / "logs" / "test-eo-vre-ide-debian.log"
    assert ws.context("ide/debian") == ws.contexts / "ide-debian"
    assert ws.verdict("sha256:abc") == ws.dir / "tested" / "abc.json"
    assert ws.release("sha256:abc") == ws.dir / "release" / "abc"
    assert ws.artifacts("eo-vre/ide:debian") == ws.dir / "artifacts" / "eo-vre-ide-debian"
    assert ws.browser_artifacts("eo-vre/ide:debian") == ws.dir / "artifacts" / "browser" / "eo-vre-ide-debian"
    assert ws.env("deep-learning-gpu/envs/tensorflow") == ws.dir / "envs" / "deep-learning-gpu-tensorflow"
    assert ws.channel == ws.dir / "channel" and ws.bench == ws.dir / "bench"
