"""A unit solved on its parent's lock, every parent package pinned to its exact build: how an image that extends a
built base is locked (vre.extend.conda), where the base cannot move. The images of this repository are locked in
solve groups instead (vre.lock.conda.group), where a parent's lock is part of the group's one solution.
"""

from __future__ import annotations

import asyncio

from rattler import MatchSpec, RepoDataRecord
from rattler.exceptions import SolverError

from vre.lock.conda import CondaError, lockfile, run
from vre.lock.conda.group import Group
from vre.lock.conda.lock import LockOptions, _meta, changes, parent_digests
from vre.lock.conda.solve import Solver
from vre.lock.conda.units import Unit


def relock(unit: Unit, update: list[str], options: LockOptions, update_all: bool = False) -> list[str]:
    """Solve every platform of the unit (concurrently) on its parent's lock, write its lock files and return what
    changed."""
    parents = parent_digests(unit)
    if parents is None:
        raise CondaError(f"{unit.name}: its parent {unit.parent_name} has no lock: lock the parent first")
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
                                 f"which the channels {', '.join(channels)} no longer provide")
            preferred_entries = {n: e for n, e in (lockfile.packages(old, platform) if old and not update_all
                                                   else {}).items()
                                 if n not in update and n not in pinned_entries}
            preferred = await solver.records(preferred_entries, platform)
            return await solve_on(solver, unit, platform, list(pinned.values()), list(preferred.values()))

        solved = await asyncio.gather(*(one(p) for p in unit.platforms))
        return dict(zip(unit.platforms, solved))

    records = run(solve_all())
    meta = _meta(unit, [c if "://" in c or not c.startswith("/") else f"file://{c}" for c in channels], parents,
                 Group(unit.name, (unit,)), list(unit.platforms), None, [])
    new = lockfile.build(records, meta)
    lockfile.write(new, unit.lock_dir, meta)
    return changes(old, new)


async def solve_on(solver: Solver, unit: Unit, platform: str, pinned: list[RepoDataRecord],
               preferred: list[RepoDataRecord]) -> list[RepoDataRecord]:
    # Pinned records only constrain: naming them as specs keeps every parent package in the child environment.
    specs = unit.dependencies(platform) + [r.name.normalized for r in pinned]
    try:
        return await solver.solve_specs(specs, platform, unit.virtual.generic(platform), pinned, preferred)
    except SolverError as e:
        if pinned:
            raise await _conflict(solver, unit, platform, pinned, e) from None
        raise CondaError(f"{unit.spec_files()}: no solution for {platform}:\n{e}") from None


async def _conflict(solver: Solver, unit: Unit, platform: str, pinned: list[RepoDataRecord],
                    error: SolverError) -> CondaError:
    """Name the packages and constraints that keep the unit off its parent's lock, and what to do."""
    parent = unit.parent
    assert parent is not None  # a conflict with the parent's pins: there is a parent
    try:  # what the unit's own specs want, left alone: compared with the pins below
        free = await solver.solve_specs(unit.dependencies(platform), platform, unit.virtual.generic(platform), [], [])
    except SolverError as e:
        return CondaError(f"{unit.spec_files()}: no solution for {platform}, even on its own:\n{e}")
    moved = {r.name.normalized: r for r in free}
    lines, names = [], []
    for pin in pinned:
        name = pin.name.normalized
        other = moved.get(name)
        if other is None or (str(other.version), str(other.build)) == (str(pin.version), str(pin.build)):
            continue
        needs = [f"{r.name.normalized} {r.version} needs {dep}" for r in free
                 for dep in [*r.depends, *r.constrains] if _refuses(dep, name, pin)]
        needs += [f"{unit.show(env.path)} asks for {dep}" for env in unit.env_files
                  for dep in env.dependencies(platform) if _refuses(dep, name, pin)]
        names.append(name)
        locked = f"{parent.name} locked {name} {pin.version} ({pin.build})"
        lines.append(f"{'; '.join(needs)}, but {locked}" if needs
                     else f"a solution without the pins moves {name} to {other.version} ({other.build}); {locked}")
    parent_specs = parent.show(parent.env_files[-1].path)
    conflicting = ", ".join(names) or "the packages above"
    return CondaError(
        f"{unit.name} cannot be solved for {platform} on top of {parent.name}'s lock (every package of the "
        f"parent's lock is pinned to its exact build, so an image only adds packages):\n"
        + "".join(f"  - {line}\n" for line in lines)
        + "What to do:\n"
        f"  - give the packages that need other versions their own environment: envs/NAME/environment.yml in "
        f"the layer's folder (as TensorFlow has)\n"
        f"  - or relax the constraint in {unit.spec_files()}\n"
        f"  - or move the parent: constrain {conflicting} in {parent_specs} to versions both accept and run "
        f"`vre lock`; every image below {parent.name} is relocked with it\n"
        f"rattler: {error}")


def _refuses(dep: str, name: str, pin: RepoDataRecord) -> bool:
    spec = MatchSpec(dep)
    return spec.name.normalized == name and not spec.matches(pin)
