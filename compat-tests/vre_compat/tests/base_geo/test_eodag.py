"""EODAG works offline: no connection at start (in Python and behind JupyterLab's panel), and a local STAC catalog
searched by geometry and date, one band of a product read as a window at a chosen resolution and CRS."""
import concurrent.futures
import contextlib
import json
import os
import socket
import textwrap
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from vre_compat.helpers import http, jupyter_server, network_guard
from vre_compat.stac_catalog import BANDS, EPSG, write_catalog

pytestmark = [pytest.mark.base_geo, pytest.mark.eodag]


@pytest.fixture
def dag(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # eodag writes ~/.config/eodag on first use
    from eodag import EODataAccessGateway

    return EODataAccessGateway()


@pytest.fixture
def connects(monkeypatch):
    """Every outside name lookup and connection attempted from here on (the suite's guard still refuses the
    connections): libraries that catch the failure would otherwise hide that they tried."""
    attempts = []
    guarded, lookup = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
        return guarded(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if name not in ("localhost", "127.0.0.1", "::1", ""):
            attempts.append(name)
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


def test_providers(dag):
    providers = list(dag.providers)
    assert len(providers) >= 5 and "cop_dataspace" in providers, f"eodag providers: {providers}"


def test_start_hook_keeps_eodag_offline():
    assert os.environ.get("EODAG_STRICT_COLLECTIONS") == "true", "the start hook did not set EODAG_STRICT_COLLECTIONS"
    tile_url = os.environ.get("EODAG_LABEXTENSION__MAP__TILE_URL", "unset")
    assert tile_url == os.environ.get("VRE_BASEMAP_URL", ""), \
        f"EODAG's map tiles come from {tile_url!r}, not from the platform's basemap (VRE_BASEMAP_URL)"


def test_collections_without_a_connection(tmp_path, monkeypatch, connects):
    """list_collections() with its defaults, as the lab extension calls it, fetches nothing."""
    monkeypatch.setenv("HOME", str(tmp_path))
    from eodag import EODataAccessGateway

    collections = [c.id for c in EODataAccessGateway().list_collections()]
    assert not connects, f"EODAG tried to connect to {connects}"
    assert "S2_MSI_L1C" in collections, f"{len(collections)} collections, no S2_MSI_L1C: {collections[:20]}"


def lab_panel_requests(tmp_path, strict: str) -> tuple[dict, list[str]]:
    """A JupyterLab whose Python processes log (and refuse) every outside name lookup and connection; the requests
    EODAG's panel makes when JupyterLab loads. Returns {path: (status, body)} and the logged attempts."""
    env, log = network_guard(tmp_path)
    env.update(HOME=str(tmp_path), EODAG_STRICT_COLLECTIONS=strict)
    root = tmp_path / "lab"
    root.mkdir()
    with jupyter_server(root, env=env) as lab:
        answers = {path: http(f"{lab.url}{path}", headers=lab.auth, timeout=120)
                   for path in ("/lab", "/eodag/info", "/eodag/providers", "/eodag/collections")}
    return answers, log.read_text().splitlines()


def test_lab_panel_offline(tmp_path):
    answers, attempts = lab_panel_requests(tmp_path, "true")
    assert not attempts, f"JupyterLab's processes tried to connect outside: {attempts}"
    for path, (status, body) in answers.items():
        assert status == 200, f"{path} answered {status} (the panel shows an error dialog): {body[:300]}"
    info = json.loads(answers["/eodag/info"][1])
    assert "openstreetmap" not in info["map"]["tile_url"], f"EODAG's map loads online tiles: {info['map']}"
    assert "S2_MSI_L1C" in {c["id"] for c in json.loads(answers["/eodag/collections"][1])}


def test_fetch_without_strict_collections(tmp_path, monkeypatch, connects):
    """Control: without strict collections, list_collections() fetches provider catalogs (offline, that failure made
    the panel's first request fail with an error dialog); the guard sees it."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EODAG_STRICT_COLLECTIONS", "false")
    from eodag import EODataAccessGateway

    try:
        EODataAccessGateway().list_collections()
    except Exception:  # noqa: BLE001 (offline, the fetch may fail either way: what matters is that it was tried)
        pass
    assert connects, "EODAG fetched nothing without strict collections: the offline tests above prove nothing"


def stac_provider(config: Path, catalog: str) -> Path:
    """An EODAG user configuration file (EODAG_CFG_FILE), as a platform would write one: one provider, local_stac,
    searching the static STAC catalog at `catalog` (a path or a URL)."""
    config.write_text(textwrap.dedent(f"""\
        local_stac:
          priority: 10
          search:
            type: StaticStacSearch
            api_endpoint: {catalog}
          products:
            GENERIC_COLLECTION:
              _collection: '{{collection}}'
          download:
            type: HTTPDownload
        """))
    return config


@pytest.fixture(scope="module")
def local_stac(tmp_path_factory):
    """A generated catalog of COG scenes and a provider for it."""
    root = tmp_path_factory.mktemp("stac")
    return stac_provider(root / "eodag.yml", str(write_catalog(root / "catalog")))


@pytest.fixture
def local_dag(local_stac, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EODAG_CFG_FILE", str(local_stac))
    from eodag import EODataAccessGateway

    return EODataAccessGateway()


# The first scene spans x 360-370 km, the second 365-375 km, the third 370-380 km (UTM 31N): a box over 361-363 km
# holds only the first one.
WEST = {"lonmin": 1.27, "latmin": 43.58, "lonmax": 1.29, "latmax": 43.60}
ALL = {"lonmin": 1.2, "latmin": 43.5, "lonmax": 1.6, "latmax": 43.7}


@pytest.mark.parametrize("geom, start, end, expected", [
    (ALL, "2024-06-01", "2024-06-30", {"S2_LOCAL_20240601", "S2_LOCAL_20240611"}),
    (ALL, "2024-06-01", "2024-07-31", {"S2_LOCAL_20240601", "S2_LOCAL_20240611", "S2_LOCAL_20240701"}),
    (WEST, "2024-06-01", "2024-07-31", {"S2_LOCAL_20240601"}),
])
def test_search_by_geometry_and_date(local_dag, connects, geom, start, end, expected):
    results = local_dag.search(collection="LOCAL_S2", geom=geom, start=start, end=end, provider="local_stac")
    assert {p.properties["id"] for p in results} == expected
    assert not connects, f"searching a local catalog connected to {connects}"


def test_read_one_band_window(local_dag, connects):
    """One band of one product, a 2 km window, read lazily through eodag-cube, at 40 m and in EPSG:4326."""
    import numpy as np
    from rasterio.enums import Resampling

    from vre_compat.stac_catalog import ORIGIN, scene_values

    product = local_dag.search(collection="LOCAL_S2", geom=WEST, start="2024-06-01", end="2024-06-30",
                               provider="local_stac")[0]
    assert set(product.assets) == {f"{band}.tif" for band in BANDS}, f"assets: {list(product.assets)}"
    band = product.assets["B04.tif"].to_xarray()["band_data"]
    assert not band.variable._in_memory, "eodag-cube read the whole band to open it"
    window = band.rio.clip_box(minx=362000, miny=4826000, maxx=364000, maxy=4828000)
    assert window.shape == (1, 100, 100), f"a 2 km window of 20 m pixels is 100 x 100, not {window.shape}"
    coarse = window.rio.reproject(window.rio.crs, resolution=40, resampling=Resampling.average)
    # what the catalog wrote there (rows from the top edge, columns from the west edge), 2 x 2 averaged
    row, col = int((ORIGIN[1] - 4828000) / 20), int((362000 - ORIGIN[0]) / 20)
    written = scene_values(0, "B04", 512)[row:row + 100, col:col + 100].astype("float64")
    expected = written.reshape(50, 2, 50, 2).mean(axis=(1, 3))
    assert coarse.shape == (1, 50, 50), coarse.shape
    assert np.allclose(coarse.values[0], expected), "40 m pixels differ from the written 20 m ones averaged"
    lonlat = window.rio.reproject("EPSG:4326", resolution=0.0005)
    assert lonlat.rio.crs.to_epsg() == 4326 and window.rio.crs.to_epsg() == EPSG
    values = lonlat.values[np.isfinite(lonlat.values)]
    assert values.size and written.min() <= values.min() and values.max() <= written.max()
    assert not connects, f"reading local pixels connected to {connects}"


@contextlib.contextmanager
def held_catalog(folder: Path):
    """`folder` served on loopback; once `hold` is set, a request sets `asked` and waits for `release`."""
    hold, asked, release = threading.Event(), threading.Event(), threading.Event()

    class Files(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self):
            if hold.is_set():
                asked.set()
                release.wait(120)
            super().do_GET()

        def log_message(self, *args):  # the test's output stays readable
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}", hold=hold, asked=asked, release=release)
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_lab_panel_requests_take_turns(tmp_path):
    """The panel's requests share one gateway, which is not thread-safe (a search rewrites provider configs that
    another request iterates over): while a search runs, held here on its catalog's download, the panel's other
    requests wait for it, and then answer."""
    catalog = write_catalog(tmp_path / "catalog")
    with held_catalog(catalog.parent) as served:
        config = stac_provider(tmp_path / "eodag.yml", f"{served.url}/{catalog.name}")
        root = tmp_path / "lab"
        root.mkdir()
        env = {**os.environ, "HOME": str(tmp_path), "EODAG_CFG_FILE": str(config)}
        with jupyter_server(root, env=env) as lab, concurrent.futures.ThreadPoolExecutor(2) as pool:
            status, body = http(f"{lab.url}/eodag/providers", headers=lab.auth, timeout=120)  # opens the gateway
            assert status == 200, f"/eodag/providers answered {status}: {body[:300]}"
            served.hold.set()
            search = {"provider": "local_stac", "dtstart": "2024-06-01", "dtend": "2024-06-30", "geom": {
                "type": "Polygon", "coordinates": [[(1.2, 43.5), (1.6, 43.5), (1.6, 43.7), (1.2, 43.7), (1.2, 43.5)]]}}
            searching = pool.submit(http, f"{lab.url}/eodag/LOCAL_S2", "POST", lab.auth, 120, json.dumps(search))
            assert served.asked.wait(60), f"the search never asked for its catalog: {searching.result()}"
            listing = pool.submit(http, f"{lab.url}/eodag/providers", headers=lab.auth, timeout=120)
            answered_meanwhile = concurrent.futures.wait([listing], timeout=3).done
            served.release.set()
            assert not answered_meanwhile, \
                "/eodag/providers was answered while a search ran on the same gateway in another thread"
            for name, request in (("search", searching), ("providers", listing)):
                status, body = request.result()
                assert status == 200, f"the {name} request answered {status}: {body[:500]}"
            found = {f["id"] for f in json.loads(searching.result()[1])["features"]}
            assert found == {"S2_LOCAL_20240601", "S2_LOCAL_20240611"}, f"the held search found {found}"
