"""Solving one group for some platforms: one solve of every member's specs per platform, then each member's lock
is the dependency closure of its own specs in that solution.

When the whole group has no solution, the members are added one by one, parents first, to the largest set that
still solves (those lock); each member left out is reported as missing data (a spec no record of the channels can
satisfy) or as a conflict (the sides and packages that disagree), and its children are blocked.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from rattler import MatchSpec, RepoDataRecord
from rattler.exceptions import SolverError

from vre.lock.conda import CondaError, lockfile
from vre.lock.conda.diagnose import Attempt, Availability, Side, conflict, describe, fewest, first_lines, name_of
from vre.lock.conda.group import Group
from vre.lock.conda.solve import Solver
from vre.lock.conda.units import Unit

LOCKED, CONFLICT, MISSING, BLOCKED = "locked", "conflict", "missing data", "blocked"


@dataclass
class Outcome:
    status: str  # LOCKED | CONFLICT | MISSING | BLOCKED
    records: list[RepoDataRecord] = field(default_factory=list)
    message: str = ""


@dataclass
class Context:
    solver: Solver
    update: list[str]  # package names released from the previous locks
    update_all: bool  # prefer nothing from the previous locks
    solutions: dict[tuple[str, str], list[RepoDataRecord] | None]  # (unit name, platform) -> records (None: did
    # not lock), of this run
    diagnose: bool = True  # False: a failed solve is a bare conflict, to be explained later if it stays one


def closure(solution: list[RepoDataRecord], specs: list[str]) -> list[RepoDataRecord]:
    """The records specs need, following dependencies inside solution (one record per name)."""
    by_name = {r.name.normalized: r for r in solution}
    todo, seen = [name_of(s) for s in specs], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo += [name_of(d) for d in by_name[name].depends]
    return sorted((by_name[n] for n in seen), key=lambda r: r.name.normalized)


def chain(unit: Unit, platform: str) -> list[str]:
    """The specs of the unit and of its parents: what its environment holds."""
    return [*(chain(unit.parent, platform) if unit.parent else []), *unit.dependencies(platform)]


def _specs(units: list[Unit], platform: str) -> list[str]:
    seen: list[str] = []
    for spec in (d for u in units for d in chain(u, platform)):
        if spec not in seen:
            seen.append(spec)
    return seen


async def solve_group(group: Group, platforms: list[str], ctx: Context) -> dict[str, dict[str, Outcome]]:
    """unit name -> platform -> outcome, for the units the group locks."""
    solved = await asyncio.gather(*(_platform(group, p, ctx) for p in platforms))
    result: dict[str, dict[str, Outcome]] = {u.name: {} for u in group.solved}
    for platform, outcomes in zip(platforms, solved):
        for name, outcome in outcomes.items():
            result[name][platform] = outcome
            ctx.solutions[(name, platform)] = outcome.records if outcome.status == LOCKED else None
    return result


async def _pinned(group: Group, platform: str, ctx: Context) -> tuple[list[RepoDataRecord], str]:
    """The fixed members' records for platform (solved earlier in this run, or from their locks); or why not."""
    records: dict[str, RepoDataRecord] = {}
    for unit in group.members(platform):
        if unit not in group.fixed:
            continue
        found = ctx.solutions.get((unit.name, platform))
        if found is None and (unit.name, platform) in ctx.solutions:
            return [], f"{unit.name} did not lock for {platform}"
        if found is None:
            try:
                entries = lockfile.packages(lockfile.read(unit.lock_path), platform)
            except (FileNotFoundError, CondaError):
                entries = {}
            matched = await ctx.solver.records(entries, platform)
            if not entries or len(matched) != len(entries):
                return [], f"{unit.name} has no usable lock for {platform} (lock it first: `vre lock {unit.name}`)"
            found = list(matched.values())
        records.update({r.name.normalized: r for r in found})
    return list(records.values()), ""


async def reconcile(first: Group, later: Group, platform: str, ctx: Context, first_out: dict[str, Outcome],
                    later_out: dict[str, Outcome]) -> bool:
    """When `later` (e.g. gpu) cannot be solved on the shared images' packages `first` (cpu) chose: solve `later`
    with nothing pinned, then `first` with the shared images pinned to that choice; when both lock, adopt both (the
    shared locks then suit both variants). Outcomes are updated in place; False when nothing changed."""
    shared = tuple(u for u in later.fixed if platform in u.platforms)
    mine = [u for u in later.solved if platform in u.platforms]
    if not shared or all(later_out[u.name].status == LOCKED for u in mine) or any(
            first_out.get(u.name, Outcome(BLOCKED)).status != LOCKED for u in shared):
        return False
    ctx.diagnose = False  # tries: the caller explains what stays unsolved
    try:
        free = await _platform(Group(later.name, later.units), platform, ctx, mixed_virtual=True)
        if any(o.status != LOCKED for o in free.values()):
            return False
        saved = {u.name: ctx.solutions.get((u.name, platform)) for u in shared}
        for u in shared:
            ctx.solutions[(u.name, platform)] = free[u.name].records
        again = await _platform(Group(first.name, first.units, fixed=shared, fixed_from=later.name), platform, ctx)
    finally:
        ctx.diagnose = True
    if any(o.status != LOCKED for o in again.values()):
        ctx.solutions.update({(name, platform): records for name, records in saved.items()})
        return False
    for name, outcome in [*((u.name, free[u.name]) for u in shared), *again.items()]:
        first_out[name] = outcome
        ctx.solutions[(name, platform)] = outcome.records
    for u in mine:
        later_out[u.name] = free[u.name]
        ctx.solutions[(u.name, platform)] = free[u.name].records
    return True


