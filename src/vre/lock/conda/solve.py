"""Solving one unit for one platform with rattler: parent packages pinned, the previous lock preferred.

Pinned (the parent's lock) cannot move: a child image only adds packages. Preferred (the unit's previous lock, minus
what `--update` releases) may move only when something must drag it along, so a relock changes as little as it can.
"""

from __future__ import annotations

from dataclasses import dataclass

import rattler
from conda_lock.lockfile.v2prelim.models import LockedDependency
from rattler import Channel, Gateway, MatchSpec, RepoDataRecord, Subdir
from rattler.exceptions import GatewayError, SolverError

from vre.lock.conda import CondaError
from vre.lock.conda.channels import Network, unreachable
from vre.lock.conda.units import Unit


@dataclass
class Solver:
    channels: list[str]  # in priority order: a local channel of our recipes first, then the matrix's
    network: Network
    gateway: Gateway

    def sources(self) -> list[Channel]:
        return [Channel(c) for c in self.channels]

    async def records(self, entries: dict[str, LockedDependency], platform: str) -> dict[str, RepoDataRecord]:
        """The channels' records of locked packages, matched by URL and sha256; absent ones are left out."""
        if not entries:
            return {}
        try:
            found = await self.gateway.query(self.sources(), [Subdir(platform), Subdir("noarch")], list(entries),
                                             recursive=False)
        except GatewayError as e:
            raise unreachable(e, self.channels, self.network) from None
        by_url = {r.url: r for per_channel in found for r in per_channel}
        matched = {}
        for name, entry in entries.items():
            record = by_url.get(entry.url)
            if record is not None and (record.sha256 is None or record.sha256.hex() == entry.hash.sha256):
                matched[name] = record
        return matched

    async def solve(self, unit: Unit, platform: str, pinned: list[RepoDataRecord],
                    preferred: list[RepoDataRecord]) -> list[RepoDataRecord]:
        # Pinned records only constrain: naming them as specs keeps every parent package in the child environment.
        specs = unit.dependencies(platform) + [r.name.normalized for r in pinned]
        try:
            return await self._solve(unit, platform, specs, pinned, preferred)
        except SolverError as e:
            if pinned:
                raise await self._conflict(unit, platform, pinned, e) from None
            raise CondaError(f"{unit.spec_files()}: no solution for {platform}:\n{e}") from None

    async def _solve(self, unit: Unit, platform: str, specs: list[str], pinned: list[RepoDataRecord],
                     preferred: list[RepoDataRecord]) -> list[RepoDataRecord]:
        try:
            records = await rattler.solve(sources=self.sources(), specs=specs, gateway=self.gateway,
                                          platforms=[Subdir(platform), Subdir("noarch")], pinned_packages=pinned,
                                          locked_packages=preferred, virtual_packages=unit.virtual.generic(platform))
        except GatewayError as e:
            raise unreachable(e, self.channels, self.network) from None
        return sorted(records, key=lambda r: r.name.normalized)

    async def _conflict(self, unit: Unit, platform: str, pinned: list[RepoDataRecord],
                        error: SolverError) -> CondaError:
        """Name the packages and constraints that keep the unit off its parent's lock, and what to do."""
        parent = unit.parent
        assert parent is not None  # a conflict with the parent's pins: there is a parent
        try:  # what the unit's own specs want, left alone: compared with the pins below
            free = await self._solve(unit, platform, unit.dependencies(platform), [], [])
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

