"""The extension image: staged, built FROM the base with its installer, checked to leave every base package as it
was, tested (the base's compat suite, then the folder's tests), described (manifest, SBOM, release notes against the
base) and only then tagged: a refused or failed extension tags nothing."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vre import engine
from vre.build.context import copy_tree
from vre.build.options import DEFAULT_CA, BuildOptions, BuildResult
from vre.build.run import _run_build
from vre.build.stacking import stacked
from vre.errors import FAILED
from vre.extend import ExtendError, apt, baseimage, conda, pip
from vre.extend import folder as folder_mod
from vre.progress import Progress
from vre.release import files as meta
from vre.release import notes as diff
from vre.release import sbom
from vre.release.manifest import Manifest
from vre.sizes import human_size
from vre.verify.compat import SuiteResult, run_compat, run_logged
from vre.workspace import Workspace

DOCKERFILE = Path(__file__).with_name("extension.Dockerfile")
EXTRA = "/tmp/vre-extra"  # where the Dockerfile bind-mounts the context's extra/
NOTES = "release-notes.md"
IMAGE_ID = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")
SUMMARY = re.compile(r"^(=+ .*(passed|failed|error).* =+|FAILED .*|ERROR .*)$")  # what a compat run shows of its log


@dataclass
class ExtendOptions:
    tag: str  # the image to make, e.g. my-lab:2026-11
    layer: str | None = None  # its layer name (default: the folder's name)
    ca_bundle: Path | None = DEFAULT_CA
    wheels: Path | None = None  # extra wheel source for requirements.in (find-links), locked by hash like PyPI's
    channel: Path | None = None  # local conda channel: solved with priority, mounted for the install
    test: bool = True  # run the base's compat suite and the folder's tests before tagging
    workspace: Workspace = field(default_factory=lambda: Workspace.of(Path.cwd()))


@dataclass
class ExtendResult:
    ref: str
    base: str
    layer: str = ""
    image_id: str = ""
    size: int = 0
    lock_changes: list[str] = field(default_factory=list)
    compat: SuiteResult | None = None
    tests: SuiteResult | None = None
    release: Path | None = None  # manifest.json, manifest.md, sbom.cdx.json, release-notes.md
    log: Path | None = None


def extend(base_ref: str, path: Path, options: ExtendOptions, say: Callable[[str], None] = lambda line: None,
           progress: Progress | None = None) -> ExtendResult:
    """Lock, build, check, test, describe and tag the extension; ExtendError (nothing tagged) when any of it fails."""
    progress = progress or Progress()
    result = ExtendResult(ref=options.tag, base=base_ref)
    try:
        engine.ping()
    except engine.EngineError as e:
        raise ExtendError(str(e), FAILED) from None
    with tempfile.TemporaryDirectory(prefix="vre-extend-") as tmp:
        base = baseimage.read(base_ref, Path(tmp) / "base")
        folder = folder_mod.load(path, base.flavor, base.layers, options.layer)
        result.layer = folder.layer
        say(f"{base.ref}: {base.flavor} flavor, layers {' '.join(base.layers)}; extension layer {folder.layer}")
        apt.refuse_changes(folder, base)
        if base.flavor == "debian":
            result.lock_changes = pip.lock(folder, base, options.wheels)
        else:
            result.lock_changes = conda.lock(folder, base, Path(tmp) / "solve", options.channel)
        say(f"lock: {', '.join(result.lock_changes) if result.lock_changes else 'unchanged'}")
        context = _stage(folder, base, options)
        build = BuildResult(key=f"extend-{folder.layer}", ref=options.tag)
        args = ["-f", str(DOCKERFILE), "--build-arg", f"BASE_IMAGE={_from(base)}",
                "--build-arg", f"VRE_LAYER={folder.layer}",
                *(a for name, value in _labels(base, folder, options).items() for a in ("--label", f"{name}={value}"))]
        build_options = BuildOptions(ca_bundle=options.ca_bundle, workspace=options.workspace)
        image_id = _run_build([*args, "--target", "image"], context, build, build_options, options.workspace, progress)
        result.log = build.log
        if not image_id:
            raise ExtendError(f"{options.tag}: {build.error}", FAILED)
        if not stacked(base.image_id, image_id):
            raise ExtendError(f"{options.tag}: built FROM {base.ref}, which is no longer the image read before "
                              f"({base.image_id[:19]}): it was retagged meanwhile; nothing tagged", FAILED)
        files, changes = _release_files(image_id, base, options)
        _refuse_base_changes(changes, base, files)
        if options.test:
            result.compat, result.tests = _test(image_id, folder, options, say)
        shutil.rmtree(context / "release")
        shutil.copytree(files, context / "release")
        released = _run_build(args, context, build, build_options, options.workspace, progress, again=True)
        if not released or not stacked(image_id, released):
            raise ExtendError(f"{options.tag}: the image with its release files was not built on the tested image "
                              f"({build.error or 'BuildKit did not reuse the stage it had just built'}); nothing "
                              "tagged", FAILED)
    engine.docker("tag", released, options.tag)
    result.release = options.workspace.artifacts(options.tag)  # where `vre artifacts` puts an image's files
    shutil.rmtree(result.release, ignore_errors=True)
    shutil.copytree(files, result.release)
    info = engine.inspect(released)
    result.image_id, result.size = released, info["Size"] if info else 0
    return result


def _from(base: baseimage.BaseImage) -> str:
    """A name for FROM (BuildKit takes no image id): the reference given, else a tag of that image. The build is
    checked to stand on the base's layers afterwards, so a tag moved meanwhile is caught."""
    if not IMAGE_ID.match(base.ref):
        return base.ref
    tags: list[str] = (engine.inspect(base.image_id) or {}).get("RepoTags") or []
    if not tags:
        raise ExtendError(f"BASE_IMAGE {base.ref}: an image id without a tag (expected a tag: BuildKit's FROM takes "
                          "names only; `docker tag` it first)")
    return tags[0]


