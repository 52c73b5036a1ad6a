"""The lock, recipes and env commands of `vre`; src/vre/cli.py adds them with `register(app)`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from vre import lock_pip
from vre.conda import CondaError, env as conda_env, lock as conda_lock, recipes as conda_recipes
from vre.conda.channels import MIRRORS_ENV, TIMEOUT_ENV, Network
from vre.matrix import Matrix
from vre.report import console

MatrixOpt = Annotated[Path, typer.Option("--matrix", help="the matrix file")]
ChannelOpt = Annotated[Optional[Path], typer.Option(
    "--channel", help="local channel of our recipes (`vre recipes build`), solved before the matrix's channels "
                      "[default: .vre/channel when it exists]")]
MirrorOpt = Annotated[Optional[list[str]], typer.Option(
    "--mirror", help=f"CHANNEL=URL: fetch CHANNEL from a mirror (repeatable; also ${MIRRORS_ENV})")]
TimeoutOpt = Annotated[Optional[int], typer.Option(
    "--timeout", help=f"seconds before an unreachable channel fails [default: ${TIMEOUT_ENV} or 20]")]
DEFAULT_MATRIX = Path("images/matrix.yaml")
STYLE = {"fresh": "green", "locked": "cyan", "stale": "yellow", "missing": "red"}


def _load(path: Path) -> Matrix:
    # vre.cli imports this module to register the commands: import it when a command runs, not at import time.
    from vre.cli import load

    return load(path)


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


@contextmanager
def _reported() -> Iterator[None]:
    """A CondaError ends the command with its message and exit code 1."""
    try:
        yield
    except CondaError as e:
        raise _fail(str(e)) from None


def _local_channel(matrix: Matrix, channel: Path | None) -> Path | None:
    if channel is not None:
        if not channel.is_dir():
            raise _fail(f"--channel {channel}: no such directory (build it with `vre recipes build --output "
                        f"{channel}`)", 2)
        return channel
    default = matrix.root / ".vre" / "channel"
    if default.is_dir():
        console.print(f"using local channel {default} (from `vre recipes build`; --channel to choose another)")
        return default
    return None


def _network(mirror: list[str] | None, timeout: int | None) -> Network:
    with _reported():
        return Network.from_env(mirror, timeout)


def lock(
    images: Annotated[Optional[list[str]], typer.Argument(help="images to lock (default: all)")] = None,
    matrix: MatrixOpt = DEFAULT_MATRIX,
    flavor: Annotated[Optional[list[str]], typer.Option("--flavor", "-f", help="only these flavors")] = None,
    variant: Annotated[Optional[list[str]], typer.Option("--variant", "-v", help="only these variants")] = None,
    check: Annotated[bool, typer.Option("--check", help="only report missing and stale locks (exit 1 if any)")] = False,
    update: Annotated[Optional[list[str]], typer.Option(
        "--update", help="relock to update PACKAGE (and what it drags along) only; repeatable")] = None,
    update_all: Annotated[bool, typer.Option(
        "--update-all", help="relock every lock, each package to the newest version its constraints allow")] = False,
    channel: ChannelOpt = None,
    mirror: MirrorOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Solve the layers' locks, parents first: conda with rattler (conda-lock files), debian with uv."""
    from vre.cli import select

    m = _load(matrix)
    targets = select(m, images, flavor, variant)
    conda_targets = [t for t in targets if t.flavor == "conda"]
    options = conda_lock.LockOptions(
        network=_network(mirror, timeout),
        local_channel=_local_channel(m, channel) if conda_targets and not check else None)
    reports = []
    for target in targets:
        try:
            if target.flavor == "conda":
                found = conda_lock.lock(m, target, check=check, update=list(update or []), options=options,
                                        update_all=update_all)
            else:
                found = lock_pip.lock(m, target, check=check, update=list(update or []), update_all=update_all)
        except (CondaError, lock_pip.LockError) as e:
            raise _fail(f"{target.key}: {e}") from None
        for report in found:
            _print(report)
        reports += found
    held = {line.split()[1] for r in reports for line in r.changes if line[:1] in "~+-"}
    for name in update or ():
        if name not in held and not check:
            console.print(f"[yellow]note:[/yellow] --update {name}: no lock changed it (in no lock, or already at "
                          "the newest version its constraints allow)", highlight=False)
    if check and any(r.status != "fresh" for r in reports):
        raise _fail("some locks are missing or stale: run `vre lock` (where the channels are reachable) and commit "
                    "the result")


def _print(report) -> None:
    seconds = getattr(report, "seconds", 0.0)
    took = f" in {seconds:.1f} s" if seconds else ""
    console.print(f"[{STYLE.get(report.status, 'white')}]{report.status:>7}[/] {report.target} "
                  f"[dim]{report.layer}{took}[/dim]", highlight=False)
    for reason in getattr(report, "reasons", []) if report.status != "fresh" else []:
        console.print(f"          {reason}", highlight=False, style="dim")
    for change in report.changes:
        console.print(f"          {change}", highlight=False)


recipes_app = typer.Typer(help="Recipes under recipes/: render and lint them, build them into a local channel.",
                          no_args_is_help=True)


@recipes_app.command("check")
def recipes_check(
    names: Annotated[Optional[list[str]], typer.Argument(help="recipes (default: all)")] = None,
    matrix: MatrixOpt = DEFAULT_MATRIX,
) -> None:
    """Render every recipe for every platform and lint it (no build, no network)."""
    m = _load(matrix)
    with _reported():
        found = conda_recipes.find(m.root, names)
        problems = conda_recipes.check(found)
    for problem in problems:
        console.print(f"[red]lint:[/red] {problem}", highlight=False)
    console.print(f"{len(found)} recipes rendered for every platform, {len(problems)} problems")
    if problems:
        raise typer.Exit(1)


@recipes_app.command("build")
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
    m = _load(matrix)
    out = output or m.root / ".vre" / "channel"
    channels = [c if "://" in c or not Path(c).is_dir() else Path(c).resolve().as_uri()
                for c in channel or m.spec.flavors["conda"].channels]
    with _reported():
        found = conda_recipes.find(m.root, names)
        started = time.monotonic()
        built = conda_recipes.build(found, out, channels, _network(None, timeout), test=test,
                                    platform=target_platform)
    for b in built:
        console.print(f"built {b.name} {b.version} {b.build} ({b.platform}) in {b.seconds:.1f} s", highlight=False)
    console.print(f"{len(built)} packages in {out} ({time.monotonic() - started:.1f} s); lock with "
                     f"`vre lock --channel {out}`", highlight=False)


def env(
    name: Annotated[str, typer.Argument(help="lock folder under environments/conda/, e.g. deep-learning-cpu")],
    matrix: MatrixOpt = DEFAULT_MATRIX,
    prefix: Annotated[Optional[Path], typer.Option(help="where to create it [default: .vre/envs/NAME]")] = None,
    channel: Annotated[Optional[Path], typer.Option(
        "--channel", help="local channel holding the lock's packages of our recipes (`vre recipes build`)")] = None,
) -> None:
    """Create an environment from its committed lock, as the images install it (no solve)."""
    m = _load(matrix)
    target = prefix or conda_env.default_prefix(m, name)
    with _reported():
        summary, warnings = conda_env.create(m, name, target, _local_channel(m, channel))
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    console.print(f"{summary}\nuse it: conda activate {target}  (or micromamba activate {target}, or run "
                     f"{target}/bin/jupyter lab)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `lock`, `recipes check|build` and `env` to the vre command line."""
    app.command("lock")(lock)
    app.add_typer(recipes_app, name="recipes")
    app.command("env")(env)