async def _platform(group: Group, platform: str, ctx: Context, mixed_virtual: bool = False) -> dict[str, Outcome]:
    free = [u for u in group.members(platform) if u not in group.fixed]
    if not free:
        return {}
    virtual = free[-1].virtual
    for unit in free if not mixed_virtual else ():
        if unit.virtual.for_platform(platform) != virtual.for_platform(platform):
            raise CondaError(f"{unit.show(unit.virtual.path)} and {free[-1].show(virtual.path)}: the images of solve "
                             f"group {group.name} state different virtual packages for {platform} (expected one "
                             "set: they are solved as one environment)")
    pinned, why = await _pinned(group, platform, ctx)
    if why:
        return {u.name: Outcome(BLOCKED, message=why) for u in free}
    pinned_names = [r.name.normalized for r in pinned]
    preferred = await _preferred(free, platform, ctx, set(pinned_names))

    async def attempt(specs: list[str]) -> list[RepoDataRecord] | str:
        try:
            return await ctx.solver.solve_specs(specs + pinned_names, platform, virtual.generic(platform),
                                                pinned, preferred)
        except SolverError as e:
            return str(e)

    solution = await attempt(_specs(free, platform))
    if not isinstance(solution, str):
        return {u.name: Outcome(LOCKED, closure(solution, chain(u, platform))) for u in free}
    if not ctx.diagnose:
        return {u.name: Outcome(CONFLICT) for u in free}
    outcomes = await _diagnose(free, platform, ctx, attempt, virtual.for_platform(platform))
    if pinned:
        await _against_pins(group, free, platform, ctx, pinned, outcomes, attempt)
    return outcomes


async def _against_pins(group: Group, free: list[Unit], platform: str, ctx: Context, pinned: list[RepoDataRecord],
                        outcomes: dict[str, Outcome], attempt: Attempt) -> None:
    """For a member that conflicts with the packages an earlier group locked: which of its own specs cannot be met
    on them, and which locked build each newest candidate refuses (the real conflict, before rattler's tree)."""
    fixed = " and ".join(u.name for u in group.fixed if platform in u.platforms)
    by_name = {r.name.normalized: r for r in pinned}
    for unit in free:
        outcome = outcomes[unit.name]
        if outcome.status != CONFLICT:
            continue
        subset = await fewest(list(unit.dependencies(platform)), attempt)
        error = await attempt(subset)
        if not isinstance(error, str):
            continue
        lines = []
        for spec in subset:
            match = MatchSpec(spec)
            found = await ctx.solver.reachable([match.name.normalized], platform)
            candidates = sorted((r for r in found if r.name == match.name and match.matches(r)),
                                key=lambda r: (r.version, r.build_number), reverse=True)
            seen = set()
            for record in candidates:
                refused = next((d for d in record.depends if name_of(d) in by_name
                                and not MatchSpec(d).matches(by_name[name_of(d)])), None)
                if refused is None or (str(record.version), name_of(refused)) in seen:
                    continue
                seen.add((str(record.version), name_of(refused)))
                lines.append(f"{describe(record)} ({unit.name}: {spec}) needs {refused}, but {fixed} (locked with "
                             f"the {group.fixed_from} group) has {describe(by_name[name_of(refused)])}")
                if len(seen) == 3:
                    break
        body = "".join(f"  - {line}\n" for line in lines) or f"  rattler:\n{first_lines(error)}\n"
        outcome.message = (f"{unit.name} ({platform}) cannot use the packages {fixed} locked for every variant: "
                           f"its specs {', '.join(subset)} cannot be met on them:\n" + body
                           + "What to do:\n"
                           f"  - pin, in the specs of {fixed}, the shared packages to versions every variant "
                           "accepts\n"
                           f"  - or relax the constraint in {unit.spec_files()}\n")


