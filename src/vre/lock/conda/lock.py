"""`vre lock` for conda targets: check each lock against its inputs, and (re)solve the solve groups asked for.

A lock is fresh when it was made from the same specs, virtual packages, channels and parent lock as today, and its
solve group's images have not changed since (vre.lock.conda.group): the parent's packages enter through their
digest, the group's inputs through the group's, so changing any image of a group makes every lock of the group stale.
"""

from __future__ import annotations

import functools
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from conda_lock.lockfile.v2prelim.models import Lockfile
from rattler import Gateway, RepoDataRecord

from vre.lock.conda import CondaError, lockfile, recipechannel, run
from vre.lock.conda.channels import Network
from vre.lock.conda.group import Group, group_of, groups
from vre.lock.conda.groupsolve import LOCKED, Context, Outcome, reconcile, solve_group
from vre.lock.conda.solve import Solver
from vre.lock.conda.units import FORMAT, Unit, digest, input_digests, units_of
from vre.lock.conda.units import content_hash as content_hash_of
from vre.lock.debian import LockReport, diff
from vre.matrix import Matrix, Target


@dataclass
class CondaLockReport(LockReport):
    reasons: list[str] = field(default_factory=list)  # why a lock is stale or missing
    seconds: float = 0.0
    cells: dict[str, str] = field(default_factory=dict)  # platform -> locked | conflict | missing data | blocked
    problems: list[str] = field(default_factory=list)  # what did not lock and why, in a few lines each


@dataclass
class LockOptions:
    network: Network = field(default_factory=Network)
    local_channel: Path | None = None  # built by `vre recipes build`; solved with priority over the matrix's
    platforms: tuple[str, ...] = ()  # only these platforms (default: every platform of each group)
    published: bool = False  # our recipes from their published channel (VRE_CONDA_RECIPES_CHANNEL), not a local one

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


def status(unit: Unit, group: Group | None = None) -> tuple[str, list[str]]:
    """("fresh" | "stale" | "missing", reasons); with its group, also whether an image of the group changed."""
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
    elif any(custom.get(f"vre-parent-packages:{p}") != parents[p] for p in meta.platforms if p in parents):
        reasons.append(f"parent {unit.parent_name} was relocked since")
    if not reasons and parents is not None and any(
            meta.content_hash.get(p) != content_hash_of(unit, p, parents.get(p)) for p in unit.platforms):
        reasons.append("channels changed (images/matrix.yaml flavors.conda.channels)")
    if not reasons and group is not None and any(
            custom.get(f"vre-group:{p}") != group.digest(p) for p in meta.platforms):
        reasons.append(f"another image of solve group {group.name} changed since the lock")
    rendered = sorted({entry.split()[0] for key, value in custom.items() if key.startswith("vre-rendered:")
                       for entry in value.split(", ")})
    if rendered:
        reasons.append(f"lacks {', '.join(rendered)}: solved from their recipes' rendered metadata (no package "
                       "built): build them (`vre recipes build`) and lock again")
    for p in meta.platforms:
        if lockfile.explicit_hash(unit.lock_dir / f"conda-{p}.lock") != meta.content_hash.get(p):
            reasons.append(f"conda-{p}.lock is missing or out of step with conda-lock.yml")
    return ("stale" if reasons else "fresh"), reasons


def stale(matrix: Matrix, target: Target) -> list[str]:
    """One line per lock of the target that is missing or older than its inputs (builds refuse those)."""
    lines = []
    for unit in units_of(matrix, target):
        state, reasons = status(unit, group_of(matrix, unit))
        if state != "fresh":
            lines.append(f"{unit.show(unit.lock_path)}: {state} ({'; '.join(reasons)})")
    return lines


def lock(matrix: Matrix, target: Target, *, check: bool, update: list[str],
         options: LockOptions | None = None, update_all: bool = False) -> list[CondaLockReport]:
    """lock_targets for one target (and so for every image of its solve groups)."""
    return lock_targets(matrix, [target], check=check, update=update, options=options, update_all=update_all)


