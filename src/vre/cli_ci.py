"""The `ci` commands of `vre`; src/vre/cli.py adds them with `register(app)`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vre import ci
from vre.report import console

ci_app = typer.Typer(help="Continuous integration: GitHub Actions workflows rendered from the matrix.",
                     no_args_is_help=True)


@ci_app.command("render")
def render(
    matrix: Annotated[Path, typer.Option("--matrix", help="the matrix file")] = Path("images/matrix.yaml"),
    output: Annotated[Optional[Path], typer.Option(help=f"the output folder [default: {ci.OUTPUT} of the "
                                                        "matrix's repository]")] = None,
    check: Annotated[bool, typer.Option("--check", help="write nothing; exit 1 naming the files that differ from "
                                                        "what the matrix renders")] = False,
) -> None:
    """Write the workflows (ci/github/) from the matrix; the folder is generated whole, never edited by hand."""
    from vre.cli import load  # here: vre.cli imports this module to register it

    m = load(matrix)
    out = output or m.root / ci.OUTPUT
    if not check:
        for path in ci.write(m, out):
            console.print(f"wrote {path}", highlight=False)
        return
    differ = ci.differences(m, out)
    for path in differ:
        console.print(f"[red]differs:[/red] {path}", highlight=False)
    if differ:
        console.print("run `vre ci render` and commit the result", highlight=False)
        raise typer.Exit(1)
    console.print(f"{out}: matches {matrix}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `ci render [--check]` to the vre command line."""
    app.add_typer(ci_app, name="ci")
