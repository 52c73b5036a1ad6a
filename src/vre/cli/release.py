"""The release commands of `vre`: diff (release notes), artifacts (an image's release files)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer

from vre.errors import USAGE, VreError
from vre.release import files, notes
from vre.release.manifest import Manifest
from vre.release.packages import ECOSYSTEMS
from vre.sizes import human_size
from vre.workspace import Workspace


def _image_notes(old: str, new: str) -> tuple[str, list[notes.Change]]:
    before, after = files.image_manifest(old), files.image_manifest(new)
    found = notes.changes(before.packages, after.packages)
    rows: list[tuple[str, Callable[[Manifest], object]]] = [
        ("image id", lambda m: f"`{m.image_id[:19]}`"), ("revision", lambda m: f"`{m.revision or '-'}`"),
        ("size", lambda m: human_size(m.size))]
    rows += [(f"{eco} packages", functools.partial(Manifest.count, ecosystem=eco)) for eco in ECOSYSTEMS]
    table = ["| | before | after |", "|---|---|---|",
             *(f"| {label} | {value(before)} | {value(after)} |" for label, value in rows), ""]
    return notes.release_notes(old, new, {"": found}, preamble=table), found


def _lock_notes(repo: Path, old: str, new: str | None) -> tuple[str, list[notes.Change]]:
    root = notes.git_root(repo)
    before, after = notes.lock_packages(root, old), notes.lock_packages(root, new)
    sections = {flavor: notes.changes(before.get(flavor, {}), after.get(flavor, {}))
                for flavor in sorted(before.keys() | after.keys())}
    found = [c for section in sections.values() for c in section]
    return notes.release_notes(old, new or "working tree", sections), found


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
    if locks:
        text, found = _lock_notes(repo, old, new)
    elif new is None:
        raise VreError("comparing images needs OLD and NEW (or give --locks to compare lock revisions)", USAGE)
    else:
        text, found = _image_notes(old, new)
    sys.stdout.write(text)
    if fail_on_downgrade and any(c.kind == "downgraded" for c in found):
        raise VreError("a package is downgraded (--fail-on-downgrade)")


def artifacts_cmd(
    image: Annotated[str, typer.Argument(help="image reference or id")],
    out: Annotated[Optional[Path], typer.Option(help="output folder [default: .vre/artifacts/<image>]")] = None,
) -> None:
    """Write an image's release files (manifest.json, manifest.md, sbom.cdx.json), as published beside it."""
    for path in files.write_artifacts(image, out or Workspace.of(_repository()).artifacts(image)):
        typer.echo(f"wrote {path}")


def _repository() -> Path:
    """The repository the command runs in (its workspace holds the artifacts), else the working directory."""
    try:
        return notes.git_root(Path("."))
    except notes.DiffError:
        return Path(".")