def _labels(base: baseimage.BaseImage, folder: folder_mod.Folder, options: ExtendOptions) -> dict[str, str]:
    """The base's labels stay (inherited); these say what was added on what."""
    return {"org.opencontainers.image.title": options.tag,
            "org.opencontainers.image.description": f"{base.ref} extended with {folder.layer}",
            "io.eo-vre.layers": " ".join([*base.layers, folder.layer]),
            "io.eo-vre.base-image": f"{base.ref}@{base.image_id}"}


def _stage(folder: folder_mod.Folder, base: baseimage.BaseImage, options: ExtendOptions) -> Path:
    context = options.workspace.context(f"extend-{folder.layer}")
    shutil.rmtree(context, ignore_errors=True)
    copy_tree(folder.path, context / "layer", skip={".*"})
    extra = context / "extra"
    for name, source in (("wheels", options.wheels), ("channel", options.channel)):
        (extra / name).mkdir(parents=True, exist_ok=True)
        if source:
            copy_tree(source, extra / name)
    apt.write_pins(base, extra, EXTRA)
    (context / "release").mkdir()
    return context


def _release_files(image_id: str, base: baseimage.BaseImage, options: ExtendOptions) -> tuple[Path, list[diff.Change]]:
    """The image's manifest and SBOM (as every eo-vre image has), its release notes against the base, and the package
    changes they list."""
    try:
        files = meta.release_files(image_id, options.tag, options.workspace)
        before = meta.image_manifest(base.image_id)
    except (engine.EngineError, sbom.SbomError) as e:
        raise ExtendError(f"{options.tag}: release files (manifest, SBOM) not made: {e}", FAILED) from None
    after = Manifest.model_validate_json((files / "manifest.json").read_text())
    rows = [("image", base.ref, options.tag), ("image id", f"`{before.image_id[:19]}`", f"`{image_id[:19]}`"),
            ("size", human_size(before.size), human_size(after.size)),
            ("layers", ", ".join(before.layers), ", ".join(after.layers))]
    table = ["| | base | extension |", "|---|---|---|", *(f"| {k} | {a} | {b} |" for k, a, b in rows), ""]
    changes = diff.changes(before.packages, after.packages)
    (files / NOTES).write_text(diff.release_notes(base.ref, options.tag, {"": changes}, preamble=table))
    (files / NOTES).chmod(0o644)
    return files, changes


def _refuse_base_changes(changes: list[diff.Change], base: baseimage.BaseImage, files: Path) -> None:
    """Every package of the base is still there at its version (postBuild could have changed one): else refused."""
    moved = [c for c in changes if c.kind != "added"]
    if moved:
        listed = "; ".join(f"{c.ecosystem} {c.name} {', '.join(c.old) or '-'} -> {', '.join(c.new) or '-'} ({c.kind})"
                           for c in moved)
        shutil.rmtree(files, ignore_errors=True)  # made for an image that is refused
        raise ExtendError(f"the extension changed packages of {base.name}: {listed}. An extension only adds packages "
                          f"(is it postBuild?); nothing tagged", FAILED)


def _test(image_id: str, folder: folder_mod.Folder, options: ExtendOptions,
          say: Callable[[str], None]) -> tuple[SuiteResult, SuiteResult | None]:
    say("the base's compat suite (vre-compat)")
    compat = run_compat(image_id, options.workspace,
                        stream=lambda line: say("  " + line) if SUMMARY.match(line) else None)
    if not compat.ok:
        raise ExtendError(f"{options.tag}: the base's compat suite failed ({compat.failed} failed, exit "
                          f"{compat.exit_code}); log: {compat.log}; nothing tagged", FAILED)
    if not folder.has("tests"):
        return compat, None
    say(f"{folder.show('tests/')}")
    log = options.workspace.log(f"extend-{folder.layer}-tests")
    log.parent.mkdir(parents=True, exist_ok=True)
    tests = SuiteResult(ref=options.tag, image_id=image_id, log=log)
    with tempfile.TemporaryDirectory(prefix="vre-report-") as report:
        Path(report).chmod(0o777)  # written by the image's user
        run_logged([engine.client(), "run", "--rm", "-e", "PYTHONDONTWRITEBYTECODE=1", "-v",
                    f"{report}:/tmp/vre-report", image_id, "python", "-m", "pytest", "-v", "-p", "no:cacheprovider",
                    "--junitxml=/tmp/vre-report/junit.xml", f"/opt/vre/layers/{folder.layer}/tests"],
                    tests, Path(report) / "junit.xml", lambda line: say("  " + line))
    if not tests.ok:
        raise ExtendError(f"{folder.show('tests/')}: {tests.failed} failed, {tests.passed} passed (exit "
                          f"{tests.exit_code}); log: {tests.log}; nothing tagged", FAILED)
    return compat, tests
