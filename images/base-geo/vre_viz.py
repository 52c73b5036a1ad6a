"""Large rasters on a tiled map and terrain or point clouds in 3D, from a notebook, with nothing fetched from the
internet (installed into the image by base-geo's postBuild; see the README's "A scientist's day in the browser").

    import vre_viz
    vre_viz.write_cog("scene.tif", "scene_cog.tif")          # tiled, compressed, with overviews: fast tiles
    vre_viz.write_cog("scene.tif", "scene_map.tif", web_map=True)  # in the map's own grid: fastest tiles
    m, client = vre_viz.tile_map("scene_map.tif", indexes=[3, 2, 1])
    vre_viz.terrain("dem.tif", drape="scene_cog.tif").show()
    vre_viz.point_cloud("lidar.laz").show()

Tiles come from localtileserver (a tile server in the kernel) through jupyter-server-proxy, so they follow the
Jupyter server's authentication and the hub's prefix (set by base-geo's start hook); the kernel keeps them, and makes
those around the map's view while the map is idle (vre_tilecache). The maps have no basemap unless
the platform names one in VRE_BASEMAP_URL (a {z}/{x}/{y} template): ipyleaflet's default, OpenStreetMap, would be a
request leaving the machine. 3D views (the desktop and vre images: base-geo has no 3D stack) render offscreen on the
server (VTK with EGL, set by the desktop layer's start hook) and stream images to the page.
"""
from __future__ import annotations

import functools
import os
import threading
from collections.abc import Mapping
from pathlib import Path


def write_cog(src, dst, compress: str = "DEFLATE", resampling: str = "AVERAGE", *, web_map: bool = False) -> Path:
    """`src` (any raster GDAL reads) as a Cloud-Optimized GeoTIFF with overviews, what tile servers read fast.
    The same as: gdal_translate -of COG -co COMPRESS=DEFLATE -co OVERVIEW_RESAMPLING=AVERAGE src dst

    web_map=True writes a copy for display in the web map's own grid (Web Mercator, its blocks and overviews aligned
    on the map's tiles, at the zoom level that keeps every source pixel): a tile is then one block read, without the
    reprojection that otherwise takes half a tile's time. Keep the source for analysis: the copy is resampled.
    The same as adding: -co TILING_SCHEME=GoogleMapsCompatible -co ZOOM_LEVEL_STRATEGY=UPPER"""
    from osgeo import gdal

    options = [f"COMPRESS={compress}", f"OVERVIEW_RESAMPLING={resampling}", "NUM_THREADS=ALL_CPUS", "BIGTIFF=IF_SAFER"]
    if web_map:
        options += ["TILING_SCHEME=GoogleMapsCompatible", "ZOOM_LEVEL_STRATEGY=UPPER"]
    result = gdal.Translate(str(dst), str(src), format="COG", creationOptions=options)
    if result is None:
        raise RuntimeError(f"cannot write {dst} as a COG from {src}: {gdal.GetLastErrorMsg()}")
    result = None  # closes (and finishes) the file
    return Path(dst)


def basemap_layers() -> tuple:
    """The platform's basemap (VRE_BASEMAP_URL, VRE_BASEMAP_ATTRIBUTION) as ipyleaflet layers: none by default."""
    from ipyleaflet import TileLayer

    url = os.environ.get("VRE_BASEMAP_URL", "")
    if not url:
        return ()
    return (TileLayer(url=url, attribution=os.environ.get("VRE_BASEMAP_ATTRIBUTION", ""), name="basemap",
                      base=True),)


# The tiles this kernel's tile server makes (tune_tile_server), 512 pixels a side rather than 256: a map of 800 x 400
# pixels asks for 6 rather than 15 to 21, one round of a browser's 6 connections to a host, each tile's fixed costs
# (the request through two proxies, opening the file) paid a quarter as often. Layers of other sizes still show them
# in the right place (a browser scales the image into the layer's tile).
TILE_SIZE = 512
# A map's tiles show values already stretched to 8 bits (vmin, vmax): a display, which lossy WebP at this quality
# leaves visually the same at a tenth of the bytes; tile_map(lossless=True) serves the exact 8-bit values (PNG).
TILE_QUALITY = 90

_statistics: dict = {}
_statistics_locks: dict = {}
_statistics_lock = threading.Lock()


class _LazyStatistics(Mapping):
    """A raster's statistics, computed when a band's are first read: localtileserver asks for them for every tile of
    a non-byte raster but reads them only for bands without vmin and vmax."""

    def __init__(self, compute):
        self._compute = compute

    def __getitem__(self, band):
        return self._compute()[band]

    def __iter__(self):
        return iter(self._compute())

    def __len__(self) -> int:
        return len(self._compute())


