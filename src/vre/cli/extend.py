"""The `extend` command of `vre` (registered in vre.cli.main)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from vre.build.options import DEFAULT_CA
from vre.cli.report import console, progress
from vre.extend import ExtendError
from vre.extend.build import ExtendOptions, extend
from vre.sizes import human_size
from vre.workspace import Workspace

# A local image reference: [host[:port]/]path[:tag], as `docker tag` takes it.
REFERENCE = re.compile(r"^([a-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*"
                       r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")


def extend_cmd(
    base_image: Annotated[str, typer.Argument(help="the eo-vre image to extend (a local tag or id)")],
    folder: Annotated[Path, typer.Argument(help="a repo2docker-style folder: apt.txt, requirements.in (debian) or "
                                                "environment.yml (conda), postBuild, start, tests/")],
    tag: Annotated[Optional[str], typer.Option(help="the image to make [default: <folder name>:latest]")] = None,
    name: Annotated[Optional[str], typer.Option(help="the extension's layer name [default: the folder's name]")] = None,
    wheels: Annotated[Optional[Path], typer.Option(help="extra wheel source for requirements.in")] = None,
    channel: Annotated[Optional[Path], typer.Option(help="local conda channel (solved first, mounted for the "
                                                         "install)")] = None,
    ca_bundle: Annotated[Path, typer.Option(help="extra CA bundle for TLS-intercepting proxies (BuildKit secret, "
                                                 "never in the image)")] = DEFAULT_CA,
    no_ca_bundle: Annotated[bool, typer.Option("--no-ca-bundle", help="build without a CA bundle")] = False,
    test: Annotated[bool, typer.Option(help="run the base's compat suite and the folder's tests/ before "
                                            "tagging")] = True,
    workdir: Annotated[Path, typer.Option(help="logs, build context and release files")] = Path(".vre"),
) -> None:
    """Add a folder to an eo-vre image: locked on the image's own locks (every base package fixed), built with its
    installer, tested with its compat suite and the folder's tests, with a manifest, SBOM and release notes against
    the image. Tags nothing unless all of it succeeded."""
    tag = tag or f"{(name or folder.resolve().name).lower()}:latest"
    if not REFERENCE.match(tag):
        raise ExtendError(f"--tag {tag}: not an image reference (expected [HOST[:PORT]/]NAME[:TAG], lower-case name)")
    options = ExtendOptions(tag=tag, layer=name, ca_bundle=None if no_ca_bundle else ca_bundle, wheels=wheels,
                            channel=channel, test=test, workspace=Workspace(workdir))
    console.print(f"[bold]▶ extending {escape(base_image)} with {escape(str(folder))} → {escape(tag)}[/bold]")
    steps = progress()
    steps.done = lambda result: None  # a failed build's error ends the command (vre.cli.report.handled), once
    result = extend(base_image, folder, options,
                    say=lambda line: console.print("  " + line, markup=False, highlight=False), progress=steps)
    tests = [f"{label}: {t.passed} passed, {t.failed} failed, {t.skipped} skipped in {t.seconds:.0f} s"
             for label, t in (("compat suite", result.compat), ("tests/", result.tests)) if t]
    console.print(f"[green]■ {escape(result.ref)}[/green] {result.image_id[:19]} ({human_size(result.size)}), layer "
                  f"{result.layer} on {escape(result.base)}", highlight=False)
    for line in [*tests, f"release files: {result.release}"]:
        console.print("  " + line, markup=False, highlight=False)
