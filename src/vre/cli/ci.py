"""The `ci` commands of `vre`: GitHub Actions workflows rendered from the matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vre.ci import workflows
from vre.cli.options import DEFAULT_MATRIX, MatrixOpt
from vre.cli.report import console
from vre.matrix import load

def render(
    matrix: MatrixOpt = DEFAULT_MATRIX,
    output: Annotated[Optional[Path], typer.Option(help=f"the output folder [default: {workflows.OUTPUT} of the "
                                                        "matrix's repository]")] = None,
    check: Annotated[bool, typer.Option("--check", help="write nothing; exit 1 naming the files that differ from "
                                                        "what the matrix renders")] = False,
) -> None:
    """Write the workflows (ci/github/) from the matrix; the folder is generated whole, never edited by hand."""
    m = load(matrix)
    out = output or m.root / workflows.OUTPUT
    if not check:
        for path in workflows.write(m, out):
            console.print(f"wrote {path}", highlight=False)
        return
    differ = workflows.differences(m, out)
    for path in differ:
        console.print(f"[red]differs:[/red] {path}", highlight=False)
    if differ:
        console.print("run `vre ci render` and commit the result", highlight=False)
        raise typer.Exit(1)
    console.print(f"{out}: matches {matrix}", highlight=False)
