"""Large rasters on a tiled map: a COG with overviews in one call, its tiles served by localtileserver and reached
through the Jupyter server (jupyter-server-proxy, its token), and maps with no request leaving the machine."""
import io
import os
import sys

import pytest

from vre_compat.helpers import http_raw
from vre_compat.stac_catalog import EPSG, scene_values, write_cog

pytestmark = [pytest.mark.base_geo, pytest.mark.tiles]


@pytest.fixture(scope="module")
def cog(tmp_path_factory):
    """A 2048 x 2048 single-band GeoTIFF without overviews, made a COG by vre_viz.write_cog."""
    from osgeo import gdal

    import vre_viz

    folder = tmp_path_factory.mktemp("tiles")
    plain = folder / "plain.tif"
    src = gdal.Translate(str(plain), str(write_cog(folder / "src.tif", scene_values(0, "B04", 2048),
                                                   (360000.0, 10.0, 0.0, 4830000.0, 0.0, -10.0))),
                         format="GTiff", creationOptions=["TILED=NO"])
    assert src.GetRasterBand(1).GetOverviewCount() == 0
    src = None
    return vre_viz.write_cog(plain, folder / "cog.tif")


def test_write_cog_has_overviews(cog):
    from osgeo import gdal

    ds = gdal.Open(str(cog))
    assert ds.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG", gdal.Info(ds)
    assert ds.GetRasterBand(1).GetOverviewCount() == 2, "a 2048-pixel COG has overviews of 1024 and 512 pixels"
    assert ds.GetSpatialRef().GetAuthorityCode(None) == str(EPSG)


def test_write_cog_for_the_web_map(cog, tmp_path):
    """web_map=True: the map's own grid (Web Mercator, 256-pixel blocks on its tiles), no coarser than the source."""
    from osgeo import gdal

    import vre_viz

    ds = gdal.Open(str(vre_viz.write_cog(cog, tmp_path / "map.tif", web_map=True)))
    scheme = ds.GetMetadata("TILING_SCHEME")
    assert scheme.get("NAME") == "GoogleMapsCompatible", f"tiling scheme {scheme}"
    assert ds.GetSpatialRef().GetAuthorityCode(None) == "3857"
    assert ds.GetRasterBand(1).GetBlockSize() == [256, 256]
    x0, dx, _, y0, _, dy = ds.GetGeoTransform()
    assert x0 / (dx * 256) == pytest.approx(round(x0 / (dx * 256))), "blocks not on the map's tiles"
    # the source's 10 m pixels are 13.8 m of Web Mercator at 43.6° N: zoom 14 (9.55 m), not 13 (19.1 m)
    assert scheme["ZOOM_LEVEL"] == "14" and dx < 13.8, f"zoom {scheme['ZOOM_LEVEL']}, {dx} m: coarser than the source"


def test_tile_prefix_goes_through_the_server():
    prefix = os.environ.get("LOCALTILESERVER_CLIENT_PREFIX", "")
    expected = f"{os.environ.get('JUPYTERHUB_SERVICE_PREFIX', '/')}proxy/{{port}}"
    assert prefix == expected, f"LOCALTILESERVER_CLIENT_PREFIX={prefix!r}, not {expected!r} (base-geo's start hook)"


