"""A layer's conda specs: environment.yml (what it wants) and virtual-packages.yml (the machines it targets).

environment.yml is the file conda-lock reads, with conda-lock's own platform selectors (`# [linux]`, `# [osx]`,
`# [linux64]`, `# [aarch64]`, `# [arm64]`), so a spec means the same to `vre lock` and to plain conda-lock.
virtual-packages.yml is conda-lock's --virtual-package-spec format.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import yaml
from conda_lock.src_parser.selectors import filter_platform_selectors
from conda_lock.virtual_package import VirtualPackageSpec
from pydantic import ValidationError
from rattler import BuildString, GenericVirtualPackage, MatchSpec, PackageName, Version

from vre.lock.conda import CondaError

PLATFORMS = ("linux-64", "linux-aarch64", "osx-64", "osx-arm64")
DOCKER_PLATFORMS = {"linux/amd64": "linux-64", "linux/arm64": "linux-aarch64"}
ENV_KEYS = ("name", "channels", "dependencies", "platforms")

# conda-lock logs every line a selector filters out, at WARNING: that is how selectors work, not news.
logging.getLogger("conda_lock.src_parser.selectors").setLevel(logging.ERROR)


def _read_yaml(path: Path) -> tuple[str, object]:
    try:
        text = path.read_text()
        return text, yaml.safe_load(text)
    except FileNotFoundError:
        raise CondaError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise CondaError(f"{path}: not valid YAML: {e}") from None


@dataclass(frozen=True)
class EnvFile:
    path: Path
    channels: tuple[str, ...] | None  # None: not declared (the matrix's channels apply)
    platforms: tuple[str, ...] | None  # None: not declared (no restriction)
    by_platform: dict[str, tuple[str, ...]]  # the match specs left after the selectors, per platform

    def dependencies(self, platform: str) -> tuple[str, ...]:
        return self.by_platform[platform]


def load_env(path: Path) -> EnvFile:
    """Parse and check an environment.yml; errors name the file, the field and what is expected."""
    text, raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise CondaError(f"{path}: expected a mapping with keys {', '.join(ENV_KEYS)}")
    unknown = sorted(set(raw) - set(ENV_KEYS))
    if unknown:
        raise CondaError(f"{path}: unknown key {unknown[0]!r} (expected one of: {', '.join(ENV_KEYS)})")
    channels = raw.get("channels")
    if channels is not None:
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise CondaError(f"{path}: channels: expected a list of channel names or URLs")
        # conda-lock drops `nodefaults` too: it only tells conda not to add its defaults.
        channels = tuple(c for c in channels if c != "nodefaults")
    platforms = raw.get("platforms")
    if platforms is not None:
        if not isinstance(platforms, list) or not platforms:
            raise CondaError(f"{path}: platforms: expected a non-empty list of: {', '.join(PLATFORMS)}")
        for p in platforms:
            if p not in PLATFORMS:
                raise CondaError(f"{path}: platforms: unknown {p!r} (expected one of: {', '.join(PLATFORMS)})")
        platforms = tuple(platforms)
    by_platform = {p: _dependencies(path, text, p) for p in PLATFORMS}
    return EnvFile(path=path, channels=channels, platforms=platforms, by_platform=by_platform)


def _dependencies(path: Path, text: str, platform: str) -> tuple[str, ...]:
    deps = (yaml.safe_load("\n".join(filter_platform_selectors(text, platform=platform))) or {}).get("dependencies")
    if deps is None:
        return ()
    if not isinstance(deps, list):
        raise CondaError(f"{path}: dependencies: expected a list of conda match specs")
    for i, dep in enumerate(deps):
        if isinstance(dep, dict) and "pip" in dep:
            raise CondaError(f"{path}: dependencies[{i}]: pip section: conda layers take conda packages only "
                             "(pip wheels bring their own GDAL/PROJ/OpenMP; see environments/conda/README.md)")
        if not isinstance(dep, str):
            raise CondaError(f"{path}: dependencies[{i}]: expected a match spec string, got {dep!r}")
        try:
            MatchSpec(dep)
        except Exception as e:  # rattler raises one exception class per parse failure
            raise CondaError(f"{path}: dependencies[{i}]: {dep!r} is not a conda match spec ({e})") from None
    return tuple(deps)


@dataclass(frozen=True)
class VirtualPackages:
    path: Path
    subdirs: dict[str, dict[str, str]]  # platform -> {"__cuda": "12.9", "__archspec": "1 x86_64", ...}

    def for_platform(self, platform: str) -> dict[str, str]:
        if platform not in self.subdirs:
            raise CondaError(f"{self.path}: subdirs.{platform}: missing (expected the virtual packages of every "
                             f"platform the environment is locked for)")
        return dict(sorted(self.subdirs[platform].items()))

    def generic(self, platform: str) -> list[GenericVirtualPackage]:
        packages = []
        for name, spec in self.for_platform(platform).items():
            version, _, build = spec.partition(" ")
            packages.append(GenericVirtualPackage(PackageName(name), Version(version), BuildString(build or "0")))
        return packages


def load_virtual_packages(path: Path) -> VirtualPackages:
    raw = _read_yaml(path)[1]
    try:
        spec = VirtualPackageSpec.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise CondaError(f"{path}: {where}: {first['msg']} (expected conda-lock's virtual-package format: "
                         "subdirs: {PLATFORM: {packages: {__NAME: VERSION}}})") from None
    subdirs = {}
    for platform, sub in spec.subdirs.items():
        for name, value in sub.packages.items():
            try:
                Version(str(value).partition(" ")[0])
            except Exception as e:  # rattler's version parse error
                raise CondaError(f"{path}: subdirs.{platform}.packages.{name}: {value!r} is not a version "
                                 f"({e})") from None
        subdirs[platform] = {name: str(value) for name, value in sub.packages.items()}
    return VirtualPackages(path=path, subdirs=subdirs)