@functools.lru_cache(maxsize=64)
def _stretch_table(dtype: str, in_range: tuple, out_range: tuple):
    """Every value of an integer dtype of up to 16 bits as rio-tiler's rescale makes it (the linear stretch in
    float64, stored back into the source dtype, truncated, then to uint8), indexed by the value's bits read unsigned."""
    import numpy as np
    from rio_tiler.utils import linear_rescale

    unsigned = f"u{np.dtype(dtype).itemsize}"
    values = np.arange(np.iinfo(unsigned).max + 1).astype(unsigned).view(dtype).astype(np.float64)
    return linear_rescale(values, in_range, out_range).astype(dtype).astype(np.uint8)


def _webp(data, mask, colormap, quality: int) -> bytes:
    """8-bit bands (1 or 3) and their 0/255 mask (or None) as a lossy WebP, as rio-tiler's render makes it (its
    colormap, its alpha), encoded by Pillow: GDAL's WebP driver holds Python's GIL while it encodes, so a kernel's
    tile server made one tile at a time; Pillow releases it, and a map's tiles are encoded on every core."""
    import io

    import numpy as np
    from PIL import Image
    from rio_tiler.colormap import apply_cmap

    if colormap:
        data, alpha = apply_cmap(data, colormap)
        mask = None if mask is None else np.bitwise_and(alpha, mask)
    bands = [*data] * (3 if len(data) == 1 else 1) + ([] if mask is None else [mask.astype(np.uint8)])
    image = Image.fromarray(np.ascontiguousarray(np.stack(bands, axis=-1)), "RGBA" if len(bands) == 4 else "RGB")
    out = io.BytesIO()
    image.save(out, format="WEBP", quality=quality, method=0)
    return out.getvalue()


def tune_tile_server() -> None:
    """Four costs of localtileserver's (1.0) tiles removed; its tile server makes a rio-tiler Reader per request,
    and this gives them a subclass (called by tile_map):
    - it computes a raster's statistics for every tile of a non-byte raster, even when vmin and vmax are given:
      percentiles over a 1024-pixel preview of the whole raster, 0.8 s of CPU for 3 bands. They are computed only
      when a tile reads them (a band without vmin or vmax), then cached per file (its size and time: a rewritten
      file is read again) and arguments, computed once when a map asks for many tiles at once;
    - its PNG tiles are compressed at zlib's level 6: 87 ms for a 256 x 256 tile of a noisy 3-band raster. Level 1
      takes 7 ms for 18 % more bytes (lossless either way);
    - it stretches a tile's values to 8 bits (vmin, vmax) with numpy's masked arrays, in float64: 9 ms for a
      512-pixel tile of 3 uint16 bands. Integer bands of up to 16 bits are stretched through a lookup table of every
      value (the same arithmetic, done once per range and cached): 1 ms, and the same bytes;
    - its WebP tiles are encoded at libwebp's default effort, by GDAL, which holds the GIL: one tile at a time.
      They are made by Pillow (see _webp: 1.7 times the tiles a second on 2 threads) at the least effort (method 0)
      and quality TILE_QUALITY: a 512-pixel tile of a noisy raster in 10 ms and 47 kB, where lossless WebP takes
      16 ms and 517 kB (11 times the bytes for the browser to fetch and decode). tile_map's layers ask for WebP
      unless told `lossless=True` (then PNG). A PNG tile with no pixel outside the raster has no alpha channel: a third
      less time to encode it (libwebp leaves out an opaque alpha by itself).
    Its tiles are also TILE_SIZE pixels a side, and its server starts without spinning (_wait_for_the_server)."""
    import numpy as np
    from localtileserver.tiler import handler
    from rio_tiler.models import ImageData
    from server_thread import server

    if getattr(handler.Reader, "vre_tuned", False):
        return
    server.ASGIServer.sock = property(_wait_for_the_server)

    class FastImage(ImageData):
        def rescale(self, in_range, out_range=((0, 255),), out_dtype="uint8"):
            array = self.array
            if array.dtype.kind not in "ui" or array.dtype.itemsize > 2 or np.dtype(out_dtype) != np.uint8:
                return super().rescale(in_range, out_range, out_dtype)
            bands = array.shape[0]
            in_range = in_range if len(in_range) == bands else (in_range[0],) * bands
            out_range = out_range if len(out_range) == bands else (out_range[0],) * bands
            mask = np.ma.getmaskarray(array)
            out = np.empty(array.shape, np.uint8)
            for band in range(bands):
                lut = _stretch_table(array.dtype.str, tuple(in_range[band]), tuple(out_range[band]))
                np.take(lut, array.data[band].view(f"u{array.dtype.itemsize}"), out=out[band])
            out[mask] = 0
            self.array = np.ma.MaskedArray(out, mask=mask)
            return self

        def render(self, add_mask: bool = True, img_format: str = "PNG", colormap=None, **kwargs):
            mask = self.mask  # computed from the array's mask at each read
            add_mask = add_mask and not mask.all()  # a tile inside the raster: no alpha to encode
            encoding = img_format.upper()
            if encoding == "PNG":
                kwargs.setdefault("zlevel", 1)
            elif encoding == "WEBP":
                if self.array.dtype == np.uint8 and self.count in (1, 3) and set(kwargs) <= {"QUALITY"}:
                    return _webp(self.array.data, mask if add_mask else None, colormap,
                                 kwargs.get("QUALITY", TILE_QUALITY))
                kwargs.setdefault("QUALITY", TILE_QUALITY)
                kwargs["METHOD"] = 0
            return super().render(add_mask, img_format, colormap, **kwargs)

    class Reader(handler.Reader):
        vre_tuned = True

        def statistics(self, *args, **kwargs):
            compute = super().statistics

            def cached() -> dict:  # the file's size and time looked up only when a tile reads the statistics
                stat = os.stat(self.input) if os.path.exists(str(self.input)) else None
                key = (str(self.input), stat and (stat.st_size, stat.st_mtime_ns), repr(args),
                       repr(sorted(kwargs.items())))
                with _statistics_lock:
                    lock = _statistics_locks.setdefault(key, threading.Lock())
                with lock:  # the first request computes them, the others wait for it
                    if key not in _statistics:
                        _statistics[key] = compute(*args, **kwargs)
                    return _statistics[key]

            return _LazyStatistics(cached)

        def tile(self, *args, **kwargs):
            kwargs.setdefault("tilesize", TILE_SIZE)
            image = super().tile(*args, **kwargs)
            image.__class__ = FastImage  # the same data and fields; only render's defaults differ
            return image

    handler.Reader = Reader


