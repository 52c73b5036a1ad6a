"""conda-lock files in and out, written and read with conda-lock's own models and renderer.

Per lock folder: conda-lock.yml (every platform; `conda-lock install`, `micromamba create -f`) and one explicit
conda-<platform>.lock (@EXPLICIT, for plain conda/mamba without a solve). Both carry the same per-platform input hash.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import yaml
from conda_lock.conda_lock import render_lockfile_for_platform
from conda_lock.lockfile.v1.models import Lockfile as LockfileV1
from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency, Lockfile, LockMeta, lockfile_v1_to_v2
from rattler import MatchSpec, RepoDataRecord

from vre.lock.conda import CondaError

# conda-lock's parse_conda_lock_file/write_conda_lock_file go through PyYAML's pure-Python loader and dumper:
# ~5 s for one 500-package, 4-platform lock. The same models through libyaml take a tenth of that.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
EXPLICIT_HASH = re.compile(r"^# input_hash: (?P<hash>\S+)$", re.M)
HEADER = """\
# eo-vre lock of {key}, made by `vre lock` with py-rattler {rattler} in conda-lock's format. DO NOT EDIT.
# Without eo-vre:  conda-lock install -p PREFIX conda-lock.yml
#             or:  micromamba create -p PREFIX -f conda-lock.yml   (or -f conda-<platform>.lock)
# With eo-vre:     vre env {name}   vre lock --check   vre lock --update PACKAGE
"""


@dataclass(frozen=True)
class Meta:
    """What eo-vre records beside the packages: conda-lock's metadata fields plus custom_metadata."""

    key: str
    name: str
    content_hash: dict[str, str]  # platform -> input hash
    channels: list[str]  # URLs, in priority order, as solved
    sources: list[str]  # spec files, relative to the lock folder
    custom: dict[str, str]  # vre-* entries: input digests, parent, virtual packages


def locked_dependency(record: RepoDataRecord, platform: str) -> LockedDependency:
    # conda-lock keeps, per dependency name, the version part of its specs (build globs are dropped).
    dependencies: dict[str, list[str]] = {}
    for dep in record.depends:
        spec = MatchSpec(dep)
        versions = dependencies.setdefault(spec.name.normalized, [])
        if spec.version is not None and str(spec.version) != "*":
            versions.append(str(spec.version))
    return LockedDependency(
        name=record.name.normalized, version=str(record.version), manager="conda", platform=platform,
        dependencies={name: ",".join(v) for name, v in dependencies.items()}, url=record.url,
        hash=HashModel(md5=record.md5.hex() if record.md5 else None,
                       sha256=record.sha256.hex() if record.sha256 else None),
        categories={"main"}, build=str(record.build))


def build(records: dict[str, list[RepoDataRecord]], meta: Meta) -> Lockfile:
    package = [locked_dependency(r, p) for p, rs in records.items() for r in rs]
    metadata = LockMeta(content_hash=meta.content_hash, channels=meta.channels, platforms=sorted(records),
                        sources=meta.sources, custom_metadata=meta.custom)
    return Lockfile(package=package, metadata=metadata)


def write(lock: Lockfile, folder: Path, meta: Meta) -> None:
    """conda-lock.yml plus the explicit file of each platform; explicit files of dropped platforms are removed."""
    # What conda-lock's write_conda_lock_file does (sorted, no virtual packages, v1 on disk), through libyaml.
    content = lock.model_copy(deep=True)
    content.alphasort_inplace()
    content.filter_virtual_packages_inplace()
    body = yaml.dump(content.to_v1().dict_for_output(), Dumper=DUMPER, sort_keys=False)
    header = HEADER.format(key=meta.key, name=meta.name, rattler=rattler_version())
    (folder / "conda-lock.yml").write_text(header + body)
    for old in folder.glob("conda-*.lock"):
        old.unlink()
    for platform in lock.metadata.platforms:
        lines = render_lockfile_for_platform(lockfile=lock.model_copy(deep=True), include_dev_dependencies=False,
                                             extras=None, kind="explicit", platform=platform)
        (folder / f"conda-{platform}.lock").write_text("\n".join(lines) + "\n")


def rattler_version() -> str:
    return version("py-rattler")


def read(path: Path) -> Lockfile:
    """A conda-lock.yml as conda-lock's models (what parse_conda_lock_file does, through libyaml); read once per
    version of the file. Raises FileNotFoundError when there is none."""
    stat = path.stat()
    return _read(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _read(path: Path, mtime_ns: int, size: int) -> Lockfile:
    try:
        content = yaml.load(path.read_text(), Loader=LOADER)
        if not isinstance(content, dict) or content.pop("version", None) != 1:
            raise ValueError("expected `version: 1`, as conda-lock writes it")
        return lockfile_v1_to_v2(LockfileV1.model_validate(content))
    except Exception as e:  # yaml and pydantic errors alike
        raise CondaError(f"{path}: not a conda-lock file conda-lock can read ({e}); "
                         "run `vre lock` to rewrite it") from e


def explicit_hash(path: Path) -> str | None:
    match = EXPLICIT_HASH.search(path.read_text()) if path.is_file() else None
    return match["hash"] if match else None


def packages(lock: Lockfile, platform: str) -> dict[str, LockedDependency]:
    return {p.name: p for p in lock.package if p.platform == platform and p.manager == "conda"}


def pins(lock: Lockfile, platform: str) -> dict[str, str]:
    """name -> "version build", the form changes are printed in."""
    return {name: f"{p.version} {p.build}" for name, p in packages(lock, platform).items()}
