"""The conda flavor's own commands of `vre`: recipes (check, build into a local channel) and env."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from vre.cli.lock import TimeoutOpt, local_channel
from vre.cli.options import DEFAULT_MATRIX, MatrixOpt
from vre.cli.report import console
from vre.lock.conda import env as conda_env, recipepublish, recipes as conda_recipes
from vre.lock.conda.channels import Network
from vre.matrix import load
from vre.workspace import Workspace

def recipes_check(
    names: Annotated[Optional[list[str]], typer.Argument(help="recipes (default: all)")] = None,
    matrix: MatrixOpt = DEFAULT_MATRIX,
) -> None:
    """Render every recipe for every platform and lint it (no build, no network)."""
    m = load(matrix)
    found = conda_recipes.find(m.root, names)
    problems = conda_recipes.check(found)
    for problem in problems:
        console.print(f"[red]lint:[/red] {problem}", highlight=False)
    console.print(f"{len(found)} recipes rendered for every platform, {len(problems)} problems")
    if problems:
        raise typer.Exit(1)


def recipes_build(
    names: Annotated[Optional[list[str]], typer.Argument(help="recipes to build, in order (default: all)")] = None,
    matrix: MatrixOpt = DEFAULT_MATRIX,
    output: Annotated[Optional[Path], typer.Option(help="the local channel to build into [default: .vre/channel]")]
    = None,
    channel: Annotated[Optional[list[str]], typer.Option(
        "--channel", help="channels for build dependencies (name, URL or directory; a mirror's URL works too) "
                          "[default: the matrix's conda channels]")] = None,
    test: Annotated[bool, typer.Option("--test/--no-test", help="run each recipe's tests")] = True,
    target_platform: Annotated[Optional[str], typer.Option(
        help="conda platform to build for [default: this machine's]; tests run only on the native one")] = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Build recipes into a local channel that `vre lock` and `vre build` use."""
    m = load(matrix)
    out = output or Workspace.of(m.root).channel
    channels = [c if "://" in c or not Path(c).is_dir() else Path(c).resolve().as_uri()
                for c in channel or m.spec.flavors["conda"].channels]
    found = conda_recipes.find(m.root, names)
    started = time.monotonic()
    built = conda_recipes.build(found, out, channels, Network.from_env(None, timeout), test=test,
                                platform=target_platform)
    for b in built:
        console.print(f"built {b.name} {b.version} {b.build} ({b.platform}) in {b.seconds:.1f} s", highlight=False)
    console.print(f"{len(built)} packages in {out} ({time.monotonic() - started:.1f} s); lock with "
                  f"`vre lock --channel {out}`", highlight=False)


def recipes_publish(
    matrix: MatrixOpt = DEFAULT_MATRIX,
    channel: Annotated[Optional[Path], typer.Option(
        "--channel", help="the local channel to upload [default: .vre/channel]")] = None,
) -> None:
    """Upload a local channel's packages to the channel locks name ($VRE_CONDA_RECIPES_CHANNEL; prefix.dev or
    anaconda.org, API key in PREFIX_API_KEY or ANACONDA_API_KEY)."""
    m = load(matrix)
    url, files = recipepublish.publish(channel or Workspace.of(m.root).channel)
    console.print(f"{len(files)} packages published to {url}", highlight=False)


def env(
    name: Annotated[str, typer.Argument(help="lock folder under environments/conda/, e.g. deep-learning-cpu")],
    matrix: MatrixOpt = DEFAULT_MATRIX,
    prefix: Annotated[Optional[Path], typer.Option(help="where to create it [default: .vre/envs/NAME]")] = None,
    channel: Annotated[Optional[Path], typer.Option(
        "--channel", help="local channel holding the lock's packages of our recipes (`vre recipes build`)")] = None,
) -> None:
    """Create an environment from its committed lock, as the images install it (no solve)."""
    m = load(matrix)
    target = prefix or Workspace.of(m.root).env(name)
    summary, warnings = conda_env.create(m, name, target, local_channel(m, channel))
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    console.print(f"{summary}\nuse it: conda activate {target}  (or micromamba activate {target}, or run "
                  f"{target}/bin/jupyter lab)", highlight=False)
