"""`vre env NAME`: make a committed lock's environment on this machine, exactly as the images install it.

The installer is the images' own (images/foundation/vre-conda-install.py), loaded from the repository, so a
laptop's environment and an image's come from the same lock by the same code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from vre.lock.conda import CondaError, lockfile
from vre.lock.conda.lock import status
from vre.lock.conda.units import conda_root, units_of
from vre.matrix import Matrix

INSTALLER = Path("images") / "foundation" / "vre-conda-install.py"


def installer(root: Path) -> ModuleType:
    """images/foundation/vre-conda-install.py of the repository at root, as a module."""
    path = root / INSTALLER
    spec = importlib.util.spec_from_file_location("vre_conda_install", path)
    if spec is None or not path.is_file():
        raise CondaError(f"{path}: not found (the images' conda installer, which `vre env` uses)")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None  # a file location has a loader
    spec.loader.exec_module(module)
    return module


def names(matrix: Matrix) -> list[str]:
    root = conda_root(matrix)
    return sorted(str(p.parent.relative_to(root)) for p in root.rglob("conda-lock.yml"))


def create(matrix: Matrix, name: str, prefix: Path, local_channel: Path | None = None,
           platform: str | None = None) -> tuple[str, list[str]]:
    """Install environments/conda/NAME/conda-lock.yml into prefix; return (summary, warnings)."""
    lock_path = conda_root(matrix) / name / "conda-lock.yml"
    if not lock_path.is_file():
        raise CondaError(f"{lock_path.relative_to(matrix.root)}: no lock (expected one of: "
                         f"{', '.join(names(matrix)) or 'none yet: run `vre lock` where conda-forge is reachable'})")
    warnings = []
    unit = next((u for t in matrix.targets.values() if t.flavor == "conda" for u in units_of(matrix, t)
                 if u.lock_path == lock_path), None)
    if unit is not None and (state := status(unit))[0] != "fresh":
        warnings.append(f"{name}: the lock is {state[0]} ({'; '.join(state[1])}): installing it as committed; "
                        "`vre lock` would change it")
    pairs = []
    if local_channel:
        local = local_channel.resolve()
        meta = lockfile.read(lock_path).metadata
        ours = (meta.custom_metadata or {}).get("vre-recipes-channel")
        # Our recipes' channel when the lock names it; local file:// channels in locks made before it did.
        pairs = [f"{ours}={local}"] if ours else [f"{c.url}={local}" for c in meta.channels
                                                  if c.url.startswith("file://")]
    module = installer(matrix.root)
    try:
        return module.install(lock_path, prefix, platform, pairs), warnings
    except module.InstallError as e:
        raise CondaError(str(e)) from None
