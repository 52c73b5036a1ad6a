"""The one interface of a flavor's locks, and the registry of flavors: `flavor(target.flavor).lock(...)`.

A flavor's own folder does the work (debian: vre.lock.debian with uv, conda: vre.lock.conda with rattler); what the
rest of the factory calls is this interface: which locks are missing or stale, and (re)lock a target's layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from vre.errors import USAGE, VreError
from vre.lock import apt, debian
from vre.lock.conda import lock as conda_lock
from vre.matrix import Matrix, Target


@dataclass(frozen=True)
class LockRequest:
    check: bool = False  # only report missing and stale locks
    update: Sequence[str] = field(default_factory=tuple)  # relock to move these packages only
    update_all: bool = False  # relock everything to the newest versions allowed
    conda: conda_lock.LockOptions | None = None  # the conda flavor's network and local channel


class Flavor(Protocol):
    name: str

    def stale(self, matrix: Matrix, target: Target) -> list[str]:
        """Why the target's locks cannot be built from (one line per lock), or nothing."""
        ...

    def lock(self, matrix: Matrix, target: Target, request: LockRequest) -> Sequence[debian.LockReport]:
        """Check or (re)solve the locks of the target's own layers, parents' locks already made."""
        ...


class Debian:
    name = "debian"

    def stale(self, matrix: Matrix, target: Target) -> list[str]:
        return apt.stale(matrix, target) + debian.stale(matrix, target)

    def lock(self, matrix: Matrix, target: Target, request: LockRequest) -> Sequence[debian.LockReport]:
        """Debian packages (apt.lock) first: the PyPI lock's constraints are what they provide."""
        return [*apt.lock(matrix, target, check=request.check, update=list(request.update),
                          update_all=request.update_all),
                *debian.lock(matrix, target, check=request.check, update=list(request.update),
                             update_all=request.update_all)]


class Conda:
    name = "conda"

    def stale(self, matrix: Matrix, target: Target) -> list[str]:
        return apt.stale(matrix, target) + conda_lock.stale(matrix, target)  # apt: the foundation's

    def lock(self, matrix: Matrix, target: Target, request: LockRequest) -> Sequence[debian.LockReport]:
        return conda_lock.lock(matrix, target, check=request.check, update=list(request.update),
                               options=request.conda, update_all=request.update_all)


FLAVORS: dict[str, Flavor] = {f.name: f for f in (Debian(), Conda())}


def lock_foundation(matrix: Matrix, request: LockRequest) -> Sequence[debian.LockReport]:
    """The foundation's Debian packages (images/foundation/apt.lock), below every image of every flavor."""
    return apt.lock(matrix, None, check=request.check, update=list(request.update), update_all=request.update_all)


def flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise VreError(f"flavor {name!r}: no lock support (expected one of: {', '.join(FLAVORS)})", USAGE) from None
