"""Content hashes of a target's layers: what its io.eo-vre.lock-hash label chains."""

from __future__ import annotations

import hashlib

from vre.matrix import Matrix, Target


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
