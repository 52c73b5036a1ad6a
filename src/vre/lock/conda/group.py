"""Solve groups: which conda locks are solved together (pixi's solve-groups).

The notebook environments of one variant (base-geo, desktop, ide, deep-learning-cpu, vre-cpu) form one group, solved
once per platform; each image's lock is the part of that solution its own specs (and its parents') need, so a
package several images share has the same build in all of them and a parent's lock is a subset of every child's.
cpu and gpu builds of PyTorch cannot share one environment, so each variant is a group of its own; the images
without a variant are solved in the first variant's group and pinned, exact builds, in the next ones: their locks
suit both. A separate environment (envs/NAME, e.g. TensorFlow) is a group of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from vre.lock.conda.units import Unit, content_hash, digest, units_of
from vre.matrix import Matrix

DEFAULT = "default"  # the group of a matrix without variants


@dataclass(frozen=True)
class Group:
    name: str
    units: tuple[Unit, ...]  # parents first; every unit is locked by this group except the fixed ones
    fixed: tuple[Unit, ...] = ()  # solved by an earlier group: their packages are pinned here
    fixed_from: str = ""  # that group's name

    @property
    def solved(self) -> tuple[Unit, ...]:
        """The units whose locks this group writes."""
        return tuple(u for u in self.units if u not in self.fixed)

    def platforms(self) -> tuple[str, ...]:
        seen: list[str] = []
        for unit in self.units:
            seen += [p for p in unit.platforms if p not in seen]
        return tuple(seen)

    def members(self, platform: str) -> tuple[Unit, ...]:
        return tuple(u for u in self.units if platform in u.platforms)

    def digest(self, platform: str) -> str:
        """What the group's solve for one platform reads: every member's inputs. A change to any member's specs
        makes every lock of the group stale, since the shared solution may move."""
        return digest(sorted((u.key, content_hash(u, platform, None)) for u in self.members(platform)))


def groups(matrix: Matrix) -> list[Group]:
    """Every solve group of the matrix's conda targets, in the order they must be solved."""
    targets = [t for t in matrix.targets.values() if t.flavor == "conda"]
    mains: dict[str, tuple[str | None, Unit]] = {}
    separate: list[Group] = []
    for target in targets:
        main, *extra = units_of(matrix, target)
        mains[main.key] = (target.variant, main)
        separate += [Group(name=u.name, units=(u,)) for u in extra if all(u.name != g.units[0].name for g in separate)]
    variants = [v for v in matrix.spec.variants if any(variant == v for variant, _ in mains.values())]
    found: list[Group] = []
    shared = tuple(u for variant, u in mains.values() if variant is None)
    for i, variant in enumerate(variants or [None]):
        own = tuple(u for v, u in mains.values() if v is not None and v == variant)
        found.append(Group(name=variant or DEFAULT, units=shared + own, fixed=shared if i else (),
                           fixed_from=found[0].name if i else ""))
    return [g for g in found if g.solved] + separate


def group_of(matrix: Matrix, unit: Unit) -> Group:
    """The group that writes the unit's lock."""
    return next(g for g in groups(matrix) if any(u.name == unit.name for u in g.solved))
