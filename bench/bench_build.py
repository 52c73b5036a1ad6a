"""Build figures of the benchmark: cold builds, warm rebuilds, and a rebuild after one Python package of a top layer
changed. The cold builds and the one-package rebuild run in a throwaway copy of the repository whose matrix is named
eo-vre-bench, and what they tag is removed afterwards; the warm rebuild is a real build (a tag moves only if something
changed, as with `vre build`). The engine's build cache is never pruned."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

import bench_layers
import yaml

from vre import engine
from vre.lock import debian as lock_pip
from vre import matrix as matrix_mod
from vre.build.base import base_ref, ensure_base
from vre.build import BuildOptions, BuildResult, build, content_ref, parent_base
from vre.build.stacking import rootfs, stands_on
from vre.progress import Progress
from vre.workspace import Workspace

BENCH_NAME = "eo-vre-bench"  # the matrix name of the copies: their images are eo-vre-bench/<image>:<tag>


class BenchError(RuntimeError):
    pass


def copy_repo(m: matrix_mod.Matrix, dest: Path, own_base: bool = False) -> matrix_mod.Matrix:
    """A copy of the repository's working tree (uncommitted files included) whose matrix is named BENCH_NAME.

    own_base: bootstrap each base one second earlier (SOURCE_DATE_EPOCH), a rootfs that differs only in file times.
    mmdebstrap is reproducible, so the same inputs give the real base's layer, and BuildKit loads the newest result
    of a cache key: --no-cache builds on it would replace the real images' cached steps for everyone."""
    shutil.copytree(m.root, dest, ignore=shutil.ignore_patterns(".git", ".vre", "node_modules", "__pycache__"))
    path = dest / m.path.resolve().relative_to(m.root.resolve())
    spec = yaml.safe_load(path.read_text())
    spec["name"] = BENCH_NAME
    for flavor in spec["flavors"].values():
        if own_base and "bootstrap" in flavor["base"]:
            flavor["base"]["bootstrap"]["source_date_epoch"] -= 1
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return matrix_mod.load(path, root=dest)


def _progress(wall: dict[str, float]) -> Progress:
    """One line per image, not per step (the full logs are in the workdir's logs/), and each image's wall time: its
    docker builds and what the factory does between them (the release files); BuildResult.seconds has builds only."""
    started: dict[str, float] = {}

    def start(key: str) -> None:
        started[key] = time.monotonic()
        print(f"  building {key}", flush=True)

    def done(result: BuildResult) -> None:
        wall[result.key] = time.monotonic() - started.get(result.key, time.monotonic())  # 0: refused
        print(f"  {result.key}: {result.status} in {wall[result.key]:.0f} s" + (f"\n{result.error}" if result.error
                                                                              else ""), flush=True)

    return Progress(start=start, done=done)


def _build(m: matrix_mod.Matrix, targets, options: BuildOptions, results: list[BuildResult]) -> dict[str, dict]:
    wall: dict[str, float] = {}
    try:
        if not build(m, targets, options, _progress(wall), results):
            raise BenchError(f"{results[-1].key}: {results[-1].error}")
    finally:
        shutil.rmtree(options.workspace.contexts, ignore_errors=True)  # staged copies (wheelhouses: 100s of MB)
    return {r.key: {"seconds": round(wall[r.key], 1), "docker_build_seconds": round(r.seconds, 1),
                    "steps": r.steps, "cached": r.cached_steps, "size": r.size, "image_id": r.image_id}
            for r in results}


def _remove(refs) -> None:
    for ref in refs:  # untags; an image id that has no other tag goes with it (its build cache stays)
        engine.docker("image", "rm", ref, check=False)


def _made(results: list[BuildResult]) -> list[str]:
    """Every tag that builds made: each image and, for matrix images, its content stage."""
    return [ref for r in results for ref in ((r.ref,) if r.key.startswith("foundation/") else
                                             (r.ref, content_ref(r.ref)))]


