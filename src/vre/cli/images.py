"""The image commands of `vre`: list, build, test, scan-ca."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.tree import Tree

from vre.build import DEFAULT_CA, BuildOptions, BuildResult, build
from vre.build.base import base_ref
from vre.cli.options import DEFAULT_MATRIX, FlavorOpt, ImagesArg, MatrixOpt, PlatformOpt, VariantOpt, named, select
from vre.cli.report import Row, console, progress, summary
from vre.engine import EngineError
from vre.errors import USAGE, Interrupted, VreError
from vre.matrix import Matrix, Target, load, target_key
from vre.verify import ca_scan
from vre.verify.browser import needs_browser, run_browser
from vre.verify.compat import SuiteResult, merge, run_compat
from vre.verify.verdicts import record
from vre.workspace import Workspace


def list_(matrix: MatrixOpt = DEFAULT_MATRIX, flavor: FlavorOpt = None) -> None:
    """Show the matrix as a tree: base → foundation → images, per flavor."""
    m = load(matrix)
    root = Tree(f"[bold]{m.spec.name}[/bold] ({matrix})")
    for name in m.spec.flavors:
        if flavor and name not in flavor:
            continue
        base = root.add(f"[bold]{name}[/bold] base {base_ref(m, name)}").add(f"foundation {m.foundation_ref(name)}")
        nodes: dict[str | None, Tree] = {None: base}
        for key, target in m.targets.items():
            if target.flavor == name:
                layers = "+".join(layer.name for layer in target.layers)
                nodes[key] = nodes[target.parent].add(
                    f"{target.ref}  [dim]layers {layers}; {', '.join(target.platforms)}[/dim]")
    console.print(root)


def _rows(targets: Sequence[Target], results: list[BuildResult]) -> list[Row]:
    by_key = {r.key: r for r in results}
    rows = [Row("foundation", r.key.split("/")[1], "", build=r) for r in results if r.key.startswith("foundation/")]
    return rows + [Row(t.image, t.flavor, t.variant or "", build=by_key.get(t.key)) for t in targets]


def _line(line: str) -> None:
    console.print("  " + line, markup=False, highlight=False)


def _test_rows(rows: list[Row], targets: Sequence[Target], m: Matrix, gpu: bool, pytest_args: list[str],
               browser: bool = True) -> None:
    workspace = Workspace.of(m.root)
    by_key = {target_key(r.image, r.flavor, r.variant): r for r in rows}
    for target in targets:
        row = by_key[target.key]
        if row.build and row.build.status != "built":
            continue
        console.print(f"[bold]▶ testing {target.ref}[/bold]")
        try:
            compat = row.test = run_compat(target.ref, workspace, gpu=gpu, pytest_args=pytest_args, stream=_line)
            in_browser = needs_browser(target)
            outside = None
            if browser and in_browser:
                console.print(f"[bold]▶ browser checks of {target.ref}[/bold] (Chromium, vre.verify.browser)")
                outside = run_browser(target.ref, m.root, workspace, stream=_line)
                row.test = merge(compat, outside)
            # The verdict on this image id, which `vre publish` requires.
            complete = not pytest_args and (outside is not None or not in_browser)
            record(workspace, compat, outside, complete=complete, pytest_args=pytest_args, gpu=gpu)
        except EngineError as e:
            console.print(f"[red]error:[/red] {e}", highlight=False)
            row.test = SuiteResult(ref=target.ref)


def _finish(rows: list[Row], title: str) -> None:
    console.print(summary(rows, title))
    failed = [r for r in rows if (r.build and r.build.status != "built") or (r.test and not r.test.ok)]
    if failed:
        raise typer.Exit(1)


def build_cmd(
    images: ImagesArg = None,
    matrix: MatrixOpt = DEFAULT_MATRIX,
    flavor: FlavorOpt = None,
    variant: VariantOpt = None,
    ca_bundle: Annotated[Path, typer.Option(help="extra CA bundle given to builds as a BuildKit secret")] = DEFAULT_CA,
    no_ca_bundle: Annotated[bool, typer.Option(help="give builds no CA secret")] = False,
    wheels: Annotated[Optional[Path], typer.Option(help="extra wheel source (find-links) for pip")] = None,
    channel: Annotated[Optional[Path], typer.Option(help="local conda channel the locks may point to")] = None,
    no_cache: Annotated[bool, typer.Option(help="rebuild every step")] = False,
    test: Annotated[bool, typer.Option("--test/--no-test",
                                       help="run each image's compat suite after building")] = False,
    parent_image: Annotated[Optional[str], typer.Option(
        help="build only the named image (not its parents), on this image (e.g. its parent, pulled from a "
             "registry by a CI job)")] = None,
    platform: PlatformOpt = None,
) -> None:
    """Build images (and the parents they need), parents first."""
    m, targets = select(matrix, images, flavor, variant, platform)
    if parent_image:
        targets = [t for t in targets if t.image in (images or ())]
        if len(targets) != 1:
            raise VreError("--parent-image needs exactly one image, flavor and variant "
                           f"(these select {len(targets)})", USAGE)
    options = BuildOptions(ca_bundle=None if no_ca_bundle else ca_bundle, wheels=wheels, channel=channel,
                           no_cache=no_cache, workspace=Workspace.of(m.root), parent_image=parent_image)
    results: list[BuildResult] = []
    try:
        build(m, targets, options, progress(), results)
    except (KeyboardInterrupt, Interrupted):
        console.print(summary(_rows(targets, results), "interrupted: no tag moved for the image being built"))
        raise Interrupted() from None
    rows = _rows(targets, results)
    if test:
        _test_rows(rows, targets, m, gpu=False, pytest_args=[])
    _finish(rows, "build" + (" and test" if test else ""))


def test_cmd(
    ctx: typer.Context,
    images: ImagesArg = None,
    matrix: MatrixOpt = DEFAULT_MATRIX,
    flavor: FlavorOpt = None,
    variant: VariantOpt = None,
    gpu: Annotated[bool, typer.Option("--gpu", help="pass the host's GPUs to the container (--gpus all)")] = False,
    browser: Annotated[bool, typer.Option(
        "--browser/--no-browser", help="also run the browser tests for images with a desktop or an IDE")] = True,
    platform: PlatformOpt = None,
) -> None:
    """Run the compat suite inside built images. Arguments after `--` go to pytest (e.g. -- -k proj)."""
    # Click hands what follows `--` to the variadic IMAGES: pytest's arguments start at the first option there.
    split = next((i for i, arg in enumerate(images or ()) if arg.startswith("-")), len(images or ()))
    images, pytest_args = (images or [])[:split], [*(images or [])[split:], *ctx.args]
    # The named images only: testing an image needs no parent image (a CI job has only the one it built).
    m, targets = named(matrix, images, flavor, variant, platform)
    rows = [Row(t.image, t.flavor, t.variant or "") for t in targets]
    _test_rows(rows, targets, m, gpu=gpu, pytest_args=pytest_args, browser=browser)
    _finish(rows, "test")


def scan_ca(
    image: Annotated[str, typer.Argument(help="image reference or id")],
    ca_bundle: Annotated[Path, typer.Option(help="the CA bundle given to builds")] = DEFAULT_CA,
) -> None:
    """Prove that no layer (nor the history) of an image contains a certificate of the build-time CA bundle."""
    findings = ca_scan.scan(image, ca_bundle)
    for finding in findings:
        console.print(f"[red]leak:[/red] {finding}", highlight=False)
    console.print(f"{image}: {'CA found in ' + str(len(findings)) + ' place(s)' if findings else 'no build CA found'}")
    if findings:
        raise typer.Exit(1)