def test_platform_tile_prefix_wins():
    """A deployment's own LOCALTILESERVER_CLIENT_PREFIX goes through base-geo's start hook as it is."""
    import glob
    import subprocess

    (hook,) = glob.glob("/etc/vre/start.d/*-base-geo.sh")
    env = {"PATH": os.environ["PATH"], "NB_PYTHON_PREFIX": sys.prefix, "LOCALTILESERVER_CLIENT_PREFIX": "/tiles/{port}"}
    out = subprocess.run(["sh", "-c", f'. "{hook}"; printf %s "$LOCALTILESERVER_CLIENT_PREFIX"'], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out == "/tiles/{port}", f"the start hook turned the platform's prefix into {out!r}"


def direct(layer_url: str, client) -> str:
    """A layer's tile URL (through the Jupyter server's /proxy/<port>/) as the tile server's own, in this process."""
    return f"http://127.0.0.1:{client.server_port}" + layer_url.split(f"/proxy/{client.server_port}", 1)[1]


def tile_png(lab, url: str, auth: bool = True):
    status, body, kind = http_raw(f"{lab.url}{url}", headers=lab.auth if auth else {}, timeout=60)
    return status, body, kind


def test_tiles_through_jupyter_server_proxy(lab, cog):
    """A tile under the raster's centre, at three zoom levels, through the lab's /proxy/<port>/ with its token."""
    import morecantile
    import numpy as np
    from PIL import Image

    import vre_viz

    m, client = vre_viz.tile_map(cog, colormap="viridis", vmin=600, vmax=900)
    (layer,) = m.layers  # no basemap: nothing but the raster
    assert layer.url.startswith(f"/proxy/{client.server_port}/"), f"tile URL {layer.url} bypasses the proxy"
    assert (layer.tile_size, layer.zoom_offset) == (512, -1), "512-pixel tiles, each the 4 of the next zoom level"
    lon, lat = client.center()[1], client.center()[0]
    for zoom in (client.default_zoom, client.default_zoom + 1, client.default_zoom + 3):
        tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, zoom)
        url = layer.url.format(z=tile.z, x=tile.x, y=tile.y, s="")
        status, body, kind = tile_png(lab, url)
        assert status == 200 and kind == "image/webp", f"{url}: {status} {kind} {body[:200]!r}"
        rgba = np.asarray(Image.open(io.BytesIO(body)).convert("RGBA"))
        assert rgba.shape == (512, 512, 4), f"tile z{zoom}: {rgba.shape}, not 512 pixels a side"
        assert rgba[..., 3].any() and rgba[..., :3].std() > 0, f"tile z{zoom} is empty or flat"
        if zoom == client.default_zoom:  # the whole raster in one tile: beyond its edges the tile is transparent
            assert not rgba[..., 3].all(), f"tile z{zoom}: no transparent pixel beyond the raster"
    # without the token the server redirects to its login page (urllib follows it): no tile
    status, body, kind = tile_png(lab, url, auth=False)
    assert not kind.startswith("image/") and b"/login?next=" in body, f"a tile without the token: {status} {kind}"


def test_no_basemap_unless_the_platform_names_one(monkeypatch, cog):
    import vre_viz

    monkeypatch.delenv("VRE_BASEMAP_URL", raising=False)
    m, _ = vre_viz.tile_map(cog)
    assert [layer.url.startswith("/proxy/") for layer in m.layers] == [True], [layer.url for layer in m.layers]
    monkeypatch.setenv("VRE_BASEMAP_URL", "/tiles/osm/{z}/{x}/{y}.png")
    m, _ = vre_viz.tile_map(cog)
    assert [layer.url for layer in m.layers][0] == "/tiles/osm/{z}/{x}/{y}.png", "the platform's basemap goes first"


