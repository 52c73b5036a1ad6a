"""`vre lock` for conda targets: check each unit's lock against its inputs, and (re)solve the ones asked for.

A lock is fresh when it was made from the same specs, virtual packages, channels and parent lock as today; the
parent's packages enter through their digest, so relocking a parent makes every child stale.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

from conda_lock.lockfile.v2prelim.models import Lockfile
from rattler import Gateway, RepoDataRecord

from vre.lock.conda import CondaError, lockfile, run
from vre.lock.conda.channels import Network
from vre.lock.conda.solve import Solver
from vre.lock.conda.units import FORMAT, Unit, content_hash, digest, input_digests, units_of
from vre.lock.debian import LockReport, diff
from vre.matrix import Matrix, Target


@dataclass
class CondaLockReport(LockReport):
    reasons: list[str] = field(default_factory=list)  # why a lock is stale or missing
    seconds: float = 0.0


@dataclass
class LockOptions:
    network: Network = field(default_factory=Network)
    local_channel: Path | None = None  # built by `vre recipes build`; solved with priority over the matrix's

    @functools.cached_property
    def gateway(self) -> Gateway:
        """One gateway for a whole `vre lock`: repodata is fetched and parsed once, not once per layer."""
        return self.network.gateway()


def parent_digests(unit: Unit) -> dict[str, str] | None:
    """Per platform, the digest of the parent's locked packages; None when the parent has no readable lock."""
    if unit.parent is None:
        return {}
    try:
        parent = lockfile.read(unit.parent.lock_path)
    except (FileNotFoundError, CondaError):
        return None
    return {p: digest(sorted((e.name, e.version, e.build, e.hash.sha256)
                             for e in lockfile.packages(parent, p).values())) for p in unit.platforms}


def status(unit: Unit) -> tuple[str, list[str]]:
    """("fresh" | "stale" | "missing", reasons)."""
    if not unit.lock_path.is_file():
        return "missing", [f"{unit.show(unit.lock_path)} does not exist"]
    try:
        lock = lockfile.read(unit.lock_path)
    except CondaError as e:
        return "stale", [str(e)]
    meta = lock.metadata
    custom = meta.custom_metadata or {}
    reasons = []
    if custom.get("vre-format") != FORMAT:
        reasons.append(f"made by another lock format (expected vre-format {FORMAT})")
    if sorted(meta.platforms) != sorted(unit.platforms):
        reasons.append(f"platforms are now {', '.join(unit.platforms)} (lock: {', '.join(meta.platforms)})")
    for source, value in input_digests(unit).items():
        if custom.get(f"vre-input:{source}") != value:
            reasons.append(f"{unit.show((unit.lock_dir / source).resolve())} changed since the lock")
    parents = parent_digests(unit)
    if parents is None:
        reasons.append(f"parent {unit.parent_name} has no lock")
    elif any(custom.get(f"vre-parent-packages:{p}") != d for p, d in parents.items()):
        reasons.append(f"parent {unit.parent_name} was relocked since")
    if not reasons and parents is not None and any(
            meta.content_hash.get(p) != content_hash(unit, p, parents.get(p)) for p in unit.platforms):
        reasons.append("channels changed (images/matrix.yaml flavors.conda.channels)")
    for p in meta.platforms:
        if lockfile.explicit_hash(unit.lock_dir / f"conda-{p}.lock") != meta.content_hash.get(p):
            reasons.append(f"conda-{p}.lock is missing or out of step with conda-lock.yml")
    return ("stale" if reasons else "fresh"), reasons


def stale(matrix: Matrix, target: Target) -> list[str]:
    """One line per lock of the target that is missing or older than its inputs (builds refuse those)."""
    lines = []
    for unit in units_of(matrix, target):
        state, reasons = status(unit)
        if state != "fresh":
            lines.append(f"{unit.show(unit.lock_path)}: {state} ({'; '.join(reasons)})")
    return lines


