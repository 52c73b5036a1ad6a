#!/usr/bin/env python3
"""Benchmark the debian build (a script that prints figures, never a test).

Prints, per image: cold build time (no build cache, base re-bootstrapped), warm rebuild time with nothing
changed, image size. Writes the same figures as JSON (.vre/bench/<time>.json) to compare runs.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

from vre import engine, matrix
from vre.base import base_ref
from vre.build import BuildOptions, Progress, build
from vre.report import human_size

ROOT = Path(__file__).resolve().parent.parent


def timed_build(m: matrix.Matrix, targets, label: str, no_cache: bool = False) -> dict[str, dict]:
    results = []
    started = time.monotonic()
    if not build(m, targets, BuildOptions(workdir=ROOT / ".vre", no_cache=no_cache), Progress(), results):
        raise SystemExit(f"{label} build failed: {results[-1].key}: {results[-1].error}")
    print(f"{label}: {time.monotonic() - started:.1f} s in all")
    return {r.key: {"seconds": round(r.seconds, 1), "size": r.size, "cached": f"{r.cached_steps}/{r.steps}"}
            for r in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("images", nargs="*", default=["base-geo"])
    parser.add_argument("--flavor", default="debian")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold build (keeps the cache)")
    args = parser.parse_args()
    m = matrix.load(ROOT / "images" / "matrix.yaml")
    targets = m.select(args.images, [args.flavor])
    figures: dict[str, dict] = {}
    if not args.no_cold:
        # Cold without pruning the engine's whole cache (other work may share it): the base is bootstrapped again
        # and every step of these images runs with --no-cache.
        engine.docker("image", "rm", "-f", base_ref(m, args.flavor), check=False)
        started = time.monotonic()
        figures["cold"] = timed_build(m, targets, "cold", no_cache=True)
        figures["cold"]["total"] = {"seconds": round(time.monotonic() - started, 1)}
    figures["warm"] = timed_build(m, targets, "warm (nothing changed)")

    print("\n| image | cold build | warm rebuild | steps cached (warm) | size |\n|---|---|---|---|---|")
    for key, warm in figures["warm"].items():
        cold = figures.get("cold", {}).get(key, {}).get("seconds")
        print(f"| {key} | {f'{cold} s' if cold is not None else '-'} | {warm['seconds']} s | {warm['cached']} "
              f"| {human_size(warm['size'])} |")
    out = ROOT / ".vre" / "bench" / (datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1))
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
