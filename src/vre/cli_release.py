"""The release commands of `vre` (`diff`, `artifacts`); src/vre/cli.py adds them with `register(app)`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from vre import diff, engine, meta
from vre.packages import ECOSYSTEMS
from vre.sizes import human_size
from vre.sbom import SbomError

WORKDIR = Path(".vre")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _image_notes(old: str, new: str) -> tuple[str, list[diff.Change]]:
    before, after = meta.image_manifest(old), meta.image_manifest(new)
    found = diff.changes(before.packages, after.packages)
    rows = [("image id", lambda m: f"`{m.image_id[:19]}`"), ("revision", lambda m: f"`{m.revision or '-'}`"),
            ("size", lambda m: human_size(m.size))]
    rows += [(f"{eco} packages", lambda m, eco=eco: m.count(eco)) for eco in ECOSYSTEMS]
    table = ["| | before | after |", "|---|---|---|", *(f"| {label} | {value(before)} | {value(after)} |"
                                                       for label, value in rows), ""]
    return diff.release_notes(old, new, {"": found}, preamble=table), found


def _lock_notes(repo: Path, old: str, new: str | None) -> tuple[str, list[diff.Change]]:
    root = diff.git_root(repo)
    before, after = diff.lock_packages(root, old), diff.lock_packages(root, new)
    sections = {flavor: diff.changes(before.get(flavor, {}), after.get(flavor, {}))
                for flavor in sorted(before.keys() | after.keys())}
    found = [c for section in sections.values() for c in section]
    return diff.release_notes(old, new or "working tree", sections), found


def diff_cmd(
    old: Annotated[str, typer.Argument(help="the old image (tag or id), or with --locks the old git revision")],
    new: Annotated[Optional[str], typer.Argument(
        help="the new image, or with --locks the new git revision [default with --locks: the working tree]")] = None,
    locks: Annotated[bool, typer.Option("--locks", help="compare the locks under environments/ at two git "
                                                        "revisions instead of two images")] = False,
    repo: Annotated[Path, typer.Option(help="the repository whose locks --locks compares")] = Path("."),
    fail_on_downgrade: Annotated[bool, typer.Option(help="exit 1 when a package is downgraded")] = False,
) -> None:
    """Release notes (Markdown, on stdout): packages added, removed, upgraded and downgraded per ecosystem between
    two images (their embedded manifests) or two revisions of the locks."""
    if not locks and new is None:
        _fail("comparing images needs OLD and NEW (or give --locks to compare lock revisions)")
    try:
        text, found = _lock_notes(repo, old, new) if locks else _image_notes(old, new)
    except (diff.DiffError, engine.EngineError, SbomError) as e:
        _fail(str(e))
    sys.stdout.write(text)
    if fail_on_downgrade and any(c.kind == "downgraded" for c in found):
        typer.echo("error: a package is downgraded (--fail-on-downgrade)", err=True)
        raise typer.Exit(1)


def artifacts_cmd(
    image: Annotated[str, typer.Argument(help="image reference or id")],
    out: Annotated[Optional[Path], typer.Option(help="output folder [default: .vre/artifacts/<image>]")] = None,
) -> None:
    """Write an image's release files (manifest.json, manifest.md, sbom.cdx.json), as published beside it."""
    try:
        paths = meta.write_artifacts(image, out or meta.artifacts_dir(WORKDIR, image))
    except (engine.EngineError, SbomError) as e:
        _fail(str(e))
    for path in paths:
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add `diff` and `artifacts` to the vre command line."""
    app.command("diff")(diff_cmd)
    app.command("artifacts")(artifacts_cmd)
