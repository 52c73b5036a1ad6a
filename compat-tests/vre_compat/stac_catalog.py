"""A small static STAC catalog of Cloud-Optimized GeoTIFF scenes, made on the spot (no download): what the tests
search with EODAG and read pixels from."""
from __future__ import annotations

import json
from pathlib import Path

# Sentinel-2-like scenes near Toulouse, UTM 31N: 20 m pixels, red (B04) and near infrared (B08) as separate COGs.
EPSG = 32631
ORIGIN = (360000.0, 4830000.0)
DATES = ("2024-06-01", "2024-06-11", "2024-07-01")
BANDS = {"B04": ("red", 0.665), "B08": ("nir", 0.842)}


def scene_values(index: int, band: str, size: int):
    """Pixel values of one band of one scene: a gradient whose level tells band and scene apart (so a read can be
    checked against what was written)."""
    import numpy as np

    base = {"B04": 600, "B08": 3000}[band] + 100 * index
    rows, cols = np.mgrid[0:size, 0:size]
    return (base + (rows + cols) % 256).astype("uint16")


def write_cog(path: Path, array, geotransform, epsg: int = EPSG) -> Path:
    from osgeo import gdal, gdal_array, osr

    rows, cols = array.shape[-2:]
    bands = 1 if array.ndim == 2 else array.shape[0]
    mem = gdal.GetDriverByName("MEM").Create("", cols, rows, bands,
                                             gdal_array.NumericTypeCodeToGDALTypeCode(array.dtype))
    mem.SetGeoTransform(geotransform)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    mem.SetProjection(srs.ExportToWkt())
    for i, plane in enumerate(array.reshape(bands, rows, cols), start=1):
        mem.GetRasterBand(i).WriteArray(plane)
    gdal.GetDriverByName("COG").CreateCopy(str(path), mem, options=["COMPRESS=DEFLATE", "BLOCKSIZE=256"])
    return Path(path)


def footprint(geotransform, size: int, epsg: int = EPSG) -> list[tuple[float, float]]:
    """The scene's corners in longitude/latitude (a closed ring)."""
    from pyproj import Transformer

    x0, dx, _, y0, _, dy = geotransform
    corners = [(x0, y0), (x0 + dx * size, y0), (x0 + dx * size, y0 + dy * size), (x0, y0 + dy * size), (x0, y0)]
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    return [to_lonlat.transform(x, y) for x, y in corners]


def write_catalog(root: Path, size: int = 512, pixel: float = 20.0, collection: str = "LOCAL_S2") -> Path:
    """Scenes of DATES, each shifted east by half a scene, as a STAC catalog in `root`; returns catalog.json."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    links = [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
    for index, date in enumerate(DATES):
        scene = f"S2_LOCAL_{date.replace('-', '')}"
        folder = root / scene
        folder.mkdir(exist_ok=True)
        geotransform = (ORIGIN[0] + index * size * pixel / 2, pixel, 0.0, ORIGIN[1], 0.0, -pixel)
        assets = {}
        for band, (name, wavelength) in BANDS.items():
            write_cog(folder / f"{band}.tif", scene_values(index, band, size), geotransform)
            assets[band] = {"href": str((folder / f"{band}.tif").resolve()),
                            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                            "roles": ["data"], "eo:bands": [{"name": name, "center_wavelength": wavelength}]}
        ring = footprint(geotransform, size)
        lons, lats = [p[0] for p in ring], [p[1] for p in ring]
        item = {
            "type": "Feature", "stac_version": "1.0.0", "id": scene, "collection": collection,
            "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "bbox": [min(lons), min(lats), max(lons), max(lats)],
            "properties": {"datetime": f"{date}T10:30:00Z", "start_datetime": f"{date}T10:30:00Z",
                           "end_datetime": f"{date}T10:30:05Z", "platform": "local", "proj:epsg": EPSG,
                           "proj:shape": [size, size], "proj:transform": list(geotransform[:6])},
            "assets": assets,
            "links": [{"rel": "root", "href": "../catalog.json", "type": "application/json"},
                      {"rel": "parent", "href": "../catalog.json", "type": "application/json"}],
        }
        (folder / f"{scene}.json").write_text(json.dumps(item, indent=1))
        links.append({"rel": "item", "href": f"./{scene}/{scene}.json", "type": "application/geo+json"})
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": "local", "description": "generated COG scenes",
               "links": links}
    (root / "catalog.json").write_text(json.dumps(catalog, indent=1))
    return root / "catalog.json"