def _wait_for_the_server(self):
    """The tile server's socket, once its uvicorn thread has started (server_thread's ASGIServer.sock, version 0.3).
    Its own wait is a loop that never sleeps: it holds the interpreter lock the server's thread needs to start, and
    a kernel's first map waited 1.2 s for its tile server (a profile: 6 million calls of time.time), not 0.1 s."""
    import time

    from server_thread.server import ServerDownError

    deadline = time.monotonic() + 10
    while not self.server.started:
        if time.monotonic() > deadline:
            raise ServerDownError("Server not started")
        time.sleep(0.002)
    servers = getattr(self.server, "servers", None)
    if not servers or not servers[0].sockets:
        raise ServerDownError("Server started, but no servers present")
    return servers[0].sockets[0]


def fit_zoom(bounds, width: int = 800, height: int = 400) -> int:
    """The largest web-map zoom level at which `bounds` (south, north, west, east in degrees) fit in a map of
    width x height pixels (ipyleaflet's default height is 400 px)."""
    import math

    def mercator(lat: float) -> float:
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    south, north, west, east = bounds
    zoom_x = math.log2(width * 360 / (256 * max(east - west, 1e-9)))
    zoom_y = math.log2(height * 2 * math.pi / (256 * max(mercator(north) - mercator(south), 1e-12)))
    return max(0, min(22, math.floor(min(zoom_x, zoom_y))))


_tiles: dict = {}  # this kernel's tile cache and prefetcher (vre_tilecache), made by the first map


def tile_cache():
    """(cache, prefetcher) of this kernel's tile server (see vre_tilecache), put before localtileserver's app."""
    import vre_tilecache
    from localtileserver.manager import AppManager

    if not _tiles:
        cache = vre_tilecache.TileCache()
        _tiles.update(cache=cache, prefetcher=vre_tilecache.Prefetcher(cache))
    vre_tilecache.install(AppManager.get_or_create_app(), _tiles["cache"])
    return _tiles["cache"], _tiles["prefetcher"]


def tile_cache_info() -> dict:
    """The tiles this kernel's maps were answered from memory ("cache"), made when asked ("made") or before
    ("prefetched"), and the tiles and bytes kept now."""
    return tile_cache()[0].info()


