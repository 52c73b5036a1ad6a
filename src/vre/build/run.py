"""Build targets of the matrix with BuildKit, parents first.

Each build gets a staged context (vre.build.context), the proxy CA as a BuildKit secret, and labels
(vre.build.labels). The local tag moves only after a build succeeded and its stages stack (vre.build.stacking): a
failed or interrupted build tags nothing.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vre import engine
from vre.build.base import ensure_base
from vre.build.buildkit import docker_build, tail
from vre.build.context import stage_context
from vre.build.labels import labels
from vre.build.options import BuildOptions, BuildResult
from vre.build.budget import describe_step, over_budget, step_sizes
from vre.build.stacking import stacked
from vre.errors import Interrupted, VreError, interrupted
from vre.lock.flavor import flavor
from vre.matrix import Matrix, Target
from vre.progress import Progress
from vre.sizes import human_size
from vre.release.files import release_files
from vre.workspace import Workspace


@dataclass
class _Job:
    """One target's build in progress: its arguments, context and result, and how to report."""

    matrix: Matrix
    target: Target
    options: BuildOptions
    progress: Progress
    result: BuildResult
    args: list[str]  # the build's arguments without labels (its content stage)
    labelled: list[str]  # ... with the labels (the image and release stages)
    context: Path

    @property
    def workspace(self) -> Workspace:
        return _workspace(self.matrix, self.options)


def _workspace(matrix: Matrix, options: BuildOptions) -> Workspace:
    return options.workspace or Workspace.of(matrix.root)


def build_foundation(matrix: Matrix, flavor_name: str, options: BuildOptions, progress: Progress) -> BuildResult:
    ref = matrix.foundation_ref(flavor_name)
    result = BuildResult(key=f"foundation/{flavor_name}", ref=ref)
    base = ensure_base(matrix, flavor_name, progress.note)
    args = [*platform_args(matrix), "--target", flavor_name, "--build-arg", f"BASE_IMAGE={base}", "-f",
            str(matrix.root / "images" / "foundation" / "Dockerfile")]
    image_id = _run_build(args, matrix.root / "images" / "foundation", result, options,
                          _workspace(matrix, options), progress)
    if image_id:
        _tag(result, image_id, progress)
    return result


def platform_args(matrix: Matrix) -> list[str]:
    """BuildKit's --platform for a matrix built for another platform than the engine's (emulated by qemu-user)."""
    return ["--platform", matrix.platform] if matrix.platform else []


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
    stale = flavor(target.flavor).stale(matrix, target)
    if stale:
        result.status = "failed"
        result.error = ("refusing to build from stale locks:\n  " + "\n  ".join(stale)
                        + "\n  run `vre lock` and commit the result")
        progress.done(result)
        return result
    context = stage_context(matrix, target, _workspace(matrix, options), options.wheels, options.channel)
    dockerfile = target.layers[-1].image_dir / "Dockerfile"
    if not dockerfile.is_file():
        dockerfile = matrix.root / "images" / "layer.Dockerfile"
    args = [*platform_args(matrix), "-f", str(dockerfile),
            "--build-arg", f"BASE_IMAGE={parent_base(matrix, target, options)}",
            "--build-arg", "VRE_LAYERS=" + " ".join(layer.name for layer in target.layers),
            "--build-arg", f"VRE_VARIANT={target.variant or ''}"]
    labelled = [*args, *(arg for name, value in labels(matrix, target).items()
                         for arg in ("--label", f"{name}={value}"))]
    job = _Job(matrix, target, options, progress, result, args, labelled, context)
    for attempt in (1, 2):
        stages = _build_stages(job, anew=attempt > 1)
        if stages is None:
            return result
        content, _, released = stages
        if stacked(*stages):
            if _within_budget(job, released):
                engine.docker("tag", content, content_ref(target.ref))
                for size, step in step_sizes(released, parent_base(matrix, target, options)):
                    progress.note(f"  {target.key}: {human_size(size):>9}  {describe_step(step)}")
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


def _build_stages(job: _Job, anew: bool) -> tuple[str, str, str] | None:
    """The image stage (`anew`: every step run again), its content stage's id, then the release files made from the
    image and embedded: the three image ids, or None when one failed (`job.result` says why)."""
    result, options, progress, workspace = job.result, job.options, job.progress, job.workspace
    image_target = [*job.labelled, "--target", "image", *(["--no-cache"] if anew else [])]
    image_id = _run_build(image_target, job.context, result, options, workspace, progress, again=anew)
    # The content stage's id, right before tagging (an untagged image may be pruned meanwhile): all cached now.
    content = image_id and _run_build([*job.args, "--target", "content"], job.context, result, options, workspace,
                                      progress, again=True)
    if not content:
        return None
    try:
        files = release_files(image_id, job.target.ref, workspace)
    except VreError as err:
        result.status, result.error = "failed", f"release files (manifest, SBOM) not made: {err}"
        progress.done(result)
        return None
    shutil.rmtree(job.context / "release")
    shutil.copytree(files, job.context / "release")
    released = _run_build(job.labelled, job.context, result, options, workspace, progress, again=True)
    return (content, image_id, released) if released else None


def _within_budget(job: _Job, image_id: str) -> bool:
    """Whether the image fits its size budget; when not, the result says why and what weighs most."""
    budget = job.matrix.budget(job.target)
    info = engine.inspect(image_id)
    size = info["Size"] if info else 0
    if budget is None or size <= budget:
        return True
    field = f"images.{job.target.image}.budget" + (f".{job.target.variant}" if job.target.variant else "")
    job.result.status, job.result.size = "failed", size
    job.result.error = over_budget(image_id, size, budget, field)
    job.progress.done(job.result)
    return False


def _tag(result: BuildResult, image_id: str, progress: Progress) -> None:
    """The build succeeded: only now does the tag move."""
    result.image_id = image_id
    engine.docker("tag", image_id, result.ref)
    info = engine.inspect(image_id)
    result.size = info["Size"] if info else 0
    result.status = "built"
    progress.done(result)


def _run_build(args: list[str], context: Path, result: BuildResult, options: BuildOptions, workspace: Workspace,
               progress: Progress, again: bool = False) -> str:
    """One `docker build` for `result` (its log and time accumulate over calls); returns the image id, "" on failure.
    `again`: a stage the previous call built already (from cache, even under --no-cache; its steps are not counted)."""
    if not result.log:
        progress.start(result.key)
        result.log = workspace.log(result.key)
        result.log.unlink(missing_ok=True)
    iidfile = workspace.iidfile(result.key)
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
        code, steps = docker_build([*args, str(context)], result.key, result.log, progress)
        if code != 0 and interrupted():
            # SIGINT reached docker build too, which may exit ("context canceled") before Python raises here.
            raise Interrupted("docker build stopped by the interrupt")
    except (KeyboardInterrupt, Interrupted):
        result.status, result.seconds = "interrupted", result.seconds + time.monotonic() - started
        progress.done(result)
        raise
    result.seconds += time.monotonic() - started
    if not again:
        result.steps, result.cached_steps = len(steps.names), steps.cached
    if code != 0 or not iidfile.is_file():
        result.status = "failed"
        result.error = f"docker build failed (exit {code}); log: {result.log}\n{tail(result.log)}"
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
    steps: list[Callable[[], BuildResult]] = [
        functools.partial(build_foundation, matrix, name, options, progress) for name in flavors]
    steps += [functools.partial(build_target, matrix, target, options, progress) for target in targets]
    for step in steps:
        results.append(step())
        if results[-1].status != "built":
            return False
    return True
