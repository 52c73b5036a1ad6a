"""What the CLI prints: the summary table that ends every command, and live progress."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vre.build import BuildResult
from vre.errors import INTERRUPTED, VreError, interrupted
from vre.progress import Progress
from vre.sizes import human_size
from vre.verify.compat import SuiteResult

# Wide enough for the summary table in CI logs, where no terminal tells the width.
console = Console(width=None if Console().is_terminal else 160)
errors = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 160)
P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int) -> typer.Exit:
    """Print `error: message` on stderr; the Exit to raise with `code`."""
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _interrupted(message: str = "") -> typer.Exit:
    errors.print("[red]interrupted[/red]" + (f": {escape(message)}" if message else ""), highlight=False,
                 soft_wrap=True)
    return typer.Exit(INTERRUPTED)


def handled(command: Callable[P, R]) -> Callable[P, R]:
    """The one place where a command's errors end it: a VreError prints `error: ...` and exits with its code; an
    interrupt exits 130 and says so, whatever the command or its child processes reported meanwhile."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            outcome = command(*args, **kwargs)
        except KeyboardInterrupt:
            raise _interrupted() from None
        except VreError as e:
            if e.exit_code == INTERRUPTED or interrupted():
                raise _interrupted(str(e)) from None
            raise fail(str(e), e.exit_code) from None
        except typer.Exit as e:
            if interrupted() and e.exit_code != INTERRUPTED:
                raise _interrupted() from None
            raise
        if interrupted():
            raise _interrupted()
        return outcome

    return run


@dataclass
class Row:
    image: str
    flavor: str
    variant: str
    build: BuildResult | None = None
    test: SuiteResult | None = None


def summary(rows: list[Row], title: str = "eo-vre") -> Table:
    table = Table(title=title)
    for column in ("image", "flavor", "variant", "status", "size", "build time", "steps cached", "tests passed",
                   "failed", "skipped", "test time"):
        table.add_column(column, justify="right" if column not in ("image", "flavor", "variant", "status") else "left")
    for row in rows:
        b, t = row.build, row.test
        status = b.status if b else "-"
        if t:
            status = (status + ", " if b else "") + ("tests passed" if t.ok else "TESTS FAILED")
        table.add_row(
            row.image, row.flavor, row.variant or "-", status,
            human_size(b.size) if b and b.size else "-",
            f"{b.seconds:.0f} s" if b else "-",
            f"{b.cached_steps}/{b.steps}" if b and b.steps else "-",
            str(t.passed) if t else "-", str(t.failed) if t else "-", str(t.skipped) if t else "-",
            f"{t.seconds:.0f} s" if t else "-",
        )
    return table


def progress() -> Progress:
    """Progress lines: which image, which step, elapsed time. One line per step of an image, when it first shows (works
    in CI logs too): the build's later `docker build` calls go over the same, cached steps again."""
    started: dict[str, float] = {}
    shown: dict[str, set[str]] = {}

    def elapsed(key: str) -> str:
        seconds = int(time.monotonic() - started.get(key, time.monotonic()))
        return f"{seconds // 60:02d}:{seconds % 60:02d}"

    def start(key: str) -> None:
        started[key] = time.monotonic()
        console.print(f"[bold]▶ {key}[/bold]")

    def step(key: str, what: str) -> None:
        if what not in shown.setdefault(key, set()):
            shown[key].add(what)
            console.print(f"  {elapsed(key)} {key} {what}", markup=False, highlight=False)

    def done(result: BuildResult) -> None:
        style = "green" if result.status == "built" else "red"
        console.print(f"[{style}]■ {result.key} {result.status}[/{style}] in {elapsed(result.key)}"
                      + (f" ({human_size(result.size)})" if result.size else ""))
        if result.error:
            console.print(result.error, markup=False, highlight=False)

    return Progress(start=start, step=step, note=lambda text: console.print(f"  {text}"), done=done)