def lock_targets(matrix: Matrix, targets: list[Target], *, check: bool, update: list[str],
                 options: LockOptions | None = None, update_all: bool = False) -> list[CondaLockReport]:
    """Check, or (re)solve, the solve groups of the targets' locks: a group is solved again, as a whole, when one
    of its locks is missing or stale, holds a package to update, or with `update_all` (every package to the newest
    version its constraints allow, the old locks ignored)."""
    options = options or LockOptions()
    names = {u.name for t in targets for u in units_of(matrix, t)}
    chosen = [g for g in groups(matrix) if any(u.name in names for u in g.solved)]
    reports: list[CondaLockReport] = []
    solved: list[_Solved] = []
    with tempfile.TemporaryDirectory(prefix="vre-rendered-") as rendered:
        context = None
        for group in chosen:
            states = {u.name: status(u, group) for u in group.solved}
            held = bool(update) and any(states[u.name][0] != "missing" and _holds(u, update) for u in group.solved)
            if check or not (update_all or held or any(s != "fresh" for s, _ in states.values())):
                reports += [CondaLockReport(target=u.key, layer=u.name, status=states[u.name][0],
                                            reasons=states[u.name][1]) for u in group.solved]
                continue
            context = context or _context(matrix, options, update, update_all, Path(rendered))
            platforms = [p for p in group.platforms() if not options.platforms or p in options.platforms]
            started = time.monotonic()
            # A group on an earlier group's packages is explained only if reconciling does not lock it (below).
            context.solve.diagnose = not group.fixed
            outcomes = run(solve_group(group, platforms, context.solve))
            context.solve.diagnose = True
            solved.append(_Solved(group, states, platforms, outcomes, time.monotonic() - started))
        if context is not None:
            _reconcile(solved, context)
            # Written once every group is solved: a later group may have moved the shared images' packages.
            for one in solved:
                reports += _write_group(one, context)
    return reports


@dataclass
class _Solved:
    group: Group
    states: dict[str, tuple[str, list[str]]]
    platforms: list[str]
    outcomes: dict[str, dict[str, Outcome]]  # unit name -> platform -> outcome
    seconds: float


def _reconcile(solved: list[_Solved], run_: _Run) -> None:
    """Variant groups that share images: when a later one cannot use the shared packages the first chose, let it
    choose them and solve the first again on its choice (groupsolve.reconcile); explain what still fails."""
    first = next((s for s in solved if not s.group.fixed), None)
    for later in (s for s in solved if s.group.fixed):
        started = time.monotonic()
        for platform in later.platforms:
            later_out = {name: per[platform] for name, per in later.outcomes.items() if platform in per}
            reconciled = False
            if first is not None and later.group.fixed_from == first.group.name:
                first_out = {name: per[platform] for name, per in first.outcomes.items() if platform in per}
                reconciled = run(reconcile(first.group, later.group, platform, run_.solve, first_out, later_out))
            if first is not None and reconciled:
                for name, outcome in first_out.items():
                    first.outcomes[name][platform] = outcome
                for name, outcome in later_out.items():
                    later.outcomes[name][platform] = outcome
            elif any(o.status != LOCKED for o in later_out.values()):
                for name, per in run(solve_group(later.group, [platform], run_.solve)).items():
                    later.outcomes[name].update(per)
        later.seconds += time.monotonic() - started


def _holds(unit: Unit, names: list[str]) -> bool:
    try:
        lock = lockfile.read(unit.lock_path)
    except CondaError:
        return True
    return any(p.name in names for p in lock.package)


@dataclass
class _Run:
    solve: Context
    local: list[Path]  # local channels (built, rendered): locks name them by their published URL
    rendered: list[str]  # recipes solved from their rendered metadata
    published: bool = False  # our recipes' channel solved at its published URL


def _context(matrix: Matrix, options: LockOptions, update: list[str], update_all: bool, rendered: Path) -> _Run:
    matrix_channels = list(matrix.spec.flavors["conda"].channels)
    if options.published:
        solver = Solver([recipechannel.published(), *matrix_channels], options.network, options.gateway)
        return _Run(Context(solver, list(update), update_all, {}), [], [], published=True)
    local = [options.local_channel.resolve()] if options.local_channel else []
    unbuilt = recipechannel.rendered_channel(matrix.root, rendered, options.local_channel)
    if unbuilt:
        local.append(rendered)
    solver = Solver([str(c) for c in local] + matrix_channels, options.network, options.gateway)
    return _Run(Context(solver, list(update), update_all, {}), local, unbuilt)


