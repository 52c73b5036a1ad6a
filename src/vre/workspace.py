"""The factory's working folder, `.vre/` at the root of the repository: every path under it, and the slugs that
name an image or a target in file names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NAME = ".vre"


def slug(name: str) -> str:
    """A target key (`base-geo/debian/cpu`) or an image reference (`eo-vre/ide:debian`) as one file name."""
    return name.replace("/", "-").replace(":", "-")


@dataclass(frozen=True)
class Workspace:
    """`.vre/` of one repository (`Workspace.of(matrix.root)`); `dir` may be elsewhere for throwaway runs."""

    dir: Path

    @classmethod
    def of(cls, root: Path) -> Workspace:
        return cls(root.resolve() / NAME)

    def _path(self, *parts: str) -> Path:
        return self.dir.resolve().joinpath(*parts)

    def log(self, name: str) -> Path:
        """The log of a build (a target key) or a test run (`test-<ref>`, `browser-<ref>`)."""
        return self._path("logs", slug(name) + ".log")

    @property
    def contexts(self) -> Path:
        """The staged build contexts (copies of the repository's files, wheel sources included)."""
        return self._path("context")

    def context(self, key: str) -> Path:
        """The staged build context of a target."""
        return self.contexts / slug(key)

    def iidfile(self, key: str) -> Path:
        return self._path("iid", slug(key))

    def release(self, image_id: str) -> Path:
        """The release files (manifest, SBOM) made for an image id."""
        return self._path("release", image_id.split(":")[-1])

    def verdict(self, image_id: str) -> Path:
        """The test verdict on an image id, which `vre publish` requires."""
        return self._path("tested", image_id.removeprefix("sha256:") + ".json")

    def artifacts(self, ref: str) -> Path:
        """An image's release files, as published beside it (`vre artifacts`)."""
        return self._path("artifacts", slug(ref))

    def browser_artifacts(self, ref: str) -> Path:
        """Screenshots and results of the browser checks of an image."""
        return self._path("artifacts", "browser", slug(ref))

    @property
    def channel(self) -> Path:
        """The local conda channel `vre recipes build` makes."""
        return self._path("channel")

    def env(self, name: str) -> Path:
        """Where `vre env NAME` creates an environment."""
        return self._path("envs", slug(name.replace("/envs/", "-")))

    def apt(self, unit: str) -> Path:
        """apt's private configuration, lists and status with which `vre lock` resolves one apt lock."""
        return self._path("apt", slug(unit))

    @property
    def bench(self) -> Path:
        """Benchmark figures (`make bench`, the hub tests' spawn times)."""
        return self._path("bench")
