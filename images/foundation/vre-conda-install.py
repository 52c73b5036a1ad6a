#!/opt/vre/tools/bin/python
"""vre-conda-install LOCKFILE PREFIX: install this platform's packages of a conda-lock.yml into PREFIX with rattler.

No solve: the lock is the environment, every package is checked against its sha256. A layer only adds packages: if
the lock would remove or change a package already in PREFIX (installed by a parent layer), nothing is installed and
the message says which. Packages may be fetched from elsewhere than the URL the lock records (a mirror, the build's
local channel) with `--mirror FROM=TO` or VRE_CONDA_MIRRORS="FROM=TO ..."; FROM is a channel name or URL, TO a URL
or a directory. Packages of our recipes' channel (the lock's custom_metadata vre-recipes-channel) and of local
(file://) channels come by default from /tmp/vre-extra/channel, where the factory mounts the channel given to
`vre build --channel`.

After installing, the variables the packages' activation scripts set are compared with this process's environment
(the image's ENV): kernels and `docker exec` never run activation scripts, so each difference is printed.

Runs from the image's tools venv (py-rattler, PyYAML); `vre env` imports it to make laptops' environments the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml
from rattler import BuildString, Channel, PackageRecord, PrefixRecord, RepoDataRecord, Subdir
from rattler import install as rattler_install

BUILD_CHANNEL = Path("/tmp/vre-extra/channel")
MIRRORS_ENV = "VRE_CONDA_MIRRORS"
# Set by activation scripts for their own bookkeeping, or by bash itself: never expected in an image's ENV.
NOT_ACTIVATION = ("_", "SHLVL", "PWD", "OLDPWD", "CONDA_PREFIX")


class InstallError(RuntimeError):
    pass


def load(lock_path: Path) -> dict:
    try:
        # libyaml when the wheel has it: PyYAML's pure-Python loader takes seconds on a large lock.
        lock = yaml.load(lock_path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as e:
        raise InstallError(f"{lock_path}: cannot read it as YAML: {e}") from None
    if not isinstance(lock, dict) or lock.get("version") != 1 or "package" not in lock:
        raise InstallError(f"{lock_path}: not a conda-lock file (expected `version: 1` and a `package` list, as "
                           "`vre lock` and conda-lock write them)")
    return lock


def entries(lock: dict, lock_path: Path, platform: str) -> list[dict]:
    platforms = lock.get("metadata", {}).get("platforms", [])
    if platform not in platforms:
        raise InstallError(f"{lock_path}: metadata.platforms has no {platform} (it locks {', '.join(platforms)}): "
                           "add the platform to the environment.yml's platforms and run `vre lock`")
    chosen = [p for p in lock["package"] if p.get("platform") == platform]
    pip = [p["name"] for p in chosen if p.get("manager") != "conda"]
    if pip:
        raise InstallError(f"{lock_path}: package entries with manager pip ({', '.join(pip)}): eo-vre conda layers "
                           "hold conda packages only")
    return chosen


def mirrors(pairs: list[str], lock: dict) -> list[tuple[str, str]]:
    """(from URL prefix, to URL prefix), longest prefix first."""
    mapping = {}
    # Our recipes' channel (recorded by its published URL) and local file:// channels of older locks.
    ours = (lock.get("metadata", {}).get("custom_metadata") or {}).get("vre-recipes-channel")
    for channel in lock.get("metadata", {}).get("channels", []):
        url = channel["url"] if isinstance(channel, dict) else str(channel)
        if (url.startswith("file://") or url == ours) and BUILD_CHANNEL.is_dir() and any(BUILD_CHANNEL.iterdir()):
            mapping[url.rstrip("/")] = BUILD_CHANNEL.as_uri()
    for pair in os.environ.get(MIRRORS_ENV, "").split() + pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source or not target:
            raise InstallError(f"mirror {pair!r}: expected FROM=TO (channel name or URL = URL or directory)")
        target = target if "://" in target else Path(target).resolve().as_uri()
        mapping[Channel(source).base_url.rstrip("/")] = target.rstrip("/")
    return sorted(mapping.items(), key=lambda item: -len(item[0]))


def fetch_url(url: str, mapping: list[tuple[str, str]]) -> str:
    for source, target in mapping:
        if url.startswith(source + "/"):
            return target + url[len(source):]
    return url


def record(entry: dict, lock_path: Path, mapping: list[tuple[str, str]]) -> RepoDataRecord:
    url = entry["url"]
    where = fetch_url(url, mapping)
    sha256 = (entry.get("hash") or {}).get("sha256")
    md5 = (entry.get("hash") or {}).get("md5")
    if not sha256:
        raise InstallError(f"{lock_path}: {entry['name']} ({entry['platform']}): hash.sha256 missing (expected "
                           "the package's sha256: relock with `vre lock`)")
    if where.startswith("file://"):
        _verify_local(Path(unquote(urlsplit(where).path)), sha256, entry, url, lock_path)
    subdir, file_name = urlsplit(url).path.rstrip("/").split("/")[-2:]
    build = entry.get("build") or file_name.rsplit("-", 1)[-1].split(".")[0]
    number = build.rsplit("_", 1)[-1]
    package = PackageRecord(
        name=entry["name"], version=str(entry["version"]), build=BuildString(build),
        build_number=int(number) if number.isdigit() else 0, subdir=subdir,
        depends=[f"{name} {spec}".strip() for name, spec in (entry.get("dependencies") or {}).items()],
        sha256=bytes.fromhex(sha256), md5=bytes.fromhex(md5) if md5 else None)
    return RepoDataRecord(package, file_name=file_name, url=where, channel=url[: -len(f"{subdir}/{file_name}")])


def _verify_local(path: Path, sha256: str, entry: dict, url: str, lock_path: Path) -> None:
    # rattler checks hashes of what it downloads, not of local files: a rebuilt channel must not slip through.
    if not path.is_file():
        raise InstallError(f"{lock_path}: {entry['name']} comes from a local channel ({url}) but {path} does not "
                           "exist: build with `vre build --channel DIR` (the channel the lock was made with; the "
                           "factory mounts it at /tmp/vre-extra/channel) or give --mirror LOCAL_URL=DIR")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise InstallError(f"{lock_path}: {path}: sha256 {digest}, but the lock expects {sha256} for "
                           f"{entry['name']} {entry['version']}: the channel was rebuilt since the lock; run "
                           f"`vre lock --update {entry['name']}`")


def check_additive(prefix: Path, records: list[RepoDataRecord], lock_path: Path) -> int:
    """Refuse a lock that would remove or change what is installed; return how many packages are already there."""
    installed = {r.name.normalized: r for r in
                 (PrefixRecord.from_path(p) for p in sorted((prefix / "conda-meta").glob("*.json")))}
    wanted = {r.name.normalized: r for r in records}
    problems = [f"remove {name} {r.version} ({r.build})" for name, r in installed.items() if name not in wanted]
    problems += [f"change {name} {r.version} ({r.build}) -> {wanted[name].version} ({wanted[name].build})"
                 for name, r in installed.items()
                 if name in wanted and (str(r.version), str(r.build)) != (str(wanted[name].version),
                                                                          str(wanted[name].build))]
    if problems:
        raise InstallError(f"{lock_path}: installing it into {prefix} would " + "; ".join(problems)
                           + ": a layer only adds packages to its parent's environment, so this lock was not solved "
                           "on top of the installed one: run `vre lock` (it pins the parent's packages) and rebuild")
    return len(installed)


def install(lock_path: Path, prefix: Path, platform: str | None = None, pairs: list[str] | None = None) -> str:
    """Install the lock into prefix; return a one-line summary."""
    platform = platform or str(Subdir.current())
    lock = load(lock_path)
    mapping = mirrors(pairs or [], lock)
    records = [record(e, lock_path, mapping) for e in entries(lock, lock_path, platform)]
    already = check_additive(prefix, records, lock_path)
    started = time.monotonic()
    try:
        asyncio.run(rattler_install(records, target_prefix=prefix, platform=Subdir(platform), show_progress=False))
    finally:
        # py-rattler's tokio threads drop Python objects just after returning; let them settle before anything
        # else (interpreter exit included) so the process does not crash at exit.
        time.sleep(0.1)
    return (f"{len(records)} packages for {platform} in {prefix} ({len(records) - already} new, "
            f"{time.monotonic() - started:.1f} s)")


def activation_gaps(prefix: Path) -> list[str]:
    """Variables the prefix's activation scripts set that this process's environment lacks or differs from."""
    scripts = sorted(str(p) for p in (prefix / "etc" / "conda" / "activate.d").glob("*.sh"))
    if not scripts:
        return []
    env = {**os.environ, "CONDA_PREFIX": str(prefix)}

    def after(sources: list[str]) -> dict[str, str]:
        out = subprocess.run(["bash", "-c", 'for f in "$@"; do . "$f"; done; env -0', "activate", *sources],
                             env=env, capture_output=True, check=True).stdout.decode()
        return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)

    baseline, activated = after([]), after(scripts)
    return [f"{name}={value}" for name, value in sorted(activated.items())
            if baseline.get(name) != value and os.environ.get(name) != value and name not in NOT_ACTIVATION
            and not name.startswith(("_CONDA", "CONDA_BACKUP"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vre-conda-install", description=__doc__.split("\n\n")[0])
    parser.add_argument("lockfile", type=Path)
    parser.add_argument("prefix", type=Path)
    parser.add_argument("--platform", help="conda platform to install (default: this machine's)")
    parser.add_argument("--mirror", action="append", default=[], metavar="FROM=TO",
                        help=f"fetch packages of channel FROM from TO (repeatable; also ${MIRRORS_ENV})")
    args = parser.parse_args(argv)
    try:
        print(f"[vre-conda-install] {install(args.lockfile, args.prefix, args.platform, args.mirror)}")
    except InstallError as e:
        print(f"vre-conda-install: {e}", file=sys.stderr)
        return 1
    for gap in activation_gaps(args.prefix):
        print(f"[vre-conda-install] warning: activation sets {gap}, which this image's ENV lacks: kernels and "
              "`docker exec` will miss it (add it to the foundation's conda stage ENV)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
