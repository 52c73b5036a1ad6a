#!/usr/bin/env python3
"""Benchmark the debian image matrix on this machine (a script that prints figures, never a test).

Per image (default: every debian image, cpu variant, with the parents they need):
  cold     build time with every step run anew (--no-cache) and the base bootstrapped again, in a throwaway copy of
           the repository named eo-vre-bench (no real tag moves; the engine's cache is never pruned)
  warm     rebuild time with nothing changed, and the steps BuildKit took from its cache (each image on its
           parent as it is; an image older than its parent is not rebuilt)
  rebuild  one pip package added to the top layer of --rebuild IMAGE (in a copy): lock and build time, which layers
           were rebuilt (by build step), whether the parent came from the cache, the bytes a user pulls to update
  size     image size and layers (with --compare: the bytes a user of the older run's image pulls to update)
  start    `docker run` to JupyterLab's /api/status answering, median of --starts runs (+ the hub's spawn-to-ready
           figures, if tests/e2e/hub wrote .vre/bench/hub.json)
  compat   the compat suite's time, passed and failed (--compat-select: a pytest selection, e.g. "-k proj")
  lock     the conda flavor: `vre lock` of the whole conda matrix on a generated channel (bench/bench_lock.py)
Prints a Markdown table and details, and writes .vre/bench/<UTC time>.json; --compare OLD.json prints the changes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import subprocess
from datetime import datetime, UTC
from pathlib import Path

import bench_build
import bench_layers
import bench_lock
import bench_run

from vre import engine, matrix
from vre.sizes import human_size
from vre.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
BENCH = Workspace.of(ROOT).bench
SECTIONS = ("cold", "warm", "rebuild", "size", "start", "compat", "lock")
# (section, figure, how it is shown) of the numbers --compare sets side by side.
COMPARED = (("cold", "seconds", "s"), ("warm", "seconds", "s"), ("rebuild", "seconds", "s"),
            ("rebuild", "update_bytes", "B"), ("size", "size", "B"), ("start", "median", "s"),
            ("compat", "seconds", "s"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*", help="images of the matrix (default: all); their parents come too")
    parser.add_argument("--flavor", default="debian")
    parser.add_argument("--variant", default="cpu")
    parser.add_argument("--matrix", type=Path, default=ROOT / "images" / "matrix.yaml")
    for section in SECTIONS:
        parser.add_argument(f"--no-{section}", dest="skip", action="append_const", const=section,
                            help=f"skip the {section} section")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections (repeatable)")
    parser.add_argument("--rebuild", default="deep-learning", help="image whose top layer gets one package")
    parser.add_argument("--package", default="humanize", help="the pip package added (small, pure Python)")
    parser.add_argument("--starts", type=int, default=3, help="container starts per image (median reported)")
    parser.add_argument("--compat-select", default="", help='pytest arguments for the compat suite, e.g. "-k proj"')
    parser.add_argument("--lock-names", default="3000", help="generated package names of the conda channel(s)")
    parser.add_argument("--compare", type=Path, help="an older .vre/bench/*.json to compare with")
    return parser.parse_args()


def run_sections(args: argparse.Namespace, m: matrix.Matrix, keys: list[str], sections: list[str]) -> dict:
    workdir = BENCH / "work"

    def built() -> list[str]:  # asked when a section starts: the builds before it may have made images
        return [k for k in keys if engine.image_id(m.targets[k].ref)]

    def rebuilt() -> list[str]:
        found = [k for k in built() if m.targets[k].image == args.rebuild]
        if not found:
            raise bench_build.BenchError(f"--rebuild {args.rebuild}: no image of the selection built here")
        return found

    def size(key: str) -> dict:
        ref = m.targets[key].ref
        return {"image_id": engine.image_id(ref), "size": engine.inspect(ref)["Size"],
                "layers": bench_layers.to_json(bench_layers.layers(ref))}

    steps = {
        "cold": lambda: bench_build.cold(m, keys, workdir / "cold"),
        "warm": lambda: bench_build.warm(m, keys, workdir / "warm"),
        "rebuild": lambda: {k: bench_build.one_package(m, k, args.package, workdir / "rebuild")
                            for k in rebuilt()},
        "size": lambda: {k: size(k) for k in built()},
        "start": lambda: {k: bench_run.start_to_ready(m.targets[k].ref, args.starts) for k in built()},
        "compat": lambda: {k: bench_run.compat(m.targets[k].ref, shlex.split(args.compat_select), Workspace(workdir))
                           for k in built()},
        "lock": lambda: {"names": {n: round(bench_lock.bench(int(n), random.Random(7)), 1)  # its default seed
                                   for n in args.lock_names.split(",")}},
    }
    figures: dict = {}
    for section in sections:
        print(f"\n## {section}", flush=True)
        try:
            figures[section] = steps[section]()
        except (bench_build.BenchError, engine.EngineError, RuntimeError) as e:
            print(f"{section} failed: {e}")
            figures[section] = {"error": str(e)}
    if "start" in sections:
        figures["hub"] = bench_run.hub(BENCH / "hub.json", [m.targets[k].ref for k in keys])
    return figures


def _s(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def _rows(figures: dict, section: str) -> list[tuple[str, dict]]:
    """(key, figures) of one section; nothing when the section failed or did not run."""
    found = figures.get(section, {})
    return [] if "error" in found else list(found.items())


# The table's columns: (header, section, how a figure of it is shown).
COLUMNS = (("cold build", "cold", lambda f: _s(f["seconds"])),
           ("warm rebuild", "warm", lambda f: f"{_s(f['seconds'])} ({f['cached']}/{f['steps']} cached)"),
           ("rebuild after one package", "rebuild", lambda f: f"{_s(f['seconds'])} (+{f['package']})"),
           ("size", "size", lambda f: human_size(f["size"])),
           ("update pull after it (uncompressed)", "rebuild", lambda f: human_size(f["update_bytes"])),
           ("start to JupyterLab ready (median)", "start", lambda f: _s(f["median"])),
           ("compat suite", "compat", lambda f: f"{_s(f['seconds'])} ({f['passed']} passed, {f['failed']} failed)"))


def table(figures: dict, keys: list[str]) -> list[str]:
    by_section = {section: dict(_rows(figures, section)) for section in SECTIONS}
    rows = [k for k in dict.fromkeys([*by_section["cold"], *by_section["warm"], *keys]) if k != "total"]
    lines = ["| image | " + " | ".join(header for header, _, _ in COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    def cell(section: str, key: str, show) -> str:
        found = by_section[section].get(key)
        return "-" if not found else "not run" if "not_run" in found else show(found)

    lines += [f"| {key} | " + " | ".join(cell(s, key, show) for _, s, show in COLUMNS) + " |" for key in rows]
    return lines


def details(figures: dict) -> list[str]:
    lines = []
    for key, f in _rows(figures, "cold"):
        if key == "total":
            lines.append(f"cold: {_s(f['seconds'])} in all (base bootstrap included)")
    for key, f in _rows(figures, "warm"):
        if "not_run" in f:
            lines.append(f"warm: {key} not run: {f['not_run']}")
        elif not f["same_id"]:
            lines.append(f"warm: {key} was not up to date (its inputs or its parent changed): new image id, tag moved")
    for key, f in _rows(figures, "rebuild"):
        lines.append(f"rebuild {key}: +{f['package']} in {f['layer']}; lock {_s(f['lock_seconds'])} "
                     f"({', '.join(f['lock_changes']) or 'no pin changed'}); build {_s(f['seconds'])}, "
                     f"{f['cached']}/{f['steps']} steps cached")
        lines.append(f"  parent {f['parent']}: its {f['parent_layers']} layers "
                     + ("are the real image's: none rebuilt" if f["parent_unchanged"] else
                        "differ from the real image's" + ("" if f["old_on_parent"] else
                                                           " (the real image predates its parent's last build)")))
        lines.append(f"  {len(f['rebuilt'])} of {f['layers']} layers differ from the real image "
                     f"({human_size(f['update_bytes'])} to pull, uncompressed):")
        lines += [f"    {human_size(layer['size']):>10}  {layer['step'][:110]}" for layer in f["rebuilt"]]
    for key, f in _rows(figures, "start"):
        lines.append(f"start {key}: runs {', '.join(_s(s) for s in f['runs'])}")
    for ref, f in _rows(figures, "hub"):
        lines.append(f"hub spawn to ready {ref}: {_s(f['spawn_to_ready_seconds'])} (measured {f['measured']}"
                     + ("" if f["current_image"] else ", on an older image") + ")")
    for key, f in _rows(figures, "compat"):
        lines.append(f"compat {key}: {f['passed']} passed, {f['failed']} failed, {f['skipped']} skipped"
                     + (f" (selection: {' '.join(f['selection'])})" if f["selection"] else "") + f"; log {f['log']}")
    for names, seconds in dict(_rows(figures, "lock")).get("names", {}).items():
        lines.append(f"conda lock of the whole conda matrix, channel of {names} generated names: {_s(seconds)}")
    return lines + [f"{section} failed: {f['error']}" for section, f in figures.items() if "error" in f]


def compare(old: dict, new: dict) -> list[str]:
    """The figures of both runs side by side, and what a user of the older run's images pulls to update."""
    lines = ["| image | figure | before | now | change |", "|---|---|---:|---:|---:|"]
    for section, figure, unit in COMPARED:
        for key, now in _rows(new, section):
            before = dict(_rows(old, section)).get(key, {})
            if figure in before and figure in now:
                show = _s if unit == "s" else human_size
                change = (now[figure] - before[figure]) / before[figure] * 100 if before[figure] else 0
                lines.append(f"| {key} | {section} {figure} | {show(before[figure])} | {show(now[figure])} "
                             f"| {change:+.0f}% |")
    for key, now in _rows(new, "size"):
        before = dict(_rows(old, "size")).get(key, {})
        if "layers" in before and "layers" in now:
            pulled = bench_layers.missing(bench_layers.from_json(now["layers"]),
                                          bench_layers.from_json(before["layers"]))
            lines.append(f"update pull since then, {key}: {human_size(sum(x.size for x in pulled))} "
                         f"in {len(pulled)} layers (uncompressed)")
    return lines


def main() -> None:
    args = parse_args()
    m = matrix.load(args.matrix)
    keys = [t.key for t in m.select(args.images or None, [args.flavor], [args.variant])]
    sections = [s for s in SECTIONS if s in (args.only or SECTIONS) and s not in (args.skip or ())]
    started = datetime.now(UTC)
    print(f"eo-vre bench: {', '.join(keys)}; sections {', '.join(sections)}; {os.cpu_count()} cores", flush=True)
    figures = run_sections(args, m, keys, sections)
    revision = subprocess.run(["git", "-C", str(m.root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
    record = {"measured": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "revision": revision, "cores": os.cpu_count(),
              "selection": keys, **figures}
    print("\n## results\n\n" + "\n".join(table(figures, keys)) + "\n\n" + "\n".join(details(figures)))
    if args.compare:
        print(f"\n## compared with {args.compare}\n\n" + "\n".join(compare(json.loads(args.compare.read_text()),
                                                                           record)))
    out = BENCH / (started.strftime("%Y%m%dT%H%M%SZ") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"\nJSON: {out}")
    if any("error" in f for f in figures.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
