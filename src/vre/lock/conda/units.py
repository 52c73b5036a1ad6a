"""What `vre lock` locks for a conda target, and the inputs each lock is made from.

A target's main unit is the notebook environment: the specs of all the target's layers (its parent target's unit
adds the parents'), written next to the target's own (last) layer spec; it is solved with its solve group
(group.py). Each `envs/<name>/environment.yml` in a layer's folder is a separate environment (e.g. TensorFlow,
which cannot share abseil/protobuf with PyTorch or QGIS): solved on its own, installed in /srv/conda/envs/<name>.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from vre.lock.conda import CondaError
from vre.lock.conda.spec import DOCKER_PLATFORMS, PLATFORMS, EnvFile, VirtualPackages, load_env, load_virtual_packages
from vre.matrix import Matrix, Target

# Bumped when the lock layout or hashing changes, so every lock made before reads as stale.
FORMAT = "1"
VIRTUAL_PACKAGES = "virtual-packages.yml"


@dataclass(frozen=True)
class Unit:
    key: str  # target key, plus ":<env>" for a separate environment
    name: str  # the lock folder under environments/conda/, as `vre env NAME` takes it
    lock_dir: Path
    env_files: tuple[EnvFile, ...]
    virtual: VirtualPackages
    platforms: tuple[str, ...]
    channels: tuple[str, ...]
    parent: Unit | None
    root: Path  # the repository, for messages

    @property
    def parent_name(self) -> str:
        """The parent unit's name, "" for a unit solved on nothing."""
        return self.parent.name if self.parent else ""

    @property
    def lock_path(self) -> Path:
        return self.lock_dir / "conda-lock.yml"

    def dependencies(self, platform: str) -> list[str]:
        return [dep for env in self.env_files for dep in env.dependencies(platform)]

    def relative(self, path: Path) -> str:
        """A path as conda-lock records sources: relative to the lock's folder."""
        return os.path.relpath(path, self.lock_dir)

    def show(self, path: Path) -> str:
        """A path as messages name it: relative to the repository."""
        return str(path.relative_to(self.root))

    def spec_files(self) -> str:
        return ", ".join(self.show(env.path) for env in self.env_files)


def conda_root(matrix: Matrix) -> Path:
    return matrix.root / "environments" / "conda"


def units_of(matrix: Matrix, target: Target) -> list[Unit]:
    """The target's main unit, then its separate environments."""
    if target.flavor != "conda":
        raise CondaError(f"{target.key}: not a conda target")
    if target.layers[-1].name != target.image:
        own = conda_root(matrix) / (f"{target.image}-{target.variant}" if target.variant else target.image)
        raise CondaError(f"{target.key}: the image has no spec folder of its own, so its lock would overwrite the "
                         f"lock of {target.layers[-1].name!r}: add {own.relative_to(matrix.root)}/environment.yml "
                         "(`dependencies: []` is enough: the included layers' specs are solved with it)")
    parent = units_of(matrix, matrix.targets[target.parent])[0] if target.parent else None
    channels = matrix.spec.flavors["conda"].channels
    envs = tuple(load_env(layer.spec_dir / "environment.yml") for layer in target.layers)
    main = _unit(matrix, target, target.key, target.layers[-1].spec_dir, envs, channels, parent)
    extra = [
        _unit(matrix, target, f"{target.key}:{path.parent.name}", path.parent, (load_env(path),), channels, None)
        for layer in target.layers for path in sorted(layer.spec_dir.glob("envs/*/environment.yml"))
    ]
    return [main, *extra]


def _unit(matrix: Matrix, target: Target, key: str, lock_dir: Path, envs: tuple[EnvFile, ...],
          channels: tuple[str, ...], parent: Unit | None) -> Unit:
    root = conda_root(matrix)
    for env in envs:
        if env.channels is not None and env.channels != channels:
            raise CondaError(f"{env.path}: channels: {list(env.channels)} but images/matrix.yaml "
                             f"flavors.conda.channels is {list(channels)} (expected the same list, or no channels key)")
    declared = [set(env.platforms) for env in envs if env.platforms]
    image = [DOCKER_PLATFORMS[p] for p in target.platforms]
    platforms = tuple(p for p in PLATFORMS if all(p in d for d in declared)) if declared else tuple(image)
    for p in image:
        if p not in platforms:
            files = ", ".join(str(env.path.relative_to(matrix.root)) for env in envs if env.platforms)
            raise CondaError(f"{files}: platforms: {p} missing, but images/matrix.yaml builds {target.image} for "
                             f"{', '.join(target.platforms)} (expected every image platform)")
    if parent is not None:
        for p in platforms:
            if p not in parent.platforms:
                raise CondaError(f"{lock_dir.relative_to(matrix.root)}: locks {p} but its parent {parent.name} does "
                                 f"not (expected a subset of: {', '.join(parent.platforms)})")
    virtual = _virtual_packages(matrix, lock_dir)
    _check_cuda(matrix, target, virtual, platforms)
    return Unit(key=key, name=str(lock_dir.relative_to(root)), lock_dir=lock_dir, env_files=envs, virtual=virtual,
                platforms=platforms, channels=channels, parent=parent, root=matrix.root)


def _virtual_packages(matrix: Matrix, lock_dir: Path) -> VirtualPackages:
    """The nearest virtual-packages.yml: the lock's folder, then its parents up to environments/conda/."""
    root = conda_root(matrix)
    folder = lock_dir
    while True:
        if (folder / VIRTUAL_PACKAGES).is_file():
            return load_virtual_packages(folder / VIRTUAL_PACKAGES)
        if folder == root or root not in folder.parents:
            raise CondaError(f"{lock_dir.relative_to(matrix.root)}: no {VIRTUAL_PACKAGES} here nor in a folder above "
                             f"(expected at least {root.relative_to(matrix.root)}/{VIRTUAL_PACKAGES})")
        folder = folder.parent


def _check_cuda(matrix: Matrix, target: Target, virtual: VirtualPackages, platforms: tuple[str, ...]) -> None:
    """A GPU variant is solved for the matrix's CUDA, a CPU one without __cuda: never the host's, never a default."""
    cuda = matrix.spec.variants[target.variant].cuda if target.variant else None
    where = virtual.path.relative_to(matrix.root)
    for p in platforms:
        found = virtual.for_platform(p).get("__cuda")
        field = f"{where}: subdirs.{p}.packages.__cuda"
        if cuda and p.startswith("linux") and found != cuda:
            raise CondaError(f"{field}: {found or 'missing'}, but images/matrix.yaml variants.{target.variant}.cuda "
                             f"is {cuda} (expected the same version)")
        if found and not (cuda and p.startswith("linux")):
            raise CondaError(f"{field}: {found}, but {target.key} is not a CUDA variant on {p} (expected no __cuda: "
                             "a CPU lock must never pick CUDA builds)")


def digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def input_digests(unit: Unit) -> dict[str, str]:
    """One digest per input file, over what the solve reads of it (comments and order of keys do not count)."""
    digests = {unit.relative(env.path): digest({p: env.dependencies(p) for p in unit.platforms})
               for env in unit.env_files}
    digests[unit.relative(unit.virtual.path)] = digest({p: unit.virtual.for_platform(p) for p in unit.platforms})
    return digests


def content_hash(unit: Unit, platform: str, parent_packages: str | None) -> str:
    """The hash of everything one platform's solve depends on (conda-lock's metadata.content_hash)."""
    return digest({"format": FORMAT, "platform": platform, "channels": unit.channels,
                   "specs": unit.dependencies(platform), "virtual": unit.virtual.for_platform(platform),
                   "parent": parent_packages})
