#!/usr/bin/env python3
"""Benchmark of large results in the browser, through a real hub (a script that prints figures, never a test).

A hub (JupyterHub + DockerSpawner + configurable-http-proxy, as tests/hub runs it) spawns base-geo; in the user's
server a 4-band uint16 COG of --size pixels a side (16384: 2 GiB of pixels, uncompressed, + overviews) and a DEM of
--dem-size pixels a side are generated; Chromium (tests/browser/bench_viz.mjs) then
  - runs a cell that opens the COG on a tiled map (vre_viz.tile_map): time to the first tile drawn;
  - pans (four arrow keys) at five zoom levels: every tile's latency through the hub's proxy, p50 and p95;
  - runs a cell that shows the DEM in 3D (vre_viz.terrain, trame's server rendering): time to the first frame.
Prints a table and writes .vre/bench/viz-<UTC time>.json. Run by `make bench` (BENCH_VIZ="--size 8192" for less).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the hub tests' client (tests/e2e/hub/hubclient.py)

from tests.e2e.hub.hubclient import TEAMS, USERS, run_code, running_hub, xsrf_headers  # noqa: E402

from vre import matrix  # noqa: E402
from vre.build import BuildOptions, build  # noqa: E402
from vre.progress import Progress  # noqa: E402
from vre.verify.browser import runner  # noqa: E402
from vre.workspace import Workspace  # noqa: E402

USER = USERS["base-geo"]

GENERATE = """
import time
import numpy as np
from osgeo import gdal, osr
import vre_viz
started = time.monotonic()
size, block = {size}, 1024
gdal.SetCacheMax(256 * 1024 * 1024)
ds = gdal.GetDriverByName("GTiff").Create("bench/plain.tif", size, size, 4, gdal.GDT_UInt16,
                                          ["TILED=YES", "BIGTIFF=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512"])
ds.SetGeoTransform((360000.0, 10.0, 0.0, 4830000.0, 0.0, -10.0))
srs = osr.SpatialReference(); srs.ImportFromEPSG(32631); ds.SetProjection(srs.ExportToWkt())
rng = np.random.default_rng(0)
for row in range(0, size, block):
    y = np.arange(row, row + block)[:, None]
    x = np.arange(size)[None, :]
    for band in range(1, 5):
        wave = 2000 + 1500 * np.sin(x / (300 + 70 * band)) * np.cos(y / (410 - 50 * band))
        noise = rng.integers(0, 400, (block, size))
        ds.GetRasterBand(band).WriteArray((wave + noise).astype("uint16"), 0, row)
