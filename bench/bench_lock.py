"""How `vre lock` scales: lock every conda solve group against the conda-forge snapshot (when it sits beside the
repository) and against generated channels of growing size.

Each channel is a repodata.json per platform (no package files: a solve reads repodata only) with every package the
real specs under environments/conda/ name, in versions and builds that satisfy them (cpu_*/cuda* builds, the
abseil-like coupling of QGIS, PyTorch and TensorFlow, __cuda on CUDA builds), plus generated packages that the real
ones depend on, several versions each. It is served on a loopback port as a mirror of conda-forge, so the locks go
through the same code as real ones (gateway, mirror, solve groups, rendered recipes); they are written to a copy of
the repository.

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
from vre.lock.conda import recipes
from vre.lock.conda.channels import Network, base_url
from vre.lock.conda.lock import LockOptions, lock_targets
from vre.lock.conda.spec import PLATFORMS
from vre.lock.conda.units import units_of

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT.parent / "shared" / "conda-forge-snapshot"
# What the snapshot lacks for our specs on linux-64 (eodag >= 4.8 for eodag-labextension, ray-default, a torchvision
# CPU build for the PyTorch on QGIS's protobuf set): dropped for a second run, so the whole group is solved.
SNAPSHOT_LACKS = {"base-geo": ["eodag-labextension", "trame", "laspy", "lazrs-python"],
                  "deep-learning-cpu": ["ray-default", "torchvision"],
                  "deep-learning-gpu": ["ray-default", "torchvision"]}
VERSIONS_PER_NAME = 4
DEPS_PER_PACKAGE = 3
# The quarterly abseil/protobuf coupling of conda-forge (what the solve groups must choose between): QGIS
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
    # Our recipes' run requirements (e.g. eodag >=4.8 for eodag-labextension): they take part through their
    # rendered metadata, so the channel must satisfy them too.
    for recipe in recipes.find(m.root):
        for variant in recipes.render(recipe, "linux-64"):
            for dep in (variant.recipe.to_dict().get("requirements") or {}).get("run") or []:
                spec = MatchSpec(str(dep))
                specs.setdefault(spec.name.normalized, []).append(spec)
    own = {r.name for r in recipes.find(m.root)}
    return {name: s for name, s in specs.items() if name not in own}


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


def copy_repo(tmp: Path) -> matrix_mod.Matrix:
    """The specs, matrix and recipes in a folder of their own: the locks are written there, never here."""
    for folder in ("environments", "images", "recipes", "compat-tests"):
        shutil.copytree(ROOT / folder, tmp / folder, ignore=shutil.ignore_patterns("conda-lock.yml", "conda-*.lock"))
    return matrix_mod.load(tmp / "images" / "matrix.yaml")


def lock_all(m: matrix_mod.Matrix, channel: Path, tmp: Path, platforms: tuple[str, ...] = ()) -> float:
    """`vre lock` of every conda solve group, through a loopback mirror of conda-forge serving channel; prints one
    line per lock and returns the seconds it took."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(channel)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        options = LockOptions(network=Network(
            mirrors={base_url("conda-forge"): f"http://127.0.0.1:{server.server_address[1]}"},
            cache_dir=tmp / "cache"), platforms=platforms)
        targets = [t for t in m.targets.values() if t.flavor == "conda"]
        started = time.monotonic()
        reports = lock_targets(m, targets, check=False, update=[], options=options)
        total = time.monotonic() - started
        print(f"  {'lock':36} {'group s':>7}  platforms")
        for report in reports:
            cells = ", ".join(f"{p} {c}" for p, c in report.cells.items())
            print(f"  {report.layer:36} {report.seconds:>7.2f}  {cells}")
        print(f"  {'every solve group':36} {total:>7.2f}")
        return total
    finally:
        server.shutdown()
        server.server_close()


def bench(names: int, rng: random.Random) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        m = copy_repo(tmp)
        records = write_channel(tmp / "channel", packages(real_specs(m), names, rng))
        print(f"\n{names} generated names, {records} records ({records // len(PLATFORMS)} per platform)")
        return lock_all(m, tmp / "channel", tmp)


def bench_snapshot() -> float | None:
    """The same against the snapshot of conda-forge's repodata beside the repository, when there is one."""
    if not (SNAPSHOT / "channel").is_dir():
        print(f"\nno {SNAPSHOT}: snapshot benchmark skipped")
        return None
    totals = []
    for lacking in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            m = copy_repo(tmp)
            if lacking:
                for folder, names in SNAPSHOT_LACKS.items():
                    spec = tmp / "environments" / "conda" / folder / "environment.yml"
                    spec.write_text("\n".join(line for line in spec.read_text().splitlines()
                                              if not any(line.strip().startswith(f"- {n}") for n in names)) + "\n")
            print(f"\nthe conda-forge snapshot ({SNAPSHOT}), every platform"
                  + (", without what it lacks on linux-64 (" + "; ".join(
                      f"{f}: {', '.join(n)}" for f, n in SNAPSHOT_LACKS.items()) + ")" if lacking else ""))
            totals.append(lock_all(m, SNAPSHOT / "channel", tmp))
    return totals[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", default="1000,3000,9000",
                        help="generated package names per channel, comma-separated")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-snapshot", action="store_true", help="skip the run against the conda-forge snapshot")
    args = parser.parse_args()
    snapshot = None if args.no_snapshot else bench_snapshot()
    totals = {int(n): bench(int(n), random.Random(args.seed)) for n in args.names.split(",")}
    print("\ngrowth: " + ", ".join(f"{n} names {t:.1f} s" for n, t in totals.items())
          + (f"; snapshot {snapshot:.1f} s" if snapshot is not None else ""))


if __name__ == "__main__":
    main()
