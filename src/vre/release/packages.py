"""Packages as manifests, SBOMs and release notes see them, and what a layer's lock files pin.

A layer folder (environments/<flavor>/<layer>/ in the repository, /opt/vre/layers/<layer>/ in an image) may hold
requirements.txt (pip, with hashes), conda-lock.yml (conda), package-lock.json (npm) and apt.lock (apt, every
package with its version and sha256 per architecture; apt.txt names only, where a layer has no lock), plus
separate environments under envs/<name>/.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict

from vre.lock import apt as lock_apt
from vre.lock.conda import lockfile
from vre.lock.debian import PIN

ECOSYSTEMS = ("apt", "pip", "conda", "npm")
HASH = re.compile(r"--hash=(?P<alg>sha256|sha384|sha512):(?P<hex>[0-9a-f]+)")
# npm's integrity (Subresource Integrity) algorithms as CycloneDX names them.
SRI = {"sha1": "SHA-1", "sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512"}


class Package(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str  # "" for an apt.txt entry (unpinned)
    build: str = ""  # conda: the build string
    arch: str = ""  # apt: the package's architecture (all, amd64, ...); conda: the subdir
    layer: str = ""  # the layer (or layer/envs/<name>) whose lock pins it
    url: str = ""  # conda: the package file it is installed from
    hashes: tuple[tuple[str, str], ...] = ()  # (CycloneDX algorithm name, hex digest)

    @property
    def label(self) -> str:
        """The version as release notes show it: conda adds the build (`version=build`, conda's own spec syntax)."""
        return f"{self.version}={self.build}" if self.build else self.version


def pip_lock(text: str, layer: str = "") -> list[Package]:
    """Every pin of a hash-locked requirements.txt, with its hashes (a package pinned twice, under two environment
    markers, appears twice)."""
    logical = re.sub(r"\\\n", " ", text)
    found = []
    for line in logical.splitlines():
        match = PIN.match(line)
        if match:
            hashes = tuple((f"SHA-{h['alg'][3:]}", h["hex"]) for h in HASH.finditer(line))
            found.append(Package(name=canonicalize_name(match["name"]), version=match["version"], layer=layer,
                                 hashes=hashes))
    return found


def conda_lock(path: Path, platform: str, layer: str = "") -> dict[str, list[Package]]:
    """ecosystem (conda, pip) -> what a conda-lock.yml installs on `platform`, read with conda-lock's models."""
    found: dict[str, list[Package]] = {"conda": [], "pip": []}
    for dep in lockfile.read(path).package:
        if dep.platform != platform:
            continue
        hashes = tuple((alg, value) for alg, value in (("SHA-256", dep.hash.sha256), ("MD5", dep.hash.md5)) if value)
        if dep.manager == "conda":
            subdir = dep.url.rsplit("/", 2)[-2] if dep.url.count("/") >= 2 else ""
            found["conda"].append(Package(name=dep.name, version=dep.version, build=dep.build or "", arch=subdir,
                                          layer=layer, url=dep.url, hashes=hashes))
        else:
            found["pip"].append(Package(name=canonicalize_name(dep.name), version=dep.version, layer=layer,
                                        url=dep.url, hashes=hashes))
    return found


def npm_lock(text: str, layer: str = "") -> list[Package]:
    """The packages of a package-lock.json (lockfileVersion 2 or 3) that an install without dev dependencies puts in
    place (layers install with `npm ci --omit=dev`), with their integrity hashes."""
    found = []
    for path, entry in json.loads(text).get("packages", {}).items():
        if not path or "version" not in entry or entry.get("link") or entry.get("dev"):
            continue  # "" is the project itself; links have no version of their own
        name = entry.get("name") or path.rsplit("node_modules/", 1)[-1]
        hashes: tuple[tuple[str, str], ...] = ()
        if "integrity" in entry:
            alg, _, digest = entry["integrity"].partition("-")
            if alg in SRI:
                hashes = ((SRI[alg], base64.b64decode(digest).hex()),)
        found.append(Package(name=name, version=entry["version"], layer=layer, hashes=hashes))
    return found


def apt_list(text: str, layer: str = "") -> list[Package]:
    """The packages an apt.txt asks for: `name`, `name/release` (e.g. bookworm-backports) or `name=version`; the
    version is "" unless pinned."""
    entries = (line.split("#", 1)[0].strip() for line in text.splitlines())
    found = []
    for entry in filter(None, entries):
        name, _, version = entry.partition("=")
        found.append(Package(name=name.partition("/")[0], version=version, layer=layer))
    return found


def apt_lock(path: Path, platform: str, layer: str = "") -> list[Package]:
    """The packages of an apt.lock that `platform` (a conda subdir: linux-64, linux-aarch64) installs."""
    arch = {"linux-64": "amd64", "linux-aarch64": "arm64"}.get(platform, platform)
    return [Package(name=pin.name, version=pin.version, layer=layer, hashes=(("SHA-256", pin.sha256),))
            for pin in lock_apt.read(path)[1] if pin.arch == arch] + [
        Package(name=lock_apt.STAND_IN + pin.name, version=pin.version, layer=layer)
        for pin in lock_apt.omitted(path) if pin.arch == arch]


def layer_locks(folder: Path, layer: str, platform: str = "linux-64") -> dict[str, list[Package]]:
    """ecosystem -> what the lock files of one layer folder (and of its envs/<name>/ environments) pin."""
    readers = {"requirements.txt": ("pip", pip_lock), "package-lock.json": ("npm", npm_lock)}
    if not (folder / "apt.lock").is_file():
        readers["apt.txt"] = ("apt", apt_list)
    found: dict[str, list[Package]] = {eco: [] for eco in ECOSYSTEMS}
    for sub, name in [(folder, layer)] + [(env, f"{layer}/envs/{env.name}") for env in sorted(folder.glob("envs/*"))]:
        for file, (eco, reader) in readers.items():
            if (sub / file).is_file():
                found[eco] += reader((sub / file).read_text(), name)
        if (sub / "apt.lock").is_file():
            found["apt"] += apt_lock(sub / "apt.lock", platform, name)
        if (sub / "conda-lock.yml").is_file():
            for eco, packages in conda_lock(sub / "conda-lock.yml", platform, name).items():
                found[eco] += packages
    return found
