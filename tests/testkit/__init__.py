"""Helpers shared by the factory's tests, imported as `tests.testkit` (the repository root is pytest's rootdir)."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from vre import matrix
from vre.lock import apt as lock_apt
from vre.build import BuildOptions, build
from vre.progress import Progress
from vre.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]
REAL = yaml.safe_load((ROOT / "images" / "matrix.yaml").read_text())
# The heavy images: the gpu variants (~10 GB of CUDA wheels to download, ~13 GB each) and the all-in-one `vre`
# (every layer again on deep-learning, 120 import orders in its coexistence suite). With them, a run on a fresh
# 2-core machine takes well over the 45 minutes .ci/run has: they build and test with VRE_TEST_ALL=1, and in the
# main job (`make images`: `vre build --test` of the whole debian matrix).
ALL_IMAGES = os.environ.get("VRE_TEST_ALL") == "1"
needs_all_images = pytest.mark.skipif(not ALL_IMAGES, reason="heavy image (gpu variant or all-in-one vre) not built "
                                                             "in this run: set VRE_TEST_ALL=1 (or run make images)")


def heavy(target: matrix.Target, m: matrix.Matrix) -> bool:
    return target.variant == "gpu" or bool(m.spec.images[target.image].include)


def build_or_fail(m: matrix.Matrix, keys: list[str], workdir: Path, **options) -> dict[str, str]:
    """Build targets through the factory; fail the test with the build's own error."""
    results = []
    build_options = BuildOptions(workspace=Workspace(workdir), **options)
    ok = build(m, [m.targets[k] for k in keys], build_options, Progress(), results)
    if not ok:
        pytest.fail(f"{results[-1].key}: {results[-1].error}")
    return {r.key: r.ref for r in results}


def scaffold(root: Path, flavor: str, images: dict[str, dict], specs: dict[str, dict[str, str]],
             flavor_fields: dict | None = None, platforms: list[str] | None = None, apt_lock: bool = True) -> Path:
    """A throwaway repository with the real foundation, layer Dockerfile and compat suite, one flavor, the given
    images (matrix entries) and spec folders (environments/<flavor>/<folder>/<file>: text).

    Same matrix name and base as the real matrix: the base and the foundation come from the build cache.
    """
    shutil.copytree(ROOT / "images" / "foundation", root / "images" / "foundation")
    shutil.copy(ROOT / "images" / "layer.Dockerfile", root / "images" / "layer.Dockerfile")
    shutil.copytree(ROOT / "compat-tests", root / "compat-tests",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    spec = {"name": REAL["name"], "flavors": {flavor: {**REAL["flavors"][flavor], **(flavor_fields or {})}},
            "variants": REAL["variants"], "platforms": platforms or REAL["platforms"],
            "images": {name: {"flavors": [flavor], **image} for name, image in images.items()}}
    (root / "images" / "matrix.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    for folder, files in specs.items():
        for name, text in files.items():
            path = root / "environments" / flavor / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
            if name == "postBuild":
                path.chmod(0o755)
    if flavor == "debian" and apt_lock:  # as `vre lock` would (the foundation's is committed); asks Debian's mirror
        m = matrix.load(root / "images" / "matrix.yaml")
        for target in m.targets.values():
            lock_apt.lock(m, target, check=False, update=[])
    return root


def mini_repo(root: Path, layers: dict[str, dict[str, str]], parents: dict[str, str] | None = None,
              apt_lock: bool = True) -> Path:
    """A debian-flavor throwaway repository: `layers` maps an image name to its spec files; `apt_lock`: lock their
    apt.txt (a build needs it; it asks Debian's mirror)."""
    images = {name: ({"parent": parents[name]} if parents and name in parents else {}) for name in layers}
    return scaffold(root, "debian", images, layers, apt_lock=apt_lock)
