"""How `vre lock` scales: lock the whole conda matrix against generated channels of growing size.

Each channel is a repodata.json per platform (no package files: a solve reads repodata only) with every package the
real specs under environments/conda/ name, in versions and builds that satisfy them (cpu_*/cuda* builds, the
abseil-like coupling of QGIS, PyTorch and TensorFlow, __cuda on CUDA builds), plus generated packages that the real
ones depend on, several versions each. It is served on a loopback port as a mirror of conda-forge, so the locks go
through the same code as real ones (gateway, mirror, parent pins); they are written to a copy of the repository.

    python bench/bench_lock.py                 # 1000, 3000 and 9000 generated names
    python bench/bench_lock.py --names 20000   # one size
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import random
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

from rattler import BuildString, MatchSpec, PackageRecord

from vre import matrix as matrix_mod
from vre.lock.conda import lockfile
from vre.lock.conda.channels import Network, base_url
from vre.lock.conda.lock import LockOptions, lock
from vre.lock.conda.spec import PLATFORMS
from vre.lock.conda.units import units_of

ROOT = Path(__file__).resolve().parent.parent
VERSIONS_PER_NAME = 4
DEPS_PER_PACKAGE = 3
# The quarterly abseil/protobuf coupling the specs are written around (environments/conda/README.md): QGIS
# and Ray on 26Q1, TensorFlow on 25Q2, PyTorch on 26Q1 below 2.12.1 and on 26Q2 from there (the "99.0" here).
ABSEIL = {"qgis": "20260107", "ray-default": "20260107", "tensorflow": "20250512"}
PYTORCH_ABSEIL = {"old": "20260107", "new": "20260600"}


def real_specs(m: matrix_mod.Matrix) -> dict[str, list[MatchSpec]]:
    """Every match spec of every conda unit, by package name."""
    specs: dict[str, list[MatchSpec]] = {}
    for target in m.targets.values():
        if target.flavor == "conda":
            for unit in units_of(m, target):
                for platform in unit.platforms:
                    for dep in unit.dependencies(platform):
                        spec = MatchSpec(dep)
                        specs.setdefault(spec.name.normalized, []).append(spec)
    return specs


def satisfying(spec: MatchSpec, build: str) -> str | None:
    """A version the spec accepts, made from the numbers it names (1.0 when it names none)."""
    literals = re.findall(r"\d+(?:\.\d+)*", str(spec.version or "")) or ["1.0"]
    for literal in literals:
        parts = literal.split(".")
        lower = ".".join(parts[:-1] + [str(int(parts[-1]) - 1)]) if int(parts[-1]) > 0 else None
        for candidate in (literal, f"{literal}.0", f"{literal}.1", lower, f"{lower}.9" if lower else None):
            if candidate and spec.matches(PackageRecord(name=spec.name.normalized, version=candidate,
                                                        build=BuildString(build), build_number=0, subdir="linux-64")):
                return candidate
    return None


def packages(specs: dict[str, list[MatchSpec]], names: int, rng: random.Random) -> list[dict]:
    """(name, version, build, depends) of the generated channel, the same for every platform."""
    fillers = [f"gen-{i:05d}" for i in range(names)]
    out = []
    for i, name in enumerate(fillers):
        for v in range(VERSIONS_PER_NAME):
            deps = [f"{d} >=1.{rng.randrange(VERSIONS_PER_NAME)}" for d in rng.sample(fillers[:i], min(i, 2))]
            out.append({"name": name, "version": f"1.{v}", "build": f"h{v:07x}_0", "depends": deps})
    for abseil in sorted({*ABSEIL.values(), *PYTORCH_ABSEIL.values()}):
        out.append({"name": "libabseil", "version": abseil, "build": "h0000000_0", "depends": []})
    for name, name_specs in sorted(specs.items()):
        builds = sorted({str(s.build).rstrip("*") or "h" for s in name_specs if s.build} or {"h"})
        versions = {v for s in name_specs for b in builds if (v := satisfying(s, f"{b}x_0"))} | {"99.0"}
        for version in sorted(versions):
            for n, prefix in enumerate(builds):
                deps = [f"{d} >=1.0" for d in rng.sample(fillers, DEPS_PER_PACKAGE)]
                if prefix.startswith("cuda"):
                    deps.append("__cuda >=12.9")
                coupling = ABSEIL.get(name) or (name == "pytorch" and PYTORCH_ABSEIL["new" if version == "99.0"
                                                                                   else "old"])
                if coupling:
                    deps.append(f"libabseil {coupling}.*")
                build = f"{prefix}x_{n}" if prefix != "h" else f"h{hashlib.sha1(version.encode()).hexdigest()[:7]}_0"
                out.append({"name": name, "version": version, "build": build, "depends": deps})
    return out


def write_channel(folder: Path, pkgs: list[dict]) -> int:
    for platform in (*PLATFORMS, "noarch"):
        entries = {} if platform == "noarch" else {
            f"{p['name']}-{p['version']}-{p['build']}.conda": {
                **p, "build_number": int(p["build"].rsplit("_", 1)[1]), "subdir": platform, "license": "MIT",
                "md5": hashlib.md5(p["name"].encode()).hexdigest(), "size": 1, "timestamp": 1700000000000,
                "sha256": hashlib.sha256(f"{p['name']}{p['version']}{p['build']}".encode()).hexdigest()}
            for p in pkgs}
        (folder / platform).mkdir(parents=True)
        (folder / platform / "repodata.json").write_text(json.dumps(
            {"info": {"subdir": platform}, "packages": {}, "packages.conda": entries}))
    return len(pkgs) * len(PLATFORMS)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def bench(names: int, rng: random.Random) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shutil.copytree(ROOT / "environments", tmp / "environments",
                        ignore=shutil.ignore_patterns("conda-lock.yml", "conda-*.lock"))
        shutil.copytree(ROOT / "images", tmp / "images")
        m = matrix_mod.load(tmp / "images" / "matrix.yaml")
        records = write_channel(tmp / "channel", packages(real_specs(m), names, rng))
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp / "channel")))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            options = LockOptions(network=Network(
                mirrors={base_url("conda-forge"): f"http://127.0.0.1:{server.server_address[1]}"},
                cache_dir=tmp / "cache"))
            print(f"\n{names} generated names, {records} records ({records // len(PLATFORMS)} per platform)")
            print(f"  {'lock':40} {'platforms':>9} {'packages':>9} {'seconds':>8}")
            started = time.monotonic()
            for target in m.targets.values():
                if target.flavor != "conda":
                    continue
                for report in lock(m, target, check=False, update=[], options=options):
                    unit = next(u for u in units_of(m, target) if u.name == report.layer)
                    count = len(lockfile.packages(lockfile.read(unit.lock_path), unit.platforms[0]))
                    print(f"  {report.layer:40} {len(unit.platforms):>9} {count:>9} {report.seconds:>8.2f}")
            total = time.monotonic() - started
            print(f"  {'whole conda matrix':40} {'':>9} {'':>9} {total:>8.2f}")
            return total
        finally:
            server.shutdown()
            server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", default="1000,3000,9000",
                        help="generated package names per channel, comma-separated")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    totals = {int(n): bench(int(n), random.Random(args.seed)) for n in args.names.split(",")}
    print("\ngrowth: " + ", ".join(f"{n} names {t:.1f} s" for n, t in totals.items()))


if __name__ == "__main__":
    main()
