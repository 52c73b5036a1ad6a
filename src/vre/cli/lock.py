"""The `lock` command of `vre`: every flavor's locks through one interface (vre.lock.flavor)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from vre.cli.options import DEFAULT_MATRIX, FlavorOpt, MatrixOpt, VariantOpt, select
from vre.cli.report import console
from vre.errors import USAGE, VreError
from vre.lock.conda.channels import MIRRORS_ENV, TIMEOUT_ENV, Network
from vre.lock.conda.lock import CondaLockReport, LockOptions, lock_targets
from vre.lock.conda.spec import PLATFORMS
from vre.lock.debian import LockReport
from vre.lock.flavor import LockRequest, flavor as flavor_of, lock_foundation
from vre.matrix import Matrix
from vre.workspace import Workspace

ChannelOpt = Annotated[Optional[Path], typer.Option(
    "--channel", help="local channel of our recipes (`vre recipes build`), solved before the matrix's channels "
                      "[default: .vre/channel when it exists]")]
MirrorOpt = Annotated[Optional[list[str]], typer.Option(
    "--mirror", help=f"CHANNEL=URL: fetch CHANNEL from a mirror (repeatable; also ${MIRRORS_ENV})")]
TimeoutOpt = Annotated[Optional[int], typer.Option(
    "--timeout", help=f"seconds before an unreachable channel fails [default: ${TIMEOUT_ENV} or 20]")]
STYLE = {"fresh": "green", "locked": "cyan", "stale": "yellow", "missing": "red", "partial": "yellow",
         "failed": "red", "conflict": "red", "missing data": "magenta", "blocked": "yellow"}


def local_channel(matrix: Matrix, channel: Path | None) -> Path | None:
    """The local conda channel to use: --channel, else the workspace's when `vre recipes build` made it."""
    if channel is not None:
        if not channel.is_dir():
            raise VreError(f"--channel {channel}: no such directory (build it with `vre recipes build --output "
                           f"{channel}`)", USAGE)
        return channel
    default = Workspace.of(matrix.root).channel
    if default.is_dir():
        console.print(f"using local channel {default} (from `vre recipes build`; --channel to choose another)")
        return default
    return None


def lock(
    images: Annotated[Optional[list[str]], typer.Argument(help="images to lock (default: all)")] = None,
    matrix: MatrixOpt = DEFAULT_MATRIX,
    flavor: FlavorOpt = None,
    variant: VariantOpt = None,
    check: Annotated[bool, typer.Option("--check", help="only report missing and stale locks (exit 1 if any)")] = False,
    update: Annotated[Optional[list[str]], typer.Option(
        "--update", help="relock to update PACKAGE (and what it drags along) only; repeatable")] = None,
    update_all: Annotated[bool, typer.Option(
        "--update-all", help="relock every lock, each package to the newest version its constraints allow")] = False,
    channel: ChannelOpt = None,
    mirror: MirrorOpt = None,
    timeout: TimeoutOpt = None,
    platform: Annotated[Optional[list[str]], typer.Option(
        "--platform", "-p", help="conda: only these platforms, e.g. linux-64 (repeatable; default: all)")] = None,
    published: Annotated[bool, typer.Option(
        "--published", help="conda: our recipes from the channel they are published at ($VRE_CONDA_RECIPES_CHANNEL), "
                            "not a local one")] = False,
) -> None:
    """Solve the locks: conda with rattler (conda-lock files), one solve per solve group and platform; debian with
    apt (apt.lock) and uv (requirements.txt), parents first; the foundation's Debian packages first."""
    m, targets = select(matrix, images, flavor, variant)
    conda_targets = [t for t in targets if t.flavor == "conda"]
    for name in platform or ():
        if name not in PLATFORMS:
            raise VreError(f"--platform {name}: unknown (expected one of: {', '.join(PLATFORMS)})", USAGE)
    options = LockOptions(
        network=Network.from_env(mirror, timeout), platforms=tuple(platform or ()), published=published,
        local_channel=local_channel(m, channel) if conda_targets and not check and not published else None)
    request = LockRequest(check=check, update=tuple(update or ()), update_all=update_all, conda=options)
    reports: list[LockReport] = []
    # The foundation's apt lock first; conda targets after, all at once.
    for name, target in [("foundation", None), *((t.key, t) for t in targets if t.flavor != "conda")]:
        try:
            found = (lock_foundation(m, request) if target is None
                     else flavor_of(target.flavor).lock(m, target, request))
        except VreError as e:
            raise VreError(f"{name}: {e}", e.exit_code) from None
        for report in found:
            _print(report)
        reports += found
    if conda_targets:
        # One call for every conda target: their solve groups are solved once each (vre.lock.conda.group).
        conda_reports = lock_targets(m, conda_targets, check=check, update=list(update or ()), options=options,
                                     update_all=update_all)
        for report in conda_reports:
            _print(report)
        _table(conda_reports)
        reports += conda_reports
    held = {line.split()[1] for r in reports for line in r.changes if line[:1] in "~+-"}
    for name in update or ():
        if name not in held and not check:
            console.print(f"[yellow]note:[/yellow] --update {name}: no lock changed it (in no lock, or already at "
                          "the newest version its constraints allow)", highlight=False)
    if check and any(r.status != "fresh" for r in reports):
        raise VreError("some locks are missing or stale: run `vre lock` (where the channels are reachable) and "
                       "commit the result")
    if any(cell != "locked" for r in reports for cell in getattr(r, "cells", {}).values()):
        raise VreError("some images did not lock on some platforms (the table above; each one's reason is printed "
                       "above it)")


def _table(reports: Sequence[CondaLockReport]) -> None:
    """Image x platform: locked / conflict / missing data / blocked."""
    solved = [p for p in PLATFORMS if any(p in r.cells for r in reports)]
    if not solved:
        return
    table = Table("lock", *solved, box=None, header_style="bold")
    for r in reports:
        table.add_row(r.layer, *(f"[{STYLE.get(r.cells[p], 'white')}]{r.cells[p]}[/]" if p in r.cells
                                 else "[dim]-[/dim]" for p in solved))
    console.print(table)


def _print(report: LockReport) -> None:
    seconds = getattr(report, "seconds", 0.0)
    took = f" in {seconds:.1f} s" if seconds else ""
    console.print(f"[{STYLE.get(report.status, 'white')}]{report.status:>7}[/] {report.target} "
                  f"[dim]{report.layer}{took}[/dim]", highlight=False)
    reasons: Sequence[str] = getattr(report, "reasons", []) if report.status != "fresh" else []
    for reason in reasons:
        console.print(f"          {reason}", highlight=False, style="dim")
    for change in report.changes:
        console.print(f"          {change}", highlight=False)
    problems: Sequence[str] = getattr(report, "problems", [])
    for problem in problems:
        console.print(problem.rstrip(), highlight=False, markup=False)
