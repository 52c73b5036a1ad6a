#!/usr/bin/env python3
"""Benchmark of large results in the browser, through a real hub (a script that prints figures, never a test).

A hub (JupyterHub + DockerSpawner + configurable-http-proxy, as tests/hub runs it, each server limited to --cpus
CPUs and --memory, by default deploy/jupyterhub-docker's 2 and 4G) spawns base-geo for one user and desktop (the
layer with 3D) for another of the same team. In the team's folder a 4-band uint16 raster of --size pixels a side is
generated in its UTM zone (10 m pixels), with a DEM of --dem-size pixels a side over the same area, then written as
the map's copy (vre_viz.write_cog(web_map=True): Web Mercator at zoom 14, uncompressed: 2.9 GiB with its overviews
for 10240 pixels, the COG the map shows). Chromium (src/vre/verify/browser/bench_viz.mjs) then, after a first cell that
imports the libraries (timed on its own),
  - in base-geo, runs a cell that opens the COG on a tiled map (vre_viz.tile_map): time to the first tile drawn;
    drags the map four times at each of five zoom levels: every tile's latency through the hub's proxy, p50 and p95;
    then asks the tile server alone (no browser on the same cores) for the 6 tiles of each zoom step together;
  - in desktop, runs a cell that shows the DEM in 3D with the UTM raster draped on it (vre_viz.terrain, decimated
    on read to its default 2048 pixels a side; trame's server rendering): time to the first frame.
The load of the machine (1-minute load average) is recorded with each part; each server's memory (peak, OOM kills)
at the end. Prints a table and writes .vre/bench/viz-<UTC time>.json. Run by `make bench` (BENCH_VIZ="--size 8192"
for less).
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

from tests.e2e.hub.hubclient import TEAM_MOUNT, TEAMS, USERS, run_code, running_hub, xsrf_headers  # noqa: E402

from vre import matrix  # noqa: E402
from vre.build import BuildOptions, build  # noqa: E402
from vre.progress import Progress  # noqa: E402
from vre.verify.browser import runner  # noqa: E402
from vre.workspace import Workspace  # noqa: E402

USER = USERS["base-geo"]  # the map, in base-geo
USER_3D = USERS["desktop"]  # the 3D view, in desktop (base-geo has no 3D stack); both in the team that shares DATA
DATA = f"{TEAM_MOUNT}/bench"

GENERATE = """
import os, time
import numpy as np
from osgeo import gdal, osr
import vre_viz
started = time.monotonic()
size, block = {size}, 1024
gdal.SetCacheMax(256 * 1024 * 1024)
os.makedirs("{data}", exist_ok=True)
ds = gdal.GetDriverByName("GTiff").Create("{data}/plain.tif", size, size, 4, gdal.GDT_UInt16,
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
vre_viz.write_cog("{data}/plain.tif", "{data}/scene.tif", compress="NONE")  # in its UTM zone: analysis, 3D drape
os.remove("{data}/plain.tif")
vre_viz.write_cog("{data}/scene.tif", "{data}/big.tif", compress="NONE", web_map=True)  # the map's copy
y, x = np.mgrid[0:{dem}, 0:{dem}]
dem = (500 + 300 * np.sin(x / 300) * np.cos(y / 410) + 20 * np.sin(x / 17)).astype("float32")
from vre_compat.stac_catalog import write_cog
write_cog("{data}/dem.tif", dem, (360000.0, 10.0 * size / {dem}, 0.0, 4830000.0, 0.0, -10.0 * size / {dem}))
print(os.path.getsize("{data}/big.tif"), gdal.Open("{data}/big.tif").RasterXSize, round(time.monotonic() - started, 1))
"""

# A first cell of imports (what a notebook starts with; timed apart), then the cell that is timed.
OPEN_MAP = f'm, client = vre_viz.tile_map("{DATA}/big.tif", indexes=[3, 2, 1], vmin=500, vmax=3900{{options}})'
MAP = ["import vre_viz, ipyleaflet, localtileserver", f"{OPEN_MAP}\nm"]
# The DEM as vre_viz shows it by default: decimated on read to 2048 pixels a side (4.2 M vertices; every pixel of a
# 4096 x 4096 DEM a vertex needs more than the server's 3 GB to render: the kernel is killed at the first frame).
DEM = ["import vre_viz, pyvista",
       f'vre_viz.terrain("{DATA}/dem.tif", drape="{DATA}/scene.tif", exaggeration=3, window_size=(900, 600)).show()']
# The tile server alone, without the browser on the same cores: the map's zoom steps (the 6 tiles about the centre
# of each of the five levels from the map's own, asked together, as the map asks for them), 3 rounds, from a client
# process of its own beside the kernel (so that it does not share the tile server's interpreter). Each tile's time
# from request to last byte, in ms.
SERVER_BURSTS = 'import vre_viz\n' + OPEN_MAP.format(options="") + '''
import json, subprocess, sys
import morecantile
south, north, west, east = client.bounds()
zoom = vre_viz.fit_zoom(client.bounds())
grid = morecantile.tms.get("WebMercatorQuad")
# the map layer's own tile URL (its style), asked of the tile server directly instead of through the proxy
url = f"http://127.0.0.1:{client.server_port}" + m.layers[-1].url.split(f"/proxy/{client.server_port}", 1)[1]
steps = []
for z in range(zoom, zoom + 5):
    centre = grid.tile((west + east) / 2, (south + north) / 2, z)
    tiles = sorted(grid.tiles(west, south, east, north, [z]),
                   key=lambda t: (t.x - centre.x) ** 2 + (t.y - centre.y) ** 2)[:6]
    steps.append([url.format(z=t.z, x=t.x, y=t.y, s="") for t in tiles])
CLIENT = """
import json, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
def get(url):
    started = time.perf_counter()
    # no-cache: made again, not answered from the tile server's memory (vre_tilecache), as the server's own part
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Cache-Control": "no-cache"}),
                                timeout=60) as answer:
        answer.read()
    return (time.perf_counter() - started) * 1000
