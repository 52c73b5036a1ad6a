"""Build targets of the matrix with BuildKit, parents first.

Each build gets a staged context (the layers it adds, the compat suite, bind-only extras), the proxy CA as a
BuildKit secret, and OCI labels. The local tag moves only after a build succeeded: a failed or interrupted build
tags nothing.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from vre import engine, locks, meta, sbom
from vre.base import ensure_base
from vre.matrix import Matrix, Target

DEFAULT_CA = Path("/etc/ssl/certs/ca-certificates.crt")
STEP = re.compile(r"^#\d+ \[(?P<stage>[^\]]+)\] (?P<what>.*)$")
# Files of an image folder that describe the build itself rather than content for the layer.
NOT_LAYER_FILES = {"Dockerfile", "README.md"}
# What only the content stage's installer reads (Python/conda specs, locks, postBuild): the builder stage's copy of a
# layer leaves them out, so one package more does not rerun a layer's build.sh (OTB bindings, code-server).
INSTALLER_ONLY_FILES = {"requirements.in", "requirements.txt", "constraints.txt", "environment.yml", "conda-lock.yml",
                        "conda-*.lock", "envs", "postBuild"}


@dataclass
class BuildOptions:
    ca_bundle: Path | None = DEFAULT_CA  # extra CA for TLS-intercepting proxies; None: no secret
    wheels: Path | None = None  # extra wheel source (find-links) for pip installs
    channel: Path | None = None  # local conda channel for installs from locks that point to it
    no_cache: bool = False
    workdir: Path = Path(".vre")
    # Build on this image instead of the parent's local tag, and build no foundation: a CI job whose parent was
    # built by another job (on another runner) and pushed to a registry.
    parent_image: str | None = None


@dataclass
class BuildResult:
    key: str
    ref: str
    image_id: str = ""
    size: int = 0
    seconds: float = 0.0
    steps: int = 0
    cached_steps: int = 0
    status: str = "pending"  # built | failed | interrupted
    log: Path | None = None
    error: str = ""


@dataclass
class Progress:
    """What the CLI shows while building; the build calls these as it goes."""

    start: Callable[[str], None] = lambda key: None
    step: Callable[[str, str], None] = lambda key, what: None
    note: Callable[[str], None] = lambda text: None
    done: Callable[[BuildResult], None] = lambda result: None


@dataclass
class _Run:
    steps: set = field(default_factory=set)
    cached: int = 0


def layer_hash(target: Target) -> str:
    """A hash of every file the target's own layers install from (specs, locks, hooks)."""
    digest = hashlib.sha256()
    for layer in target.layers:
        for folder in (layer.spec_dir, layer.image_dir):
            for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else ():
                digest.update(str(path.relative_to(folder.parent)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def lock_hash(matrix: Matrix, target: Target) -> str:
    """The image's lock hash: its own layers chained with its ancestors' (the io.eo-vre.lock-hash label)."""
    chain = [layer_hash(target)]
    key = target.parent
    while key:
        chain.append(layer_hash(matrix.targets[key]))
        key = matrix.targets[key].parent
    return hashlib.sha256("".join(reversed(chain)).encode()).hexdigest()


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def labels(matrix: Matrix, target: Target) -> dict[str, str]:
    revision = _git(matrix.root, "rev-parse", "HEAD") or "unknown"
    if _git(matrix.root, "status", "--porcelain", "--untracked-files=no"):
        revision += "-dirty"
    # The commit time, not the wall clock: a rebuild of the same commit yields the same image config.
    stamp = _git(matrix.root, "log", "-1", "--format=%ct") or "0"
    created = datetime.fromtimestamp(int(stamp), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "org.opencontainers.image.source": _git(matrix.root, "remote", "get-url", "origin") or str(matrix.root),
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.title": target.ref,
        "org.opencontainers.image.description": matrix.spec.images[target.image].description,
        "io.eo-vre.image": target.image,
        "io.eo-vre.flavor": target.flavor,
        "io.eo-vre.variant": target.variant or "",
        "io.eo-vre.layers": " ".join(layer.name for layer in target.layers),
        "io.eo-vre.lock-hash": lock_hash(matrix, target),
    }


def _copy_tree(src: Path, dst: Path, skip: set[str] = frozenset()) -> None:
    if not src.is_dir():
        return
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info", "build", *skip)
    shutil.copytree(src, dst, dirs_exist_ok=True, ignore=ignore)


def stage_context(matrix: Matrix, target: Target, options: BuildOptions) -> Path:
    """The build context of one target, assembled from the repository (see images/layer.Dockerfile)."""
    context = options.workdir.resolve() / "context" / target.key.replace("/", "-")
    shutil.rmtree(context, ignore_errors=True)
    for layer in target.layers:
        dest = context / "layers" / layer.name
        _copy_tree(layer.spec_dir, dest)
        _copy_tree(layer.image_dir, dest, skip=NOT_LAYER_FILES)
        dest.mkdir(parents=True, exist_ok=True)
        _copy_tree(dest, context / "builder" / layer.name, skip=INSTALLER_ONLY_FILES)
        (context / "builder" / layer.name).mkdir(parents=True, exist_ok=True)
    _copy_tree(matrix.root / "compat-tests", context / "compat")
    (context / "release").mkdir()  # the release files, once the image stage is built (see build_target)
    for name, source in (("wheels", options.wheels or matrix.wheels(target)), ("channel", options.channel)):
        (context / "extra" / name).mkdir(parents=True, exist_ok=True)
        if source:
            _copy_tree(source, context / "extra" / name)
    return context


def _docker_build(args: list[str], key: str, log: Path, progress: Progress) -> tuple[int, _Run]:
    """Run `docker build` streaming its plain progress to the log and the step names to the UI."""
    run = _Run()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", buffering=1) as out:  # line-buffered: the log is live for whoever tails it
        proc = subprocess.Popen([engine.client(), "build", "--progress=plain", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=engine.env(), text=True, errors="replace")
        try:
            for line in proc.stdout:
                out.write(line)
                match = STEP.match(line.rstrip())
                if match and not match["stage"].startswith("internal"):
                    run.steps.add(match["stage"])
                    progress.step(key, f"[{match['stage']}] {match['what'][:90]}")
                elif line.rstrip().endswith(" CACHED"):
                    run.cached += 1
            return proc.wait(), run
        except BaseException:
            proc.terminate()
            proc.wait()
            raise


def _tail(log: Path, lines: int = 25) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def build_foundation(matrix: Matrix, flavor: str, options: BuildOptions, progress: Progress) -> BuildResult:
    ref = matrix.foundation_ref(flavor)
    result = BuildResult(key=f"foundation/{flavor}", ref=ref)
    base = ensure_base(matrix, flavor, progress.note)
    args = ["--target", flavor, "--build-arg", f"BASE_IMAGE={base}", "-f",
            str(matrix.root / "images" / "foundation" / "Dockerfile")]
    image_id = _run_build(args, matrix.root / "images" / "foundation", result, options, progress)
    if image_id:
        _tag(result, image_id, progress)
    return result


def content_ref(ref: str) -> str:
    """The local tag of an image's content stage (the image without its compat suite), which its children build
    FROM: editing a compat test then rebuilds only each image's last layer. BuildKit's FROM takes a name, not an id."""
    return f"{ref}-content"


def parent_base(matrix: Matrix, target: Target, options: BuildOptions) -> str:
    """What a target builds FROM: its parent's content stage when that is here, else the parent's image (CI's
    --parent-image, or a content tag removed meanwhile)."""
    if options.parent_image:
        return options.parent_image
    if not target.parent:
        return matrix.foundation_ref(target.flavor)
    ref = matrix.targets[target.parent].ref
    return content_ref(ref) if engine.image_id(content_ref(ref)) else ref


def build_target(matrix: Matrix, target: Target, options: BuildOptions, progress: Progress) -> BuildResult:
    """Build one target: the image (content + compat suite), then its release files (manifest, SBOM) embedded; the
    image and its content stage are tagged only when all of it succeeded."""
    result = BuildResult(key=target.key, ref=target.ref)
    stale = locks.stale(matrix, target)
    if stale:
        result.status = "failed"
        result.error = ("refusing to build from stale locks:\n  " + "\n  ".join(stale)
                        + "\n  run `vre lock` and commit the result")
        progress.done(result)
        return result
    context = stage_context(matrix, target, options)
    dockerfile = target.layers[-1].image_dir / "Dockerfile"
    if not dockerfile.is_file():
        dockerfile = matrix.root / "images" / "layer.Dockerfile"
    args = ["-f", str(dockerfile), "--build-arg", f"BASE_IMAGE={parent_base(matrix, target, options)}",
            "--build-arg", "VRE_LAYERS=" + " ".join(layer.name for layer in target.layers),
            "--build-arg", f"VRE_VARIANT={target.variant or ''}"]
    labelled = [*args, *(arg for name, value in labels(matrix, target).items() for arg in ("--label", f"{name}={value}"))]
    for attempt in (1, 2):
        stages = _build_stages(target, args, labelled, context, result, options, progress, anew=attempt > 1)
        if stages is None:
            return result
        content, _, released = stages
        if _stacked(*stages):
            engine.docker("tag", content, content_ref(target.ref))
            _tag(result, released, progress)
            return result
        # BuildKit built a stage anew instead of taking it from its cache (seen with other builds on the engine):
        # the image stage's cached result stands on the older content. Build the image stage and all below it anew.
        progress.note(f"{target.key}: the content, image and release stages do not stack; building them anew")
    result.status = "failed"
    result.error = ("the content, image and release stages were not built one on the other, even with every step run "
                    "anew: BuildKit did not reuse stages it had just built (other builds on this engine at the same "
                    "time?); nothing tagged")
    progress.done(result)
    return result


def _build_stages(target: Target, args: list[str], labelled: list[str], context: Path, result: BuildResult,
                  options: BuildOptions, progress: Progress, anew: bool) -> tuple[str, str, str] | None:
    """The image stage (`anew`: every step run again), its content stage's id, then the release files made from the
    image and embedded: the three image ids, or None when one failed (`result` says why)."""
    image_target = [*labelled, "--target", "image", *(["--no-cache"] if anew else [])]
    image_id = _run_build(image_target, context, result, options, progress, again=anew)
    # The content stage's id, right before tagging (an untagged image may be pruned meanwhile): all cached now.
    content = image_id and _run_build([*args, "--target", "content"], context, result, options, progress, again=True)
    if not content:
        return None
    try:
        files = meta.release_files(image_id, target.ref, options.workdir)
    except (engine.EngineError, sbom.SbomError) as err:
        result.status, result.error = "failed", f"release files (manifest, SBOM) not made: {err}"
        progress.done(result)
        return None
    shutil.rmtree(context / "release")
    shutil.copytree(files, context / "release")
    released = _run_build(labelled, context, result, options, progress, again=True)
    return (content, image_id, released) if released else None


def _stacked(*image_ids: str) -> bool:
    """Each image's layers start with the previous one's: the tagged content is the tested image's, whose release
    files (manifest, SBOM) describe the published image."""
    layers = [engine.inspect(i)["RootFS"]["Layers"] for i in image_ids]
    return all(upper[:len(lower)] == lower for lower, upper in zip(layers, layers[1:]))


def _tag(result: BuildResult, image_id: str, progress: Progress) -> None:
    """The build succeeded: only now does the tag move."""
    result.image_id = image_id
    engine.docker("tag", image_id, result.ref)
    result.size = engine.inspect(image_id)["Size"]
    result.status = "built"
    progress.done(result)


def _run_build(args: list[str], context: Path, result: BuildResult, options: BuildOptions, progress: Progress,
               again: bool = False) -> str:
    """One `docker build` for `result` (its log and time accumulate over calls); returns the image id, "" on failure.
    `again`: a stage the previous call built already (from cache, even under --no-cache; its steps are not counted)."""
    if not result.log:
        progress.start(result.key)
        result.log = options.workdir.resolve() / "logs" / (result.key.replace("/", "-") + ".log")
        result.log.unlink(missing_ok=True)
    iidfile = options.workdir.resolve() / "iid" / result.key.replace("/", "-")
    iidfile.parent.mkdir(parents=True, exist_ok=True)
    iidfile.unlink(missing_ok=True)
    args = [*args, "--iidfile", str(iidfile)]
    if options.ca_bundle:
        if not options.ca_bundle.is_file():
            result.status, result.error = "failed", f"CA bundle {options.ca_bundle} not found (use --ca-bundle PATH)"
            progress.done(result)
            return ""
        args += ["--secret", f"id=vre-ca,src={options.ca_bundle}"]
    if options.no_cache and not again:
        args.append("--no-cache")
    started = time.monotonic()
    try:
        code, run = _docker_build([*args, str(context)], result.key, result.log, progress)
    except KeyboardInterrupt:
        result.status, result.seconds = "interrupted", result.seconds + time.monotonic() - started
        progress.done(result)
        raise
    result.seconds += time.monotonic() - started
    if not again:
        result.steps, result.cached_steps = len(run.steps), run.cached
    if code != 0 or not iidfile.is_file():
        result.status = "failed"
        result.error = f"docker build failed (exit {code}); log: {result.log}\n{_tail(result.log)}"
        progress.done(result)
        return ""
    return iidfile.read_text().strip()


def build(matrix: Matrix, targets: list[Target], options: BuildOptions, progress: Progress,
          results: list[BuildResult]) -> bool:
    """Build the foundations the targets need, then the targets in matrix order, appending to `results`.

    Stops at the first failure (children of a failed image cannot build); returns whether all were built.
    """
    engine.ping()
    flavors = () if options.parent_image else dict.fromkeys(t.flavor for t in targets)
    steps = [lambda f=flavor: build_foundation(matrix, f, options, progress) for flavor in flavors]
    steps += [lambda t=target: build_target(matrix, t, options, progress) for target in targets]
    for step in steps:
        results.append(step())
        if results[-1].status != "built":
            return False
    return True
