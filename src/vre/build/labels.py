"""The OCI and io.eo-vre labels of an image, from the matrix and the repository's git state."""

from __future__ import annotations

import subprocess
from datetime import datetime, UTC
from pathlib import Path

from vre.build.hashing import lock_hash
from vre.lock.apt import DEB_ARCH, SPEC, left_out
from vre.matrix import Matrix, Target


def git(root: Path, *args: str) -> str:
    """A git command's output in `root`, "" when it fails (no git, not a repository)."""
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def labels(matrix: Matrix, target: Target) -> dict[str, str]:
    revision = git(matrix.root, "rev-parse", "HEAD") or "unknown"
    if git(matrix.root, "status", "--porcelain", "--untracked-files=no"):
        revision += "-dirty"
    # The commit time, not the wall clock: a rebuild of the same commit yields the same image config.
    stamp = git(matrix.root, "log", "-1", "--format=%ct") or "0"
    created = datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # What the layers' apt.txt leave out on the platform built for (e.g. OTB on arm64): said on the image itself.
    specs = [layer.spec_dir / SPEC for layer in matrix.image_layers(target.key) if target.platform]
    missing = sorted({name for spec in specs if spec.is_file() for name in left_out(spec, DEB_ARCH[target.platform])})
    return {
        **({"io.eo-vre.left-out": " ".join(missing)} if missing else {}),
        "org.opencontainers.image.source": git(matrix.root, "remote", "get-url", "origin") or str(matrix.root),
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