steps = json.load(sys.stdin)
with ThreadPoolExecutor(6) as pool:
    print(json.dumps([ms for _ in range(3) for step in steps for ms in pool.map(get, step)]))
"""
print(subprocess.run([sys.executable, "-c", CLIENT], input=json.dumps(steps), capture_output=True, text=True,
                     check=True).stdout)
'''
# What each server's memory cgroup saw (cgroup v1 or v2): its peak (page cache included) and OOM kills.
MEMORY = """
from pathlib import Path
v1, v2 = Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup")
if v1.is_dir():
    peak = int((v1 / "memory.max_usage_in_bytes").read_text())
    events = dict(line.split() for line in (v1 / "memory.oom_control").read_text().splitlines())
    stat = dict(line.split() for line in (v1 / "memory.stat").read_text().splitlines())
    print(peak, events.get("oom_kill", "?"), stat.get("total_rss", "?"))
else:
    events = dict(line.split() for line in (v2 / "memory.events").read_text().splitlines())
    stat = dict(line.split() for line in (v2 / "memory.stat").read_text().splitlines())
    print((v2 / "memory.peak").read_text().strip(), events.get("oom_kill", "?"), stat.get("anon", "?"))
"""


def notebook(cells: list[str]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
                       "source": source} for i, source in enumerate(cells)]}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def load() -> float:
    return round(os.getloadavg()[0], 2)


def put_notebook(hub, session, user: str, name: str, cells: list[str]) -> str:
    headers = xsrf_headers(session, user)
    session.put(hub.user_url(user, "api/contents/bench"), json={"type": "directory"}, headers=headers, timeout=60)
    answer = session.put(hub.user_url(user, f"api/contents/bench/{name}.ipynb"), timeout=60, headers=headers,
                         json={"type": "notebook", "format": "json", "content": notebook(cells)})
    answer.raise_for_status()
    return f"bench/{name}.ipynb"


def scenario(hub, out: Path, chromium: str, user: str, **notebooks: str) -> dict:
    """One run of bench_viz.mjs as `user`; its facts, with the machine's load before and after."""
    before, t0 = load(), time.monotonic()
    result = runner.run_scenario("bench_viz", runner.HubTarget(hub.url, hub.password, hub.log_tail), out,
                                 chromium=chromium, timeout=2400, user=user, **notebooks)
    (out / f"bench-viz-{'-'.join(notebooks)}-output.txt").write_text(result.output)
    if not result.ok:
        raise SystemExit(f"the benchmark scenario failed: {result.error}\n{result.summary()}")
    return {**result.facts, "load_before": before, "load_after": load(), "seconds": round(time.monotonic() - t0, 1),
            "screenshots": result.screenshots}