def cold(m: matrix_mod.Matrix, keys: list[str], workdir: Path) -> dict[str, dict]:
    """Every step run anew (--no-cache), the base bootstrapped again: per image the build time and, for the bases,
    the bootstrap time. In a copy named eo-vre-bench on a base of its own, so the real images, their tags and the
    cached steps they are built from stay as they are."""
    with tempfile.TemporaryDirectory(prefix="vre-bench-cold-") as tmp:
        copy = copy_repo(m, Path(tmp) / "repo", own_base=True)
        targets = [copy.targets[key] for key in keys]
        figures: dict[str, dict] = {}
        made: list[str] = []
        results: list[BuildResult] = []
        started = time.monotonic()
        try:
            for flavor in dict.fromkeys(t.flavor for t in targets):
                ref = base_ref(copy, flavor)
                if not copy.spec.flavors[flavor].base.bootstrap:
                    raise BenchError(f"{m.path}: flavors.{flavor}.base is a registry image: --no-cache builds on it "
                                     "would replace the real images' cached steps (expected base.bootstrap)")
                made.append(ref)
                engine.docker("image", "rm", ref, check=False)  # left by an interrupted run
                begun = time.monotonic()
                ensure_base(copy, flavor, lambda text: print(f"  {text}", flush=True))
                figures[f"base/{flavor}"] = {"seconds": round(time.monotonic() - begun, 1)}
            figures.update(_build(copy, targets, BuildOptions(workspace=Workspace(workdir), no_cache=True), results))
        finally:
            _remove(made + _made(results))
        figures["total"] = {"seconds": round(time.monotonic() - started, 1)}
        return figures


def warm(m: matrix_mod.Matrix, keys: list[str], workdir: Path) -> dict[str, dict]:
    """The real images rebuilt with nothing changed, each on the parent it is built on (the foundation is not
    rebuilt): per image the time, the steps BuildKit took from its cache, and whether the image id stayed the same
    (if not, its inputs changed and the tag moved, as `vre build` moves it). An image whose parent was rebuilt after
    it is skipped: rebuilding it is no warm rebuild, and would move a tag that others may be testing."""
    figures = {}
    for key in keys:
        target = m.targets[key]
        parent = parent_base(m, target, BuildOptions())
        before = engine.image_id(target.ref)
        if before and not stands_on(rootfs(target.ref), rootfs(parent)):
            figures[key] = {"not_run": f"{target.ref} is older than {parent}: `vre build` it first"}
            print(f"  {key}: not run, {figures[key]['not_run']}", flush=True)
            continue
        results: list[BuildResult] = []
        options = BuildOptions(workspace=Workspace(workdir), parent_image=parent)
        figures[key] = _build(m, [target], options, results)[key]
        figures[key]["same_id"] = before == results[-1].image_id
    return figures


def one_package(m: matrix_mod.Matrix, key: str, package: str, workdir: Path) -> dict:
    """Add `package` to the top layer's requirements.in of a copy of the repository, lock it, and rebuild the image
    there on the real parent's content stage: the build time, the lock's changes, which layers were rebuilt (with
    the step that made them), the bytes a user of the real image pulls to update, and whether the parent's layers
    came from the cache. Only the image is built (BuildOptions.parent_image): its tag is eo-vre-bench/..., and no
    base, foundation or parent of the copy is made."""
    real = m.targets[key]
    if real.flavor != "debian":
        raise BenchError(f"{key}: the one-package rebuild edits a requirements.in (debian flavor only)")
    old = bench_layers.layers(real.ref)
    parent = parent_base(m, real, BuildOptions())
    # The parent as it is now, under a tag of ours: a build of the real parent meanwhile cannot move it.
    pinned = f"{BENCH_NAME}/parent:{uuid.uuid4().hex[:12]}"
    engine.docker("tag", parent, pinned)
    results: list[BuildResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="vre-bench-package-") as tmp:
            copy = copy_repo(m, Path(tmp) / "repo")
            target = copy.targets[key]
            spec = target.layers[-1].spec_dir / "requirements.in"
            layer = str(spec.relative_to(copy.root))
            if not spec.is_file():
                raise BenchError(f"{layer}: not found (the top layer of {key} has no pip packages)")
            spec.write_text(spec.read_text() + f"\n# added by bench/bench.py\n{package}\n")
            started = time.monotonic()
            changes = [c for report in lock_pip.lock(copy, target, check=False, update=[]) for c in report.changes]
            lock_seconds = time.monotonic() - started
            options = BuildOptions(workspace=Workspace(workdir), parent_image=pinned)
            figures = _build(copy, [target], options, results)[key]
            new = bench_layers.layers(target.ref)
            parent_layers = bench_layers.layers(pinned)
    finally:
        _remove([pinned, *_made(results)])
    rebuilt = bench_layers.missing(new, old)
    below = len(parent_layers)
    return {**figures, "package": package, "layer": layer, "lock_changes": changes,
            "lock_seconds": round(lock_seconds, 1), "parent": parent, "parent_layers": below,
            # Nothing of the parent was rebuilt: the new image has the real image's parent layers...
            "parent_unchanged": stands_on(bench_layers.digests(new), bench_layers.digests(old[:below])),
            # ... unless the real image predates its parent's last build (then it differs there too).
            "old_on_parent": stands_on(bench_layers.digests(old), bench_layers.digests(parent_layers)),
            "layers": len(new), "rebuilt": bench_layers.to_json(rebuilt),
            "update_bytes": sum(x.size for x in rebuilt)}
