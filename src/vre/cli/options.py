"""Options shared by the commands (each declared once here) and loading the matrix they name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer

from vre.matrix import Matrix, Target, load

DEFAULT_MATRIX = Path("images/matrix.yaml")
MatrixOpt = Annotated[Path, typer.Option("--matrix", help="the matrix file")]
ImagesArg = Annotated[Optional[list[str]], typer.Argument(help="images to act on (default: all)")]
FlavorOpt = Annotated[Optional[list[str]], typer.Option("--flavor", "-f", help="only these flavors")]
VariantOpt = Annotated[Optional[list[str]], typer.Option("--variant", "-v", help="only these variants")]
PlatformOpt = Annotated[Optional[str], typer.Option(
    "--platform", help="build for this platform of the matrix, e.g. linux/arm64 (emulated by qemu-user when it is not "
                       "the engine's; local tags then end in -arm64) [default: the engine's own]")]


def select(path: Path, images: Sequence[str] | None, flavors: Sequence[str] | None,
           variants: Sequence[str] | None, platform: str | None = None) -> tuple[Matrix, list[Target]]:
    """The matrix at `path` (as built for `platform`) and the targets the command line selects (with the parents
    they need)."""
    m = load(path).on_platform(platform)
    return m, m.select(list(images) if images else None, list(flavors) if flavors else None,
                       list(variants) if variants else None)


def named(path: Path, images: Sequence[str] | None, flavors: Sequence[str] | None,
          variants: Sequence[str] | None, platform: str | None = None) -> tuple[Matrix, list[Target]]:
    """Like select, but only the named images (not their parents): testing or publishing an image needs no parent."""
    m, targets = select(path, images, flavors, variants, platform)
    return m, [t for t in targets if not images or t.image in images]