def test_tile_server_tuned(monkeypatch, tmp_path):
    """localtileserver computes a raster's statistics for every tile of a non-byte raster (0.8 s of CPU for a 3-band
    preview, the tile itself 50 ms): vre_viz's maps share them, many tiles at once, one computation. Its PNG tiles
    are compressed at zlib's level 1 (the zlib header of the image data says so), not 6: 7 ms a tile, not 87. The
    maps ask for lossy WebP at TILE_QUALITY, which looks like the PNG (PSNR) in far fewer bytes; a lossless map
    asks for the PNG. Tiles inside the raster carry no alpha channel (edge tiles do: see the tests above and below)."""
    from concurrent.futures import ThreadPoolExecutor

    import morecantile
    import numpy as np
    from PIL import Image
    from rio_tiler.io import Reader

    import vre_viz

    image = write_cog(tmp_path / "rgb.tif", scene_values(1, "B04", 1024)[None].repeat(3, axis=0),
                      (360000.0, 10.0, 0.0, 4830000.0, 0.0, -10.0))
    calls = []
    real = Reader.statistics
    monkeypatch.setattr(Reader, "statistics", lambda self, *a, **k: calls.append(self.input) or real(self, *a, **k))
    m, client = vre_viz.tile_map(image, indexes=[1, 2, 3])  # no vmin/vmax: the statistics' min and max
    layer = m.layers[-1]
    lon, lat = client.center()[1], client.center()[0]
    centre = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, client.default_zoom + 4)
    urls = [direct(layer.url, client).format(z=centre.z, x=centre.x + dx, y=centre.y + dy, s="")
            for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    with ThreadPoolExecutor(9) as pool:
        answers = list(pool.map(lambda url: http_raw(url, timeout=60), urls))
    assert [status for status, _, _ in answers] == [200] * 9, [(s, b[:200]) for s, b, _ in answers]
    assert [str(c) for c in calls] == [str(image)], f"statistics computed {len(calls)} times for 9 tiles of one raster"
    webp = answers[0][1]
    # lossy ("VP8 "), without an alpha channel ("VP8X" + "ALPH"): these tiles have no pixel outside the raster
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP" and webp[12:16] == b"VP8 ", f"not lossy RGB: {webp[:16]!r}"
    png_url = vre_viz.tile_map(client, indexes=[1, 2, 3], lossless=True)[0].layers[-1].url
    status, png, kind = http_raw(direct(png_url, client).format(z=centre.z, x=centre.x - 1, y=centre.y - 1, s=""),
                                 timeout=60)
    assert status == 200 and kind == "image/png", (status, kind)
    idat = png.index(b"IDAT") + 4
    assert png[idat:idat + 2] == b"\x78\x01", f"zlib header {png[idat:idat + 2]!r}: not level 1 (78 01)"
    assert png[25] == 2, f"PNG colour type {png[25]}, not 2 (RGB): an alpha channel for a tile inside the raster"
    pixels = [np.asarray(Image.open(io.BytesIO(body)).convert("RGBA")).astype(float) for body in (webp, png)]
    psnr = 10 * np.log10(255 ** 2 / ((pixels[0] - pixels[1]) ** 2).mean())
    assert psnr > 35, f"the WebP tile is {psnr:.1f} dB from the PNG's pixels: visibly different"
    assert len(webp) < len(png) / 3, f"WebP {len(webp)} bytes, PNG {len(png)}: the lossy tile saves little"


def test_tiles_around_the_view_are_made_before_they_are_asked_for(cog):
    """When the map moves (its view synced from the page), the kernel makes the tiles around the view, one zoom
    level in and one out, while the map asks for none; asked for then, they come from memory ("x-vre-tile: cache")
    and are the very bytes the tile server makes. A file written again is not answered from memory."""
    import urllib.request

    import morecantile

    import vre_viz

    m, client = vre_viz.tile_map(cog, colormap="viridis", vmin=610, vmax=890)
    layer, (cache, prefetcher) = m.layers[-1], vre_viz.tile_cache()
    south, north, west, east = client.bounds()
    # the map at zoom 15 (its 512-pixel tiles are zoom 14's: the 20 km raster is 11 of them across) shows most of
    # the tile about the raster's centre, as the page syncs a view
    centre = morecantile.tms.get("WebMercatorQuad").tile((west + east) / 2, (south + north) / 2, 14)
    view = morecantile.tms.get("WebMercatorQuad").bounds(centre)
    inset_x, inset_y = (view.right - view.left) / 10, (view.top - view.bottom) / 10
    m.set_trait("zoom", 15)
    for name, value in (("south", view.bottom + inset_y), ("north", view.top - inset_y),
                        ("west", view.left + inset_x), ("east", view.right - inset_x)):
        m.set_trait(name, value)
    assert prefetcher.wait_idle(120), "the tiles around the view were not made in 120 s"

    loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def ask(z, x, y):
        with loopback.open(direct(layer.url, client).format(z=z, x=x, y=y, s=""), timeout=60) as answer:
            return answer.headers.get("x-vre-tile"), answer.read()

    east_of_view = (14, centre.x + 1, centre.y)  # a pan
    zoomed_in = (15, 2 * centre.x, 2 * centre.y + 1)  # the view's south-west quarter, one level in
    zoomed_out = (13, centre.x // 2, centre.y // 2)
    before = vre_viz.tile_cache_info()
    answers = {tile: ask(*tile) for tile in (east_of_view, zoomed_in, zoomed_out)}
    assert {tile: source for tile, (source, _) in answers.items()} == dict.fromkeys(answers, "cache"), before
    after = vre_viz.tile_cache_info()
    assert after["made"] == before["made"] and after["cache"] == before["cache"] + 3, (before, after)
    assert ask(14, centre.x + 2, centre.y)[0] == "made", "a tile beyond the ring around the view was kept"
    cache.clear()
    assert ask(*east_of_view) == ("made", answers[east_of_view][1]), "the prefetched tile differs from the made one"
    os.utime(cog)  # written again (a new time): read again
    assert ask(*east_of_view)[0] == "made", "a tile of a file written since was answered from memory"


def test_tile_maps_behind_a_platform_proxy(cog):
    """A platform's HTTP proxy (here one that answers nothing) is for the internet: base-geo's start hook adds the
    loopback to NO_PROXY (keeping the platform's), so a map's tile server, which localtileserver asks for the
    raster's metadata through requests, answers a map made in the image's environment."""
    import subprocess
    from shutil import which

    env = {name: value for name, value in os.environ.items() if name.lower() != "no_proxy"}
    env.update(http_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", no_proxy="data.example.org")
    code = f"""
import os, urllib.request, morecantile, vre_viz
m, client = vre_viz.tile_map({str(cog)!r})
tile = morecantile.tms.get("WebMercatorQuad").tile(client.center()[1], client.center()[0], client.default_zoom)
url = "http://127.0.0.1:%d/api/tiles/" % client.server_port + m.layers[-1].url.split("/api/tiles/", 1)[1]
with urllib.request.urlopen(url.format(z=tile.z, x=tile.x, y=tile.y, s=""), timeout=60) as answer:
    print(answer.status, os.environ["no_proxy"])
"""
    out = subprocess.run([which("start"), sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    status, no_proxy = out.stdout.split()
    assert status == "200" and no_proxy.split(",")[0] == "data.example.org", out.stdout


def corner_tile(layer_url: str, client):
    """(status, body, content type) of the tile over the raster's north-west corner, one zoom level in from the
    map's: it holds pixels inside the raster and beyond it."""
    import morecantile

    west, north = client.bounds()[2], client.bounds()[1]
    corner = morecantile.tms.get("WebMercatorQuad").tile(west, north, client.default_zoom + 1)
    return http_raw(direct(layer_url, client).format(z=corner.z, x=corner.x, y=corner.y, s=""), timeout=60), corner


@pytest.mark.parametrize("dtype,vmin,vmax", [("uint16", 650, 800.5), ("int16", -700, 90), ("uint8", 10, 250)])
def test_tiles_stretch_as_rio_tiler_does(tmp_path, dtype, vmin, vmax):
    """vre_viz's tile server stretches integer bands through a lookup table: a lossless tile over the raster's
    corner (pixels inside and outside it) has exactly the pixels and transparency of rio-tiler's own stretch."""
    import numpy as np
    from PIL import Image
    from rio_tiler.io import Reader

    import vre_viz

    values = scene_values(1, "B04", 1024)[None].repeat(3, axis=0).astype("int32")
    values = {"uint16": values, "int16": values - 1400, "uint8": values % 256}[dtype].astype(dtype)
    image = write_cog(tmp_path / f"{dtype}.tif", values, (360000.0, 10.0, 0.0, 4830000.0, 0.0, -10.0))
    m, client = vre_viz.tile_map(image, indexes=[1, 2, 3], vmin=vmin, vmax=vmax, lossless=True)
    (status, png, _), corner = corner_tile(m.layers[-1].url, client)
    assert status == 200, png[:200]
    served = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    with Reader(str(image)) as reader:  # rio-tiler's own classes: localtileserver's stretch, untuned
        tile = reader.tile(corner.x, corner.y, corner.z, tilesize=vre_viz.TILE_SIZE, indexes=[1, 2, 3])
    expected = np.asarray(Image.open(io.BytesIO(
        tile.rescale(in_range=[(vmin, vmax)] * 3, out_range=[(0, 255)]).render(img_format="PNG"))).convert("RGBA"))
    assert 0 < (served[..., 3] == 0).mean() < 1, "the tile should hold pixels inside and outside the raster"
    assert np.array_equal(served, expected), f"{(served != expected).any(axis=-1).sum()} pixels differ"


@pytest.mark.parametrize("style", [{"indexes": [1, 2, 3]}, {"indexes": [1]}, {"indexes": [1], "colormap": "viridis"}],
                         ids=["rgb", "grey", "colormap"])
def test_webp_tiles_match_the_lossless_ones(tmp_path, style):
    """The WebP tiles (encoded by Pillow, not GDAL) over the raster's corner: the same transparency as the lossless
    tile (rio-tiler's own PNG), and the same colours, within lossy compression."""
    import numpy as np
    from PIL import Image

    import vre_viz

    # a smooth ramp across the whole range (scene_values' ramp wraps every 256 pixels: sharp edges of colour, which
    # lossy WebP blurs at any encoder's quality, GDAL's too)
    rows, cols = np.mgrid[0:1024, 0:1024]
    ramp = (700 + (rows + 2 * cols) * 255 / 3069).astype("uint16")
    image = write_cog(tmp_path / "scene.tif", np.stack([ramp, ramp[::-1], ramp[:, ::-1]]),
                      (360000.0, 10.0, 0.0, 4830000.0, 0.0, -10.0))
    tiles = {}
    for lossless in (False, True):
        m, client = vre_viz.tile_map(image, vmin=700, vmax=955, lossless=lossless, **style)
        (status, body, kind), _ = corner_tile(m.layers[-1].url, client)
        assert status == 200, body[:200]
        tiles[kind] = np.asarray(Image.open(io.BytesIO(body)).convert("RGBA")).astype(float)
    webp, png = tiles["image/webp"], tiles["image/png"]
    assert 0 < (png[..., 3] == 0).mean() < 1, "the tile should hold pixels inside and outside the raster"
    assert np.array_equal(webp[..., 3], png[..., 3]), "the WebP tile's transparency differs from the PNG's"
    inside = png[..., 3] > 0
    psnr = 10 * np.log10(255 ** 2 / ((webp[inside, :3] - png[inside, :3]) ** 2).mean())
    assert psnr > 35, f"the WebP tile is {psnr:.1f} dB from the PNG's pixels: other colours"


def test_no_statistics_when_vmin_and_vmax_are_given(monkeypatch, cog):
    """The first tile of a map with vmin and vmax waits for no statistics of the whole raster."""
    import morecantile
    from rio_tiler.io import Reader

    import vre_viz

    calls = []
    real = Reader.statistics
    monkeypatch.setattr(Reader, "statistics", lambda self, *a, **k: calls.append(self.input) or real(self, *a, **k))
    m, client = vre_viz.tile_map(cog, colormap="viridis", vmin=600, vmax=900)
    lon, lat = client.center()[1], client.center()[0]
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, client.default_zoom + 1)
    status, body, _ = http_raw(direct(m.layers[-1].url, client).format(z=tile.z, x=tile.x, y=tile.y, s=""), timeout=60)
    assert status == 200, body[:200]
    assert calls == [], f"statistics of {calls} computed for a tile with vmin and vmax"


def test_3d_without_the_3d_stack_names_the_images(monkeypatch, tmp_path):
    """base-geo has no 3D stack (it is in the desktop layer): vre_viz's 3D views say where 3D is."""
    import vre_viz

    monkeypatch.setitem(sys.modules, "pyvista", None)  # as in base-geo, whatever this image has
    with pytest.raises(ImportError, match=r"pyvista.*desktop and vre images"):
        vre_viz.terrain(tmp_path / "dem.tif")
    with pytest.raises(ImportError, match=r"desktop and vre images"):
        vre_viz.point_cloud(tmp_path / "cloud.laz")
