"""Why a group has no solution, in a few lines: missing data first, then the real conflict.

rattler's own explanation of a failed solve is a long tree whose first item is often a side branch. Here:
- missing data: a spec that no record of the channels can satisfy, following dependencies down to the first one no
  record matches (e.g. "eodag-labextension 5.3.1 needs eodag >=4.8.0: no record for linux-64"). On a partial channel
  (a mirror that holds only some builds) that means the data is missing, not that the images disagree.
- conflict: two sides (an image and another, or an image's own specs and its parent's) that solve apart but not
  together; the packages both need at versions the other refuses, each confirmed by solving one side with the
  other's choice (so a package that merely moved with the real culprit is not reported first).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rattler import BuildString, MatchSpec, PackageRecord, RepoDataRecord

Attempt = Callable[[list[str]], Awaitable["list[RepoDataRecord] | str"]]  # records, or rattler's error text
MAX_CANDIDATES = 6  # package names checked by extra solves when explaining one conflict


def name_of(spec: str) -> str:
    return MatchSpec(spec).name.normalized


def describe(record: PackageRecord) -> str:
    return f"{record.name.normalized} {record.version} ({record.build})"


@dataclass
class Missing:
    spec: str
    chain: list[str]  # "pkg 1.0 needs dep >=2" ... down to the dependency no record satisfies
    virtual: bool  # the chain ends at a virtual package the platform does not provide (a constraint, not data)

    def line(self) -> str:
        return " -> ".join([self.spec, *self.chain])


class Availability:
    """Which specs some record of the channels can satisfy, dependencies included (conflicts between them aside)."""

    def __init__(self, records: list[RepoDataRecord], virtual: dict[str, str], platform: str):
        self.platform = platform
        self.by_name: dict[str, list[PackageRecord]] = {}
        for record in sorted(records, key=lambda r: (r.version, r.build_number), reverse=True):
            self.by_name.setdefault(record.name.normalized, []).append(record)
        for name, value in virtual.items():
            version, _, build = value.partition(" ")
            self.by_name[name] = [PackageRecord(name, version, BuildString(build or "0"), 0, platform)]
        self.virtual = set(virtual)
        self._specs: dict[str, MatchSpec] = {}
        self._dep: dict[str, bool] = {}
        self._record: dict[int, bool] = {}

    def _spec(self, text: str) -> MatchSpec:
        if text not in self._specs:
            self._specs[text] = MatchSpec(text)
        return self._specs[text]

    def candidates(self, dep: str) -> list[PackageRecord]:
        spec = self._spec(dep)
        return [r for r in self.by_name.get(spec.name.normalized, []) if spec.matches(r)]

    def satisfiable(self, dep: str) -> bool:
        if dep not in self._dep:
            self._dep[dep] = True  # optimistic inside a dependency cycle
            self._dep[dep] = any(self._usable(r) for r in self.candidates(dep))
        return self._dep[dep]

    def _usable(self, record: PackageRecord) -> bool:
        key = id(record)
        if key not in self._record:
            self._record[key] = True
            self._record[key] = all(self.satisfiable(d) for d in getattr(record, "depends", []))
        return self._record[key]

    def missing(self, spec: str) -> Missing | None:
        """None when some record can satisfy spec; else the chain down to what no record matches."""
        if self.satisfiable(spec):
            return None
        chain, dep = [], spec
        while True:
            found = self.candidates(dep)
            if not found:
                name = name_of(dep)
                if name.startswith("__"):
                    chain.append(f"{dep}: not among the virtual packages solved for {self.platform}")
                    return Missing(spec, chain, virtual=True)
                others = self.by_name.get(name, [])
                have = (f" (the channels have {', '.join(f'{r.version} {r.build}' for r in others[:3])})"
                        if others else "")
                chain.append(f"no record of {dep} for {self.platform}{have}")
                return Missing(spec, chain, virtual=False)
            record = found[0]
            dep = next(d for d in record.depends if not self.satisfiable(d))
            chain.append(f"{record.name.normalized} {record.version} needs {dep}")


@dataclass(frozen=True)
class Side:
    label: str  # e.g. "desktop", "base-geo"
    specs: tuple[str, ...]


def origins(records: list[RepoDataRecord], specs: tuple[str, ...]) -> dict[str, str]:
    """package name -> the requested spec's name that brought it in (a breadth-first walk of the solution)."""
    by_name = {r.name.normalized: r for r in records}
    origin: dict[str, str] = {}
    queue = []
    for spec in specs:
        name = name_of(spec)
        if name in by_name and name not in origin:
            origin[name] = name
            queue.append(name)
    while queue:
        name = queue.pop(0)
        for dep in by_name[name].depends:
            child = name_of(dep)
            if child in by_name and child not in origin:
                origin[child] = origin[name]
                queue.append(child)
    return origin


def needs(records: list[RepoDataRecord], name: str, other: PackageRecord, origin: dict[str, str],
          label: str) -> list[str]:
    """Lines "pkg 1.2 (label: via) needs name SPEC" for the records refusing `other` (the other side's choice)."""
    lines = []
    for record in records:
        for dep in [*record.depends, *record.constrains]:
            spec = MatchSpec(dep)
            if spec.name.normalized == name and not spec.matches(other):
                via = origin.get(record.name.normalized, record.name.normalized)
                where = label if via == record.name.normalized else f"{label}: {via}"
                lines.append(f"{record.name.normalized} {record.version} ({where}) needs {dep}")
                break
    return lines


async def conflict(a: Side, b: Side, attempt: Attempt) -> list[str]:
    """The packages a and b need at versions the other refuses, confirmed ones first; [] if a side fails alone."""
    solved_a, solved_b = await attempt(list(a.specs)), await attempt(list(b.specs))
    if isinstance(solved_a, str) or isinstance(solved_b, str):
        return []
    in_a = {r.name.normalized: r for r in solved_a}
    in_b = {r.name.normalized: r for r in solved_b}
    origin_a, origin_b = origins(solved_a, a.specs), origins(solved_b, b.specs)
    found = []
    for name in sorted(set(in_a) & set(in_b)):
        ra, rb = in_a[name], in_b[name]
        if (str(ra.version), str(ra.build)) == (str(rb.version), str(rb.build)):
            continue
        of_a, of_b = needs(solved_a, name, rb, origin_a, a.label), needs(solved_b, name, ra, origin_b, b.label)
        if of_a or of_b:
            found.append((not (of_a and of_b), name, of_a + of_b, rb))
    found.sort(key=lambda item: item[0])
    confirmed: list[str] = []
    others: list[str] = []
    for _, name, lines, rb in found[:MAX_CANDIDATES]:
        # Real when a cannot take b's choice: a package that only moved along with the culprit can.
        moved = await attempt([*a.specs, f"{name} =={rb.version} {rb.build}"])
        (confirmed if isinstance(moved, str) else others).append("; ".join(lines))
    return confirmed + others[: max(0, 3 - len(confirmed))]


async def fewest(specs: list[str], attempt: Attempt) -> list[str]:
    """The fewest of specs that still fail together (one deletion pass, in order; a solve per spec)."""
    kept = list(specs)
    for spec in specs:
        if isinstance(await attempt([s for s in kept if s != spec]), str):
            kept.remove(spec)
    return kept


def first_lines(error: str, count: int = 12) -> str:
    lines = [line for line in error.splitlines() if line.strip()]
    more = f"\n    ... ({len(lines) - count} more lines of rattler's explanation)" if len(lines) > count else ""
    return "\n".join(f"    {line}" for line in lines[:count]) + more