async def _preferred(units: list[Unit], platform: str, ctx: Context, pinned: set[str]) -> list[RepoDataRecord]:
    """The previous locks' records (soft: they move only when they must), minus what --update releases."""
    if ctx.update_all:
        return []
    entries = {}
    for unit in units:
        try:
            old = lockfile.packages(lockfile.read(unit.lock_path), platform)
        except (FileNotFoundError, CondaError):
            continue
        entries.update({n: e for n, e in old.items() if n not in ctx.update and n not in pinned and n not in entries})
    return list((await ctx.solver.records(entries, platform)).values())


async def _diagnose(units: list[Unit], platform: str, ctx: Context, attempt: Attempt, virtual: dict[str, str]
                    ) -> dict[str, Outcome]:
    names = sorted({name_of(s) for s in _specs(units, platform) if not name_of(s).startswith("__")})
    available = Availability(await ctx.solver.reachable(names, platform), virtual, platform)
    outcomes: dict[str, Outcome] = {}
    kept: list[Unit] = []
    for unit in units:
        parent = unit.parent
        if parent is not None and parent.name in outcomes and outcomes[parent.name].status != LOCKED:
            outcomes[unit.name] = Outcome(BLOCKED, message=f"its parent {parent.name} did not lock for {platform}")
            continue
        gaps = [m for m in (available.missing(s) for s in chain(unit, platform)) if m is not None]
        if gaps:
            status = CONFLICT if all(g.virtual for g in gaps) else MISSING
            what = ("the channels hold no record that satisfies" if status == MISSING else
                    "it needs what the virtual packages rule out:")
            outcomes[unit.name] = Outcome(status, message=(
                f"{unit.name} ({platform}): {what}\n" + "".join(f"  - {g.line()}\n" for g in gaps)
                + _advice_missing(unit, status)))
            continue
        trial = await attempt(_specs([*kept, unit], platform))
        if not isinstance(trial, str):
            kept.append(unit)
            outcomes[unit.name] = Outcome(LOCKED)
            continue
        outcomes[unit.name] = Outcome(CONFLICT, message=await _explain(unit, kept, platform, attempt, trial))
    if kept:
        solution = await attempt(_specs(kept, platform))
        assert not isinstance(solution, str)  # the same set solved just above
        for unit in kept:
            outcomes[unit.name].records = closure(solution, chain(unit, platform))
    return outcomes


def _advice_missing(unit: Unit, status: str) -> str:
    if status == CONFLICT:
        return (f"What to do: relax the spec in {unit.spec_files()}, or state the platform's real virtual packages "
                f"in {unit.show(unit.virtual.path)}, or drop the platform (say why in the spec).\n")
    return ("This is missing data, not a conflict: on a channel that holds only part of conda-forge (a snapshot or "
            "partial mirror) the record may exist upstream; lock where the full channel is reachable. If it does "
            f"not exist upstream, build it (recipes/) or change {unit.spec_files()}.\n")


async def _explain(unit: Unit, kept: list[Unit], platform: str, attempt: Attempt, error: str) -> str:
    """A few lines: which sides conflict, on which packages, and what to do."""
    alone = await attempt(_specs([unit], platform))
    if isinstance(alone, str):
        # Its own specs against its parents'.
        parent_specs = tuple(_specs([unit.parent], platform)) if unit.parent else ()
        a, b = Side(unit.parent.name if unit.parent else "", parent_specs), Side(
            unit.name, tuple(unit.dependencies(platform)))
    else:
        # With an image of the group: the first one (leaves first) it cannot share an environment with.
        other = None
        for candidate in reversed(kept):
            if isinstance(await attempt(_specs([candidate, unit], platform)), str):
                other = candidate
                break
        other = other or kept[-1]
        a, b = Side(other.name, tuple(_specs([other], platform))), Side(unit.name, tuple(_specs([unit], platform)))
    lines = await conflict(a, b, attempt) if a.specs else []
    if not a.specs:  # a root image: the fewest of its specs that have no solution together, and rattler on them
        subset = await fewest(list(b.specs), attempt)
        failed = await attempt(subset)
        error = failed if isinstance(failed, str) else ""
        return (f"{unit.name} ({platform}): its specs {', '.join(subset)} have no solution together:\n"
                f"  rattler:\n{first_lines(error)}\nWhat to do:\n  - relax one of them in {unit.spec_files()}\n")
    head = f"{unit.name} ({platform}) cannot share one environment with {a.label}"
    body = "".join(f"  - {line}\n" for line in lines) or f"  rattler:\n{first_lines(error)}\n"
    return (f"{head}:\n{body}What to do:\n"
            f"  - give the packages of one side their own environment: envs/NAME/environment.yml in the layer's "
            f"folder (as TensorFlow has)\n"
            f"  - or relax the constraint in {unit.spec_files()}\n"
            f"  - or pin, in the spec of {a.label}, the shared package to a version both sides accept\n")
