"""Lock status of a target across flavors: which of its layers' locks are missing or stale."""

from __future__ import annotations

from vre import lock_pip
from vre.conda import lock as conda_lock
from vre.matrix import Matrix, Target


def stale(matrix: Matrix, target: Target) -> list[str]:
    if target.flavor == "debian":
        return lock_pip.stale(matrix, target)
    if target.flavor == "conda":
        return conda_lock.stale(matrix, target)
    raise NotImplementedError(f"lock check for flavor {target.flavor!r}")