def _prefetch_around_the_view(prefetcher, m, layer, client, bounds) -> None:
    """After every move of the map (its bounds and zoom synced from the page), the tiles around its view are the
    prefetcher's plan (vre_tilecache.view_tiles), asked of the tile server directly."""
    import vre_tilecache

    direct = f"http://127.0.0.1:{client.server_port}/api/tiles/" + layer.url.split("/api/tiles/", 1)[1]

    def plan(_change=None) -> None:
        if m.south >= m.north or m.west >= m.east:  # not shown yet
            return
        tiles = vre_tilecache.view_tiles((m.south, m.west, m.north, m.east), m.zoom, layer.zoom_offset, bounds,
                                         int(m.min_zoom or 0), int(m.max_zoom or 22))
        prefetcher.plan([direct.format(z=z, x=x, y=y, s="") for z, x, y in tiles])

    m.observe(plan, names=["south", "north", "east", "west", "zoom"])


def tile_map(source, *, zoom_offset: int = 0, lossless: bool = False, prefetch: bool = True, **style):
    """An ipyleaflet map of a raster (path or localtileserver TileClient) served as tiles, the raster filling the
    map; `style` goes to localtileserver's get_leaflet_tile_layer (indexes, colormap, vmin, vmax, nodata, ...).
    Tiles are WebP at TILE_QUALITY, or PNG with `lossless=True`; they are kept in memory, and with `prefetch` the
    tiles around the map's view are made while it is idle (vre_tilecache).
    Returns (map, client): keep the client alive as long as the map is shown."""
    from ipyleaflet import Map
    from localtileserver import TileClient, get_leaflet_tile_layer

    tune_tile_server()
    _, prefetcher = tile_cache()
    client = source if isinstance(source, TileClient) else TileClient(str(source))
    layer = get_leaflet_tile_layer(client, **style)
    if not lossless:
        webp = layer.url.replace("/{z}/{x}/{y}.png", "/{z}/{x}/{y}.webp", 1)
        if webp == layer.url:
            raise RuntimeError(f"localtileserver's tile URL {layer.url} has no '/{{z}}/{{x}}/{{y}}.png' "
                               "to ask for WebP")
        layer.url = webp
    layer.tile_size, layer.zoom_offset = TILE_SIZE, -1  # a 512-pixel tile is the four 256-pixel ones of the next zoom
    bounds = client.bounds()
    m = Map(layers=(*basemap_layers(), layer), center=client.center(), zoom=fit_zoom(bounds) + zoom_offset,
            scroll_wheel_zoom=True)
    if prefetch:
        _prefetch_around_the_view(prefetcher, m, layer, client, bounds)
    return m, client


