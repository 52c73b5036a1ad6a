"""The conda flavor's extension lock: environment.yml solved with rattler on top of the base image's conda lock.

The base's last conda-lock.yml (it holds the image's whole notebook environment) is the parent of the solve: every
package in it is pinned to its exact build, with the virtual packages and channels it was solved with (recorded in its
metadata), exactly as `vre lock` solves a child layer; a spec that needs another version of a base package is refused
by the solver's conflict report, which names both. The lock (conda-lock.yml and conda-<platform>.lock) is written
next to environment.yml; an unchanged folder on an unchanged base keeps it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from vre.lock.conda import CondaError, lockfile
from vre.lock.conda.layered import relock
from vre.lock.conda.lock import LockOptions, status
from vre.lock.conda.spec import load_env, load_virtual_packages
from vre.lock.conda.units import VIRTUAL_PACKAGES, Unit
from vre.extend import ExtendError
from vre.extend.baseimage import BaseImage
from vre.extend.folder import LOCKS, Folder


def _base_unit(base: BaseImage, root: Path) -> Unit:
    """The base's notebook environment as the parent unit of the solve (its layer folder copied under root)."""
    layers = [layer for layer in base.layers if (base.layer_dir(layer) / "conda-lock.yml").is_file()]
    if not layers:
        raise ExtendError(f"BASE_IMAGE {base.ref}: no /opt/vre/layers/*/conda-lock.yml (expected the lock of its "
                          "notebook environment, which every conda eo-vre image has)")
    layer = layers[-1]
    folder = root / layer
    shutil.copytree(base.layer_dir(layer), folder, ignore=shutil.ignore_patterns("envs"))
    lock = lockfile.read(folder / "conda-lock.yml")
    custom = lock.metadata.custom_metadata or {}
    subdirs = {}
    for platform in lock.metadata.platforms:
        entries = (item.split("=", 2) for item in custom.get(f"vre-virtual-packages:{platform}", "").split())
        subdirs[platform] = {"packages": {parts[0]: " ".join(parts[1:]) for parts in entries}}
    (root / VIRTUAL_PACKAGES).write_text(yaml.safe_dump({"subdirs": subdirs}))
    channels = tuple(c.url for c in lock.metadata.channels)
    return Unit(key=f"{base.name}:base", name=layer, lock_dir=folder, env_files=(load_env(folder / "environment.yml"),),
                virtual=load_virtual_packages(root / VIRTUAL_PACKAGES), platforms=tuple(lock.metadata.platforms),
                channels=channels, parent=None, root=root)


def lock(folder: Folder, base: BaseImage, root: Path, channel: Path | None = None) -> list[str]:
    """Make (or keep, when its inputs did not change) the folder's conda lock; returns what changed in it."""
    if not folder.has("environment.yml"):
        if folder.has("conda-lock.yml"):
            raise ExtendError(f"{folder.show('conda-lock.yml')}: a lock without environment.yml (expected both, "
                              "or neither)")
        return []
    root.mkdir(parents=True, exist_ok=True)
    try:
        parent = _base_unit(base, root)
        own = root / folder.path.name
        own.mkdir()
        for name in ("environment.yml", *LOCKS["conda"]):
            if folder.has(name):
                shutil.copy2(folder.path / name, own / name)
        # The local channel goes first (LockOptions); the base's record of it is left out, not listed twice.
        channels = tuple(c for c in parent.channels if not channel or c != channel.resolve().as_uri())
        unit = Unit(key=folder.layer, name=folder.layer, lock_dir=own, env_files=(load_env(own / "environment.yml"),),
                    virtual=parent.virtual, platforms=parent.platforms, channels=channels, parent=parent, root=root)
        if status(unit)[0] == "fresh":
            return []
        changes = relock(unit, [], LockOptions(local_channel=channel))
    except CondaError as e:
        raise ExtendError(str(e)) from None
    for path in [*own.glob("conda-*.lock"), own / "conda-lock.yml"]:
        shutil.copy2(path, folder.path / path.name)
    return changes
