"""Solving with rattler: specs for one platform, some records pinned, the previous locks preferred.

Pinned records (an earlier group's images) cannot move. Preferred ones (the previous locks, minus what `--update`
releases) move only when something must drag them along, so a relock changes as little as it can.
"""

from __future__ import annotations

from dataclasses import dataclass

import rattler
from conda_lock.lockfile.v2prelim.models import LockedDependency
from rattler import Channel, Gateway, GenericVirtualPackage, RepoDataRecord, Subdir
from rattler.exceptions import GatewayError

from vre.lock.conda.channels import Network, unreachable


@dataclass
class Solver:
    channels: list[str]  # in priority order: a local channel of our recipes first, then the matrix's
    network: Network
    gateway: Gateway

    def sources(self) -> list[Channel]:
        return [Channel(c) for c in self.channels]

    async def records(self, entries: dict[str, LockedDependency], platform: str) -> dict[str, RepoDataRecord]:
        """The channels' records of locked packages, matched by subdir, file name and sha256; absent ones are left
        out."""
        if not entries:
            return {}
        try:
            found = await self.gateway.query(self.sources(), [Subdir(platform), Subdir("noarch")], list(entries),
                                             recursive=False)
        except GatewayError as e:
            raise unreachable(e, self.channels, self.network) from None
        # By file name: a lock records our recipes' packages at their published URL, not the local channel's.
        by_file = {"/".join(r.url.rsplit("/", 2)[-2:]): r for per_channel in found for r in per_channel}
        matched = {}
        for name, entry in entries.items():
            record = by_file.get("/".join(entry.url.rsplit("/", 2)[-2:]))
            if record is not None and (record.sha256 is None or record.sha256.hex() == entry.hash.sha256):
                matched[name] = record
        return matched

    async def reachable(self, names: list[str], platform: str) -> list[RepoDataRecord]:
        """Every record of these names and of everything they may depend on (for explaining a failed solve)."""
        try:
            found = await self.gateway.query(self.sources(), [Subdir(platform), Subdir("noarch")], names,
                                             recursive=True)
        except GatewayError as e:
            raise unreachable(e, self.channels, self.network) from None
        return [r for per_channel in found for r in per_channel]

    async def solve_specs(self, specs: list[str], platform: str, virtual: list[GenericVirtualPackage],
                          pinned: list[RepoDataRecord], preferred: list[RepoDataRecord]) -> list[RepoDataRecord]:
        """Pinned records cannot move; preferred ones move only when they must. Raises SolverError."""
        try:
            records = await rattler.solve(sources=self.sources(), specs=specs, gateway=self.gateway,
                                          platforms=[Subdir(platform), Subdir("noarch")], pinned_packages=pinned,
                                          locked_packages=preferred, virtual_packages=virtual)
        except GatewayError as e:
            raise unreachable(e, self.channels, self.network) from None
        return sorted(records, key=lambda r: r.name.normalized)
