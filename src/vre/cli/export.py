"""The `export` command of `vre`: an image for HPC runtimes (Charliecloud, SquashFS, Podman, Apptainer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vre.cli.report import console
from vre.publish import export as export_mod
from vre.sizes import human_size

HOW_TO_RUN = {
    "charliecloud": "ch-run --home --set-env {path} -- start jupyter lab --ip=127.0.0.1",
    "squashfs": "ch-run --home --set-env {path} -- start jupyter lab --ip=127.0.0.1",
    "podman": "podman load -i {path} && podman run --rm --userns=keep-id --user \"$(id -u):$(id -g)\" --read-only "
              "-v \"$HOME:$HOME\" -e HOME=\"$HOME\" -p 127.0.0.1:8888:8888 {ref}",
    "sif": "apptainer run --containall --home \"$HOME\" {path} jupyter lab --ip=127.0.0.1",
}


def export(
    image: Annotated[str, typer.Argument(help="a built image, e.g. eo-vre/base-geo:debian")],
    to: Annotated[str, typer.Option("--to", help=f"one of {', '.join(export_mod.FORMATS)}")],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="where to write it [default: IMAGE with / and : as -, in the current folder]")] = None,
) -> None:
    """Export an image for HPC runtimes: a Charliecloud directory, a SquashFS file, a Podman archive or a SIF."""
    result = export_mod.export(image, to, output)
    console.print(f"{result.ref} -> {result.path} ({to}): {human_size(result.size)} in {result.seconds:.0f} s\n"
                  f"run it: {HOW_TO_RUN[to].format(path=result.path, ref=result.ref)}", markup=False, highlight=False)