def _write_group(solved: _Solved, run_: _Run) -> list[CondaLockReport]:
    reports = []
    for unit in solved.group.solved:
        mine = solved.outcomes[unit.name]
        state, reasons = solved.states[unit.name]
        report = CondaLockReport(target=unit.key, layer=unit.name, status=state, reasons=reasons,
                                 seconds=solved.seconds, cells={p: o.status for p, o in mine.items()},
                                 problems=[o.message for o in mine.values() if o.message and o.status != LOCKED])
        locked = {p: o.records for p, o in mine.items() if o.status == LOCKED}
        if locked:
            report.changes = _write(unit, solved.group, locked, solved.platforms, run_)
            report.status = "locked" if len(locked) == len(mine) else "partial"
        elif mine:
            report.status = "failed"
        reports.append(report)
    return reports


def _write(unit: Unit, group: Group, locked: dict[str, list[RepoDataRecord]], solved: list[str],
           run_: _Run) -> list[str]:
    """Write the unit's lock: the platforms locked now, plus the previous lock's platforms this run left alone."""
    try:
        old = lockfile.read(unit.lock_path)
    except (FileNotFoundError, CondaError):
        old = None
    kept = [p for p in (old.metadata.platforms if old else []) if p not in solved and p in unit.platforms]
    parents = parent_digests(unit) or {}
    channels = list(dict.fromkeys([recipechannel.published()] * bool(run_.local)
                                  + list(run_.solve.solver.channels[len(run_.local):])))
    ours = bool(run_.local) or run_.published
    # Records rendered from unbuilt recipes have no file, hence no hash a lock could hold: the lock names them in
    # its metadata instead, and reads as stale until they are built and the lock remade.
    unbuilt = {p: [r for r in rs if r.sha256 is None and r.name.normalized in run_.rendered]
               for p, rs in locked.items()}
    locked = {p: [r for r in rs if r.sha256 is not None or r.name.normalized not in run_.rendered]
              for p, rs in locked.items()}
    meta = _meta(unit, channels, parents, group, sorted(locked), old, kept)
    if ours:  # where installers fetch these packages from a local copy of the channel instead
        meta.custom["vre-recipes-channel"] = recipechannel.published()
    meta.custom.update({f"vre-rendered:{p}": ", ".join(f"{r.name.normalized} {r.version} {r.build}" for r in rs)
                        for p, rs in unbuilt.items() if rs})
    new = lockfile.build(locked, meta)
    for entry in new.package:
        entry.url = recipechannel.to_published(entry.url, run_.local)
    if old:
        new.package += [e for e in old.package if e.platform in kept]
        new.metadata.platforms = sorted([*locked, *kept])
    lockfile.write(new, unit.lock_dir, meta)
    if old is None:  # a first lock: its size, not every package
        return [f"new lock: {', '.join(f'{p} {len(rs)} packages' for p, rs in sorted(locked.items()))}"]
    return changes(old, new)


def _meta(unit: Unit, channels: list[str], parents: dict[str, str], group: Group, platforms: list[str],
          old: Lockfile | None, kept: list[str]) -> lockfile.Meta:
    custom = {"vre-format": FORMAT, "vre-unit": unit.key, "vre-group": group.name}
    custom.update({f"vre-input:{source}": value for source, value in input_digests(unit).items()})
    for p in platforms:
        custom[f"vre-virtual-packages:{p}"] = " ".join(f"{n}={v.replace(' ', '=')}"
                                                        for n, v in unit.virtual.for_platform(p).items())
        custom[f"vre-group:{p}"] = group.digest(p)
    if unit.parent:
        custom["vre-parent"] = unit.parent.key
        custom.update({f"vre-parent-packages:{p}": parents.get(p, "") for p in platforms})
    content_hash = {p: content_hash_of(unit, p, parents.get(p)) for p in platforms}
    if old:  # the platforms this run left alone keep what they were locked from
        previous = old.metadata.custom_metadata or {}
        custom.update({k: v for k, v in previous.items() if k.rsplit(":", 1)[-1] in kept})
        content_hash.update({p: old.metadata.content_hash[p] for p in kept})
    return lockfile.Meta(key=unit.key, name=unit.name, content_hash=content_hash, channels=channels,
                         sources=[unit.relative(env.path) for env in unit.env_files], custom=custom)


def changes(old: Lockfile | None, new: Lockfile) -> list[str]:
    """The difference between two locks, one line per change, with the platforms it happened on."""
    platforms: dict[str, list[str]] = {}
    for p in new.metadata.platforms:
        for line in diff(lockfile.pins(old, p) if old else {}, lockfile.pins(new, p)):
            platforms.setdefault(line, []).append(p)
    every = len(new.metadata.platforms)
    return [line if len(ps) == every else f"{line}  [{', '.join(ps)}]" for line, ps in platforms.items()]
