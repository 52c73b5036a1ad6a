"""The `publish` command of `vre`; src/vre/cli.py adds it with `register(app)`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from datetime import datetime, timezone

from vre import engine, publish as publish_mod
from vre import tags as tags_mod
from vre.report import console


def _table(plans: list[publish_mod.Plan], pushed: list[publish_mod.Pushed], registry: str) -> Table:
    table = Table(title=f"published to {registry}")
    for column in ("image", "flavor", "variant", "digest", "immutable tags", "moving tags"):
        table.add_column(column)
    for p in plans:
        mine = [x for x in pushed if x.key == p.target.key]
        table.add_row(p.target.image, p.target.flavor, p.target.variant or "-", mine[0].digest if mine else "-",
                      " ".join(p.immutable), " ".join(p.moving))
    return table


def _error(e: Exception) -> None:
    console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)


def publish(
    registry: Annotated[str, typer.Option(help="HOST\\[:PORT]\\[/PREFIX], e.g. ghcr.io/my-org or 127.0.0.1:5000: "
                                               "images go to REGISTRY/<name>/<image>")],
    images: Annotated[Optional[list[str]], typer.Argument(help="images to publish (default: all)")] = None,
    matrix: Annotated[Path, typer.Option("--matrix", help="the matrix file")] = Path("images/matrix.yaml"),
    flavor: Annotated[Optional[list[str]], typer.Option("--flavor", "-f", help="only these flavors")] = None,
    variant: Annotated[Optional[list[str]], typer.Option("--variant", "-v", help="only these variants")] = None,
    retries: Annotated[int, typer.Option(help="retries of a registry call after a transient error (backoff 2 s, "
                                              "doubling)")] = 4,
) -> None:
    """Push built and tested images: immutable tags (date, revision) first, then the moving ones (flavor, latest)."""
    from vre.cli import load, select  # here: vre.cli imports this module to register it

    try:
        registry = publish_mod.check_registry(registry)
    except publish_mod.PublishError as e:
        _error(e)
        raise typer.Exit(2) from None
    m = load(matrix)
    targets = [t for t in select(m, images, flavor, variant) if not images or t.image in images]
    pushed: list[publish_mod.Pushed] = []

    def note(text: str) -> None:
        console.print(f"  {text}", markup=False, highlight=False)

    def done(p: publish_mod.Pushed) -> None:
        pushed.append(p)
        note(f"pushed {p.ref} {p.digest}")

    progress = publish_mod.Progress(note=note, pushed=done)
    retry = publish_mod.Retry(attempts=retries + 1)
    try:
        plans = publish_mod.plan(m, targets, registry, retry=retry, progress=progress)
        console.print(f"[bold]▶ publishing {len(plans)} image(s) to {registry}[/bold]", highlight=False)
        publish_mod.push(plans, registry, retry=retry, progress=progress)
    except publish_mod.PublishError as e:
        _error(e)
        raise typer.Exit(1) from None
    except engine.EngineError as e:
        _error(e)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print(f"[red]interrupted:[/red] {escape(publish_mod.describe(pushed))}", highlight=False)
        raise typer.Exit(130) from None
    console.print(_table(plans, pushed, registry))


def tags(
    image: Annotated[str, typer.Argument(help="the image (matrix name)")],
    flavor: Annotated[str, typer.Option("--flavor", "-f", help="its flavor")],
    revision: Annotated[str, typer.Option(help="the commit it was built from (40 hex digits)")],
    variant: Annotated[Optional[str], typer.Option("--variant", "-v", help="its variant")] = None,
    moving: Annotated[bool, typer.Option("--moving/--immutable", help="which tags to print")] = False,
    matrix: Annotated[Path, typer.Option("--matrix", help="the matrix file")] = Path("images/matrix.yaml"),
) -> None:
    """Print the image's registry tags, one a line, as `vre publish` pushes them (CI joins multi-arch images under
    them: the immutable ones first, the moving ones once those are in)."""
    from vre.cli import load

    m = load(matrix)
    key = "/".join(part for part in (image, flavor, variant) if part)
    if key not in m.targets:
        console.print(f"[red]error:[/red] {escape(key)} is not a target of {matrix}", highlight=False)
        raise typer.Exit(2)
    found = tags_mod.tags(m, m.targets[key], revision, datetime.now(timezone.utc).date())
    for tag in found.moving if moving else found.immutable:
        print(tag)


def register(app: typer.Typer) -> None:
    """Add `publish` and `tags` to the vre command line."""
    app.command("publish")(publish)
    app.command("tags")(tags)
