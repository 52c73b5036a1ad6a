"""The registry commands of `vre`: publish (push tested images and their tags), tags (as publish pushes them)."""

from __future__ import annotations

from datetime import datetime, UTC
from typing import Annotated, Optional

import typer
from rich.table import Table

from vre.cli.options import DEFAULT_MATRIX, FlavorOpt, MatrixOpt, VariantOpt, named
from vre.cli.report import console
from vre.errors import USAGE, Interrupted, VreError
from vre.matrix import load, target_key
from vre.progress import Progress
from vre.publish import registry as publishing
from vre.release import tags as release_tags


def _table(plans: list[publishing.Plan], pushed: list[publishing.Pushed], registry: str) -> Table:
    table = Table(title=f"published to {registry}")
    for column in ("image", "flavor", "variant", "platforms", "digest", "immutable tags", "moving tags"):
        table.add_column(column)
    for p in plans:
        # an index's digest when the image has several platforms (each also under its tags suffixed with the arch)
        mine = sorted((x for x in pushed if x.key == p.target.key), key=lambda x: not x.platforms)
        table.add_row(p.target.image, p.target.flavor, p.target.variant or "-", " ".join(sorted(p.images)) or "-",
                      mine[0].digest if mine else "-", " ".join(p.immutable), " ".join(p.moving))
    return table


def publish(
    registry: Annotated[str, typer.Option(help="HOST\\[:PORT]\\[/PREFIX], e.g. ghcr.io/my-org or 127.0.0.1:5000: "
                                               "images go to REGISTRY/<name>/<image>")],
    images: Annotated[Optional[list[str]], typer.Argument(help="images to publish (default: all)")] = None,
    matrix: MatrixOpt = DEFAULT_MATRIX,
    flavor: FlavorOpt = None,
    variant: VariantOpt = None,
    retries: Annotated[int, typer.Option(help="retries of a registry call after a transient error (backoff 2 s, "
                                              "doubling)")] = 4,
    platform: Annotated[Optional[list[str]], typer.Option(
        "--platform", help="only these platforms' images, e.g. linux/amd64 (repeatable) [default: every platform "
                           "built here, joined under one multi-platform tag]")] = None,
) -> None:
    """Push built and tested images: immutable tags (date, revision) first, then the moving ones (flavor, latest)."""
    registry = publishing.check_registry(registry)
    m, targets = named(matrix, images, flavor, variant)
    pushed: list[publishing.Pushed] = []

    def note(text: str) -> None:
        console.print(f"  {text}", markup=False, highlight=False)

    def done(p: publishing.Pushed) -> None:
        pushed.append(p)
        note(f"pushed {p.ref} {p.digest}")

    progress = Progress(note=note, pushed=done)
    retry = publishing.Retry(attempts=retries + 1)
    try:
        plans = publishing.plan(m, targets, registry, retry=retry, progress=progress,
                                platforms=tuple(platform or ()))
        console.print(f"[bold]▶ publishing {len(plans)} image(s) to {registry}[/bold]", highlight=False)
        publishing.push(plans, registry, retry=retry, progress=progress)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {publishing.describe(pushed)}") from None
    console.print(_table(plans, pushed, registry))


def tags(
    image: Annotated[str, typer.Argument(help="the image (matrix name)")],
    flavor: Annotated[str, typer.Option("--flavor", "-f", help="its flavor")],
    revision: Annotated[str, typer.Option(help="the commit it was built from (40 hex digits)")],
    variant: Annotated[Optional[str], typer.Option("--variant", "-v", help="its variant")] = None,
    moving: Annotated[bool, typer.Option("--moving/--immutable", help="which tags to print")] = False,
    matrix: MatrixOpt = DEFAULT_MATRIX,
) -> None:
    """Print the image's registry tags, one a line, as `vre publish` pushes them (CI joins multi-arch images under
    them: the immutable ones first, the moving ones once those are in)."""
    m = load(matrix)
    key = target_key(image, flavor, variant)
    if key not in m.targets:
        raise VreError(f"{key} is not a target of {matrix}", USAGE)
    found = release_tags.tags(m, m.targets[key], revision, datetime.now(UTC).date())
    for tag in found.moving if moving else found.immutable:
        print(tag)
