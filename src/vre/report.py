"""What the CLI prints: the summary table that ends every command, and live progress."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from vre.build import BuildResult, Progress
from vre.sizes import human_size
from vre.test import TestResult

# Wide enough for the summary table in CI logs, where no terminal tells the width.
console = Console(width=None if Console().is_terminal else 160)


@dataclass
class Row:
    image: str
    flavor: str
    variant: str
    build: BuildResult | None = None
    test: TestResult | None = None


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
