"""Runs inside a client container of the image (piped to `python -`): writes a georeferenced two-band GeoTIFF to the
volume the workers share, has the dask workers compute per-tile statistics from their own windowed reads (rasterio),
computes the same with numpy from one whole-raster read (GDAL), and prints both as JSON (the host test compares them).

usage: python - SCHEDULER_ADDRESS RASTER_PATH WORKERS_EXPECTED WAIT_SECONDS
"""

import json
import socket
import sys

import numpy as np
import rasterio
from distributed import Client, get_worker
from osgeo import gdal
from rasterio.transform import from_origin
from rasterio.windows import Window

BINS = 20  # NDVI histogram over [-1, 1]
CRS = "EPSG:32631"
TRANSFORM = from_origin(500000.0, 4650000.0, 10.0, 10.0)  # UTM 31N, 10 m pixels
HEIGHT, WIDTH, BLOCK = 700, 1000, 256  # edge tiles are partial


def write_raster(path: str) -> None:
    rng = np.random.default_rng(20241124)
    red = rng.integers(0, 10000, (HEIGHT, WIDTH), dtype=np.uint16)
    nir = rng.integers(0, 10000, (HEIGHT, WIDTH), dtype=np.uint16)
    red[:40, :60] = nir[:40, :60] = 0  # no signal: NDVI undefined there, skipped by both computations
    with rasterio.open(path, "w", driver="GTiff", height=HEIGHT, width=WIDTH, count=2, dtype="uint16", crs=CRS,
                       transform=TRANSFORM, tiled=True, blockxsize=BLOCK, blockysize=BLOCK,
                       compress="deflate") as dst:
        dst.write(red, 1)
        dst.write(nir, 2)


def band_stats(red: np.ndarray, nir: np.ndarray) -> dict:
    red, nir = red.astype(np.int64), nir.astype(np.int64)
    total = red + nir
    valid = total > 0
    ndvi = (nir[valid] - red[valid]) / total[valid]
    hist, _ = np.histogram(ndvi, bins=BINS, range=(-1.0, 1.0))
    return {"red_sum": int(red.sum()), "nir_sum": int(nir.sum()), "valid": int(valid.sum()),
            "ndvi_sum": float(ndvi.sum()), "ndvi_min": float(ndvi.min()), "ndvi_max": float(ndvi.max()),
            "hist": hist.tolist()}


def tile_stats(path: str, window: tuple[int, int, int, int]) -> dict:
    """On a worker: read one window of both bands from the shared volume and reduce it."""
    with rasterio.open(path) as src:
        red, nir = src.read((1, 2), window=Window(*window))
        bounds = src.window_bounds(Window(*window))
        crs = src.crs.to_string()
    return {**band_stats(red, nir), "window": list(window), "bounds": list(bounds), "crs": crs,
            "worker": get_worker().name, "hostname": socket.gethostname()}


def main(address: str, path: str, expected: int, wait: float) -> None:
    write_raster(path)
    with Client(address, timeout=wait) as client:
        try:
            client.wait_for_workers(expected, timeout=wait)
        except TimeoutError as e:  # "Only 1/2 workers arrived after 180"
            sys.exit(f"{expected} workers expected: {e}")
        with rasterio.open(path) as src:
            windows = [(w.col_off, w.row_off, w.width, w.height) for _, w in src.block_windows(1)]
        futures = client.map(tile_stats, [path] * len(windows), windows, pure=False)
        tiles = client.gather(futures)
        names = client.run(lambda dask_worker: dask_worker.name)  # {address: name}, answered by each worker
        who_has = client.who_has(futures)  # the scheduler's record of where each result lives
        held_by = [sorted(names[address] for address in who_has[f.key]) for f in futures]
    # The reference: one whole-raster read through GDAL, reduced with numpy, per tile and over the whole raster.
    gdal.UseExceptions()
    dataset = gdal.Open(path)
    red, nir = dataset.ReadAsArray()
    reference_tiles = [band_stats(red[r:r + h, c:c + w], nir[r:r + h, c:c + w]) for c, r, w, h in windows]
    print(json.dumps({"tiles": tiles, "held_by": held_by, "reference_tiles": reference_tiles,
                      "reference": band_stats(red, nir), "geotransform": list(dataset.GetGeoTransform()),
                      "client_hostname": socket.gethostname()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