def memory(hub, session, user: str) -> dict:
    peak, oom_kills, resident = run_code(hub, session, user, MEMORY).split()
    return {"peak_bytes": int(peak), "oom_kills": oom_kills, "resident_bytes": resident}


def build_images(matrix_file: Path, names: list[str]) -> dict[str, str]:
    m = matrix.load(matrix_file)
    results: list = []
    if not build(m, m.select(names, ["debian"]), BuildOptions(), Progress(), results):
        raise SystemExit(f"{results[-1].key}: {results[-1].error}")
    return {name: m.targets[f"{name}/debian"].ref for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10240,
                        help="the generated raster's width and height in 10 m pixels (4 bands, uint16)")
    parser.add_argument("--dem-size", type=int, default=4096, help="DEM width and height in pixels")
    parser.add_argument("--cpus", type=float, default=2,
                        help="each server's CPU limit (default: deploy/jupyterhub-docker's limits.cpu, 2)")
    parser.add_argument("--memory", default="4G",
                        help="each server's memory limit, page cache included (default: deploy's limits.memory, 4G)")
    parser.add_argument("--browser-nice", type=int, default=0,
                        help="run Chromium at this niceness (e.g. 10), as if the browser were on the user's machine "
                             "rather than on the servers' cores (default 0: it competes with them)")
    parser.add_argument("--no-prefetch", action="store_true",
                        help="the map without prefetching (vre_viz.tile_map(prefetch=False)): every tile made when "
                             "the map asks for it, as before the tile server kept and prefetched tiles")
    parser.add_argument("--matrix", type=Path, default=ROOT / "images" / "matrix.yaml")
    parser.add_argument("--image", help="a base-geo image to use as it is (default: base-geo/debian, built first)")
    parser.add_argument("--desktop-image", help="a desktop image to use as it is (default: desktop/debian, built)")
    args = parser.parse_args()

    missing = [name for name, ref in (("base-geo", args.image), ("desktop", args.desktop_image)) if ref is None]
    refs = {"base-geo": args.image, "desktop": args.desktop_image,
            **(build_images(args.matrix, missing) if missing else {})}
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
        chromium = runner.CHROMIUM
        if args.browser_nice:
            chromium = str(Path(tmp, "chromium"))
            Path(chromium).write_text(f'#!/bin/sh\nexec nice -n {args.browser_nice} {runner.CHROMIUM} "$@"\n')
            Path(chromium).chmod(0o755)
        limits = {"memory": args.memory, "cpu": args.cpus, "shm": "1G"}
        with running_hub(runtime, refs, proxy, teams, TEAMS, limits=limits) as hub:  # it makes the team folders
            sessions = {}
            for image, user in (("base-geo", USER), ("desktop", USER_3D)):
                hub.server(image)
                sessions[user] = hub.login(user)
                sessions[user].get(hub.user_url(user, "lab"), timeout=120)
            print(f"generating a {args.size}² 4-band uint16 raster, its map's COG and a {args.dem_size}² DEM "
                  f"in {DATA} ...", flush=True)
            cog_bytes, cog_pixels, generate_seconds = run_code(hub, sessions[USER], USER, GENERATE.format(
                size=args.size, dem=args.dem_size, data=DATA), timeout=3600).split()
            tiles = scenario(hub, out, chromium, USER, map=put_notebook(hub, sessions[USER], USER, "map", [
                MAP[0], MAP[1].format(options=", prefetch=False" if args.no_prefetch else "")]))
            bursts = json.loads(run_code(hub, sessions[USER], USER, SERVER_BURSTS, timeout=600))
            view = scenario(hub, out, chromium, USER_3D, dem=put_notebook(hub, sessions[USER_3D], USER_3D, "dem", DEM))
            memories = {user: memory(hub, session, user) for user, session in sessions.items()}
    panned_tiles = [t for t in tiles["tiles"] if t["phase"] and t["phase"].startswith("zoom") and t["status"] == 200]
    panned = [t["ms"] for t in panned_tiles]
    sources = {source: sum(t.get("source") == source for t in panned_tiles) for source in ("cache", "made")}
    failed = [t for t in tiles["tiles"] if t["status"] != 200]
    record = {
        "measured": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "cores": os.cpu_count(), "images": refs,
        "server_limits": {"cpus": args.cpus, "memory": args.memory}, "browser_nice": args.browser_nice,
        "prefetch": not args.no_prefetch,
        "cog": {"pixels": int(cog_pixels), "source_pixels": args.size, "bands": 4, "dtype": "uint16",
                "crs": "EPSG:3857", "bytes": int(cog_bytes),
                "generate_seconds": float(generate_seconds)},
        "map_import_seconds": tiles["mapImportSeconds"], "first_tile_seconds": tiles["firstTileSeconds"],
        "tiles": len(panned), "tile_failures": len(failed), "tile_failure_statuses": [t["status"] for t in failed],
        "zoom_levels": tiles["zoomLevels"],
        "tile_p50_ms": round(percentile(panned, 50), 1), "tile_p95_ms": round(percentile(panned, 95), 1),
        "tile_max_ms": round(max(panned), 1), "tiles_load": [tiles["load_before"], tiles["load_after"]],
        "tile_sources": sources,
        # each tile as the browser timed it (ms, queued, wait, download): where a slow tile spent its time
        "tile_timings": tiles["tiles"],
        "server_burst_tiles": len(bursts), "server_burst_p50_ms": round(percentile(bursts, 50), 1),
        "server_burst_p95_ms": round(percentile(bursts, 95), 1), "server_burst_max_ms": round(max(bursts), 1),
        "dem_pixels": args.dem_size, "dem_import_seconds": view["demImportSeconds"],
        "first_3d_frame_seconds": view["first3dFrameSeconds"], "view_shown_seconds": view["viewShownSeconds"],
        "view_load": [view["load_before"], view["load_after"]], "memory": memories,
        "screenshots": tiles["screenshots"] + view["screenshots"],
    }
    zooms = ", ".join(map(str, record["zoom_levels"]))
    gib = 2 ** 30
    rows = [
        ("COG on the map", f"{cog_pixels} x {cog_pixels} px (Web Mercator, from {args.size} x {args.size} px in UTM), "
                           f"4 bands uint16, {int(cog_bytes) / gib:.2f} GiB "
                           f"(generated in {float(generate_seconds):.0f} s)"),
        ("each user server's limits", f"{args.cpus:g} CPUs, {args.memory}"),
        ("Chromium's niceness", str(args.browser_nice)),
        ("tiles around the map's view prefetched", "no" if args.no_prefetch else "yes"),
        ("imports cell (vre_viz, ipyleaflet, localtileserver)", f"{record['map_import_seconds']:.2f} s"),
        ("first tile drawn (map cell run → tile on screen)", f"{record['first_tile_seconds']:.2f} s"),
        (f"tile latency over pan and zoom ({len(panned)} tiles, zoom levels {zooms})",
         f"p50 {record['tile_p50_ms']:.0f} ms, p95 {record['tile_p95_ms']:.0f} ms, max {record['tile_max_ms']:.0f} ms"),
        ("of those tiles: from the tile server's memory (prefetched or asked before), made when asked",
         f"{sources['cache']}, {sources['made']}"),
        (f"the same zoom steps from the tile server alone, no browser ({len(bursts)} tiles, 6 at a time)",
         f"p50 {record['server_burst_p50_ms']:.0f} ms, p95 {record['server_burst_p95_ms']:.0f} ms, "
         f"max {record['server_burst_max_ms']:.0f} ms"),
        ("tile failures (status 0: cancelled by the map, e.g. when it zoomed on)",
         f"{len(failed)} {sorted(t['status'] for t in failed)}"),
        ("load average (1 min) before, after the map", f"{tiles['load_before']}, {tiles['load_after']}"),
        (f"first 3D frame, DEM {args.dem_size} x {args.dem_size} read at 2048 a side (cell run → frame drawn)",
         f"{record['first_3d_frame_seconds']:.1f} s"),
        ("load average (1 min) before, after the 3D view", f"{view['load_before']}, {view['load_after']}"),
        *((f"{user}'s server memory: peak (page cache included), resident, OOM kills",
           f"{m['peak_bytes'] / gib:.2f} GiB, {int(m['resident_bytes']) / gib:.2f} GiB, {m['oom_kills']}")
          for user, m in memories.items()),
    ]
    print("\n| figure | value |\n|---|---:|\n" + "\n".join(f"| {name} | {value} |" for name, value in rows) + "\n")
    path = workspace.bench / f"viz-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    print(f"JSON: {path}\nscreenshots: {' '.join(record['screenshots'])}")


if __name__ == "__main__":
    main()