ds = None
vre_viz.write_cog("bench/plain.tif", "bench/big.tif", compress="NONE")
import os; os.remove("bench/plain.tif")
y, x = np.mgrid[0:{dem}, 0:{dem}]
dem = (500 + 300 * np.sin(x / 300) * np.cos(y / 410) + 20 * np.sin(x / 17)).astype("float32")
from vre_compat.stac_catalog import write_cog
write_cog("bench/dem.tif", dem, (360000.0, 10.0 * size / {dem}, 0.0, 4830000.0, 0.0, -10.0 * size / {dem}))
print(os.path.getsize("bench/big.tif"), round(time.monotonic() - started, 1))
"""

MAP = ['import vre_viz\nm, client = vre_viz.tile_map("big.tif", indexes=[3, 2, 1], vmin=500, vmax=3900)\nm']
# the whole DEM, every pixel a vertex (vre_viz decimates to 2048 a side by default)
DEM = ['import vre_viz\nvre_viz.terrain("dem.tif", drape="big.tif", exaggeration=3, max_size={dem}, '
       'window_size=(900, 600)).show()']


def notebook(cells: list[str]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
                       "source": source} for i, source in enumerate(cells)]}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=16384, help="COG width and height in pixels (4 bands, uint16)")
    parser.add_argument("--dem-size", type=int, default=4096, help="DEM width and height in pixels")
    parser.add_argument("--matrix", type=Path, default=ROOT / "images" / "matrix.yaml")
    parser.add_argument("--image", help="a base-geo image to use as it is (default: base-geo/debian, built first)")
    args = parser.parse_args()

    ref = args.image
    if ref is None:
        m = matrix.load(args.matrix)
        results: list = []
        if not build(m, m.select(["base-geo"], ["debian"]), BuildOptions(), Progress(), results):
            raise SystemExit(f"{results[-1].key}: {results[-1].error}")
        ref = m.targets["base-geo/debian"].ref
    runner.ensure_tools()
    hub_tests = ROOT / "tests" / "e2e" / "hub"
    runner.npm_ci(hub_tests, "configurable-http-proxy")
    proxy = str(hub_tests / "node_modules" / ".bin" / "configurable-http-proxy")
    workspace = Workspace.of(ROOT)
    out = runner.artifacts_dir(workspace, "bench-viz")
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        teams, runtime = Path(tmp, "teams"), Path(tmp, "hub")
        teams.mkdir()
        runtime.mkdir()
        with running_hub(runtime, {"base-geo": ref}, proxy, teams, TEAMS) as hub:  # the hub makes the team folders
            hub.server("base-geo")
            session = hub.login(USER)
            session.get(hub.user_url(USER, "lab"), timeout=120)
            print(f"generating a {args.size}² 4-band uint16 COG and a {args.dem_size}² DEM in {USER}'s server ...",
                  flush=True)
            session.put(hub.user_url(USER, "api/contents/bench"), json={"type": "directory"},
                        headers=xsrf_headers(session, USER), timeout=60)
            cog_bytes, generate_seconds = run_code(hub, session, USER, GENERATE.format(
                size=args.size, dem=args.dem_size), timeout=3600).split()
            dem_cells = [cell.format(dem=args.dem_size) for cell in DEM]
            for name, cells in (("map", MAP), ("dem", dem_cells)):
                answer = session.put(hub.user_url(USER, f"api/contents/bench/{name}.ipynb"), timeout=60,
                                     headers=xsrf_headers(session, USER),
                                     json={"type": "notebook", "format": "json", "content": notebook(cells)})
                answer.raise_for_status()
            t0 = time.monotonic()
            result = runner.run_scenario("bench_viz", runner.HubTarget(hub.url, hub.password), out, timeout=2400,
                                         user=USER, map="bench/map.ipynb", dem="bench/dem.ipynb")
            scenario_seconds = time.monotonic() - t0
    (out / "bench-viz-output.txt").write_text(result.output)
    if not result.ok:
        raise SystemExit(f"the benchmark scenario failed: {result.error}\n{result.summary()}")
    facts = result.facts
    panned = [t["ms"] for t in facts["tiles"] if t["phase"] and t["phase"].startswith("zoom") and t["status"] == 200]
    failed = [t for t in facts["tiles"] if t["status"] != 200]
    record = {
        "measured": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "cores": os.cpu_count(), "image": ref,
        "cog": {"pixels": args.size, "bands": 4, "dtype": "uint16", "bytes": int(cog_bytes),
                "generate_seconds": float(generate_seconds)},
        "first_tile_seconds": facts["firstTileSeconds"],
        "tiles": len(panned), "tile_failures": len(failed), "zoom_levels": facts["zoomLevels"],
        "tile_p50_ms": round(percentile(panned, 50), 1), "tile_p95_ms": round(percentile(panned, 95), 1),
        "tile_max_ms": round(max(panned), 1),
        "dem_pixels": args.dem_size, "first_3d_frame_seconds": facts["first3dFrameSeconds"],
        "view_shown_seconds": facts["viewShownSeconds"], "scenario_seconds": round(scenario_seconds, 1),
        "screenshots": result.screenshots,
    }
    zooms = ", ".join(map(str, record["zoom_levels"]))
    rows = [
        ("COG", f"{args.size} x {args.size} px, 4 bands uint16, {int(cog_bytes) / 2**30:.2f} GiB "
                f"(generated in {float(generate_seconds):.0f} s)"),
        ("first tile drawn (cell run → tile on screen)", f"{record['first_tile_seconds']:.2f} s"),
        (f"tile latency over pan and zoom ({len(panned)} tiles, zoom levels {zooms})",
         f"p50 {record['tile_p50_ms']:.0f} ms, p95 {record['tile_p95_ms']:.0f} ms, max {record['tile_max_ms']:.0f} ms"),
        ("tile failures", str(len(failed))),
        (f"first 3D frame, DEM {args.dem_size} x {args.dem_size} (cell run → frame drawn)",
         f"{record['first_3d_frame_seconds']:.1f} s"),
    ]
    print("\n| figure | value |\n|---|---:|\n" + "\n".join(f"| {name} | {value} |" for name, value in rows) + "\n")
    path = workspace.bench / f"viz-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    print(f"JSON: {path}\nscreenshots: {' '.join(result.screenshots)}")


if __name__ == "__main__":
    main()