def lock(matrix: Matrix, target: Target, *, check: bool, update: list[str],
         options: LockOptions | None = None, update_all: bool = False) -> list[CondaLockReport]:
    """Check, or (re)solve, the target's locks: missing and stale ones, and those holding a package to update
    (`update_all`: every lock, solved afresh without preferring its current records)."""
    options = options or LockOptions()
    reports = []
    for unit in units_of(matrix, target):
        state, reasons = status(unit)
        report = CondaLockReport(target=target.key, layer=unit.name, status=state, reasons=reasons)
        held = state != "missing" and bool(update) and _holds(unit, update)
        if not check and (state != "fresh" or held or update_all):
            started = time.monotonic()
            report.changes = relock(unit, update, options, update_all)
            report.status, report.seconds = "locked", time.monotonic() - started
        reports.append(report)
    return reports


def _holds(unit: Unit, names: list[str]) -> bool:
    try:
        lock = lockfile.read(unit.lock_path)
    except CondaError:
        return True
    return any(p.name in names for p in lock.package)


def relock(unit: Unit, update: list[str], options: LockOptions, update_all: bool = False) -> list[str]:
    """Solve every platform of the unit (concurrently), write its lock files and return what changed."""
    parents = parent_digests(unit)
    if parents is None:
        raise CondaError(f"{unit.name}: its parent {unit.parent_name} has no lock: lock the parent first "
                         f"(`vre lock` does, parents first)")
    parent_lock = lockfile.read(unit.parent.lock_path) if unit.parent else None
    try:
        old = lockfile.read(unit.lock_path)
    except (FileNotFoundError, CondaError):
        old = None  # nothing to prefer: a fresh solve
    channels = ([str(options.local_channel.resolve())] if options.local_channel else []) + list(unit.channels)

    async def solve_all() -> dict[str, list[RepoDataRecord]]:
        solver = Solver(channels=channels, network=options.network, gateway=options.gateway)

        async def one(platform: str) -> list[RepoDataRecord]:
            pinned_entries = lockfile.packages(parent_lock, platform) if parent_lock else {}
            pinned = await solver.records(pinned_entries, platform)
            gone = sorted(set(pinned_entries) - set(pinned))
            if gone:
                entry = pinned_entries[gone[0]]
                raise CondaError(f"{unit.parent_name}'s lock pins {', '.join(gone)} for {platform} (e.g. {entry.url}), "
                                 f"which the channels {', '.join(channels)} no longer provide: relock "
                                 f"{unit.parent_name} first (`vre lock --update {gone[0]}`)")
            preferred_entries = {n: e for n, e in (lockfile.packages(old, platform) if old and not update_all
                                                   else {}).items()
                                 if n not in update and n not in pinned_entries}
            preferred = await solver.records(preferred_entries, platform)
            return await solver.solve(unit, platform, list(pinned.values()), list(preferred.values()))

        solved = await asyncio.gather(*(one(p) for p in unit.platforms))
        return dict(zip(unit.platforms, solved))

    records = run(solve_all())
    meta = _meta(unit, channels, parents)
    new = lockfile.build(records, meta)
    lockfile.write(new, unit.lock_dir, meta)
    return changes(old, new)


def _meta(unit: Unit, channels: list[str], parents: dict[str, str]) -> lockfile.Meta:
    custom = {"vre-format": FORMAT, "vre-unit": unit.key}
    custom.update({f"vre-input:{source}": value for source, value in input_digests(unit).items()})
    for p in unit.platforms:
        custom[f"vre-virtual-packages:{p}"] = " ".join(f"{n}={v.replace(' ', '=')}"
                                                        for n, v in unit.virtual.for_platform(p).items())
    if unit.parent:
        custom["vre-parent"] = unit.parent.key
        custom.update({f"vre-parent-packages:{p}": d for p, d in parents.items()})
    return lockfile.Meta(
        key=unit.key, name=unit.name,
        content_hash={p: content_hash(unit, p, parents.get(p)) for p in unit.platforms},
        channels=[c if "://" in c or not c.startswith("/") else f"file://{c}" for c in channels],
        sources=[unit.relative(env.path) for env in unit.env_files], custom=custom)


def changes(old: Lockfile | None, new: Lockfile) -> list[str]:
    """The difference between two locks, one line per change, with the platforms it happened on."""
    platforms: dict[str, list[str]] = {}
    for p in new.metadata.platforms:
        for line in diff(lockfile.pins(old, p) if old else {}, lockfile.pins(new, p)):
            platforms.setdefault(line, []).append(p)
    every = len(new.metadata.platforms)
    return [line if len(ps) == every else f"{line}  [{', '.join(ps)}]" for line, ps in platforms.items()]