def _read_band(path, band: int = 1, max_size: int | None = None):
    """One band as a float array (NaN for nodata), decimated on read to at most `max_size` pixels a side (GDAL
    reads overviews when the file has them), with the geotransform of what was read."""
    import numpy as np
    from osgeo import gdal

    ds = gdal.Open(str(path))
    if ds is None:
        raise RuntimeError(f"cannot open {path}: {gdal.GetLastErrorMsg()}")
    cols, rows = ds.RasterXSize, ds.RasterYSize
    step = max(1, -(-max(cols, rows) // max_size)) if max_size else 1
    out_cols, out_rows = -(-cols // step), -(-rows // step)
    rb = ds.GetRasterBand(band)
    data = rb.ReadAsArray(buf_xsize=out_cols, buf_ysize=out_rows).astype("float32")
    if rb.GetNoDataValue() is not None:
        data[data == rb.GetNoDataValue()] = np.nan
    x0, dx, _, y0, _, dy = ds.GetGeoTransform()
    return data, (x0, dx * cols / out_cols, 0.0, y0, 0.0, dy * rows / out_rows)


# The 3D stack (pyvista, VTK, trame, laspy, Mesa's EGL) is in the desktop layer (visualisation), not in base-geo.
IMAGES_WITH_3D = "desktop and vre"


def _import_3d(*names: str) -> list:
    """The 3D modules, or an error that says which images have them (base-geo has the 2D maps only)."""
    import importlib

    try:
        return [importlib.import_module(name) for name in names]
    except ImportError as err:
        raise ImportError(f"vre_viz's 3D views need {err.name}, which this image does not have: 3D is in the "
                          f"{IMAGES_WITH_3D} images (eo-vre's desktop layer), base-geo has the 2D maps only") from None


def terrain(dem, drape=None, *, exaggeration: float = 1.0, max_size: int = 2048, drape_bands=(1, 2, 3),
            plotter=None, window_size=(1024, 768), off_screen: bool = False):
    """A pyvista plotter showing a DEM as a surface, coloured by elevation or draped with an image (`drape`: a
    raster over the same area, any resolution; 1 band: grey, 3 bands: RGB). Large DEMs are decimated on read
    to `max_size` pixels a side. `.show()` in a notebook streams the server's rendering; `off_screen=True` for
    `.screenshot()` outside one."""
    import numpy as np

    (pv,) = _import_3d("pyvista")
    z, (x0, dx, _, y0, _, dy) = _read_band(dem, max_size=max_size)
    rows, cols = z.shape
    # Points in float32, filled in place (x fastest, as VTK orders a structured grid): a 4096 x 4096 DEM is 200 MB of
    # points, where float64 meshgrids took 1.9 GB before the first frame and rendering went past a 3 GB server.
    points = np.empty((rows * cols, 3), dtype="float32")
    points[:, 0] = np.tile((x0 + dx * (np.arange(cols) + 0.5)).astype("float32"), rows)
    points[:, 1] = np.repeat((y0 + dy * (np.arange(rows) + 0.5)).astype("float32"), cols)
    points[:, 2] = np.nan_to_num(z, nan=float(np.nanmin(z))).ravel()
    points[:, 2] *= exaggeration
    surface = pv.StructuredGrid()
    surface.points = points
    surface.dimensions = (cols, rows, 1)
    surface["elevation"] = z.ravel()
    del z, points
    p = plotter or pv.Plotter(window_size=list(window_size), off_screen=off_screen)
    if drape is None:
        p.add_mesh(surface, scalars="elevation", cmap="terrain", nan_opacity=0.0)
    else:
        p.add_mesh(surface, texture=_texture(drape, surface, drape_bands, max_size))
    p.view_isometric()
    return p


def _texture(image, surface, bands, max_size: int):
    """`image` as a pyvista texture mapped on `surface` by map coordinates (both rasters north-up), stretched
    between the 2nd and 98th percentiles of a sample of its pixels."""
    import numpy as np
    import pyvista as pv
    from osgeo import gdal

    count = gdal.Open(str(image)).RasterCount
    planes = [_read_band(image, b, max_size) for b in (bands if count >= 3 else (1,))]
    _, (x0, dx, _, y0, _, dy) = planes[0]
    rows, cols = planes[0][0].shape
    step = max(1, int(np.sqrt(rows * cols / 1e6)))  # about a million pixels a band tell the percentiles
    sample = np.concatenate([plane[::step, ::step].ravel() for plane, _ in planes])
    lo, hi = np.nanpercentile(sample, 2), np.nanpercentile(sample, 98)
    rgb = np.empty((rows, cols, 3), dtype="uint8")
    for i in range(3):  # one band at a time, in place: no float copy of the whole image
        plane = planes[min(i, len(planes) - 1)][0]
        plane = np.nan_to_num(plane, nan=lo, copy=len(planes) == 1)
        plane -= lo
        plane *= 255 / max(hi - lo, 1e-9)
        rgb[..., i] = np.clip(plane, 0, 255)
    del planes, sample
    pts = surface.points
    coords = np.empty((len(pts), 2), dtype="float32")
    coords[:, 0] = (pts[:, 0] - x0) / (dx * cols)
    coords[:, 1] = 1.0 - (pts[:, 1] - y0) / (dy * rows)  # texture rows go up, raster rows go down
    surface.active_texture_coordinates = coords
    return pv.Texture(np.ascontiguousarray(rgb[::-1]))


def point_cloud(path, *, max_points: int = 5_000_000, plotter=None, window_size=(1024, 768), point_size=2.0,
                off_screen: bool = False):
    """A pyvista plotter showing a LAS/LAZ point cloud coloured by its RGB when it has them, else by elevation;
    clouds larger than `max_points` are thinned evenly."""
    import numpy as np

    laspy, pv = _import_3d("laspy", "pyvista")
    las = laspy.read(str(path))
    step = max(1, -(-len(las.points) // max_points))
    xyz = np.column_stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)])[::step]
    cloud = pv.PolyData(xyz)
    p = plotter or pv.Plotter(window_size=list(window_size), off_screen=off_screen)
    names = set(las.point_format.dimension_names)
    if {"red", "green", "blue"} <= names:
        rgb = np.column_stack([las.red, las.green, las.blue])[::step].astype("float64")
        cloud["rgb"] = (rgb / max(rgb.max(), 1) * 255).astype("uint8")
        p.add_mesh(cloud, scalars="rgb", rgb=True, point_size=point_size, render_points_as_spheres=False)
    else:
        cloud["elevation"] = xyz[:, 2]
        p.add_mesh(cloud, scalars="elevation", cmap="viridis", point_size=point_size)
    p.view_isometric()
    return p
