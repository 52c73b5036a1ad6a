"""Dask across containers of base-geo: a scheduler and two workers on a private network, a client computing raster
tile statistics on them, and the scheduler's dashboard reached from a user's JupyterLab through jupyter-server-proxy.

Every container runs eo-vre/base-geo:debian as built by the factory. The cluster's network is `--internal` (no route
out: nothing here needs the internet); JupyterLab also joins a second bridge without masquerading, only so that its
port can be published to the host's loopback (Docker publishes no port of an internal network).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from vre import engine

pytestmark = pytest.mark.dask

TILES_SCRIPT = Path(__file__).resolve().parent / "dask" / "tiles.py"
WORKERS = ("worker-a", "worker-b")
SCHEDULER_PORT, DASHBOARD_PORT = 8786, 8787
WAIT = 180  # seconds, for each thing that comes up (the machine is shared and slow)


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    return engine.docker(*args, timeout=timeout, check=check).stdout.decode(errors="replace")


@dataclass
class Cluster:
    """The containers, volume and networks of one test run, all named with one unique prefix."""

    image: str
    prefix: str = field(default_factory=lambda: f"vre-dask-{uuid.uuid4().hex[:8]}")
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    @property
    def network(self) -> str:
        return self.prefix

    @property
    def scheduler(self) -> str:
        """The scheduler's container name, which is also its host name on the network."""
        return f"{self.prefix}-scheduler"

    @property
    def address(self) -> str:
        return f"tcp://{self.scheduler}:{SCHEDULER_PORT}"

    @property
    def data(self) -> str:
        return f"{self.prefix}-data"

    def worker(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def create_network(self, name: str, *options: str) -> None:
        self.networks.append(name)
        docker("network", "create", *options, name)

    def run(self, name: str, *args: str) -> None:
        """Start a detached container of the image on the cluster's network."""
        self.containers.append(name)
        docker("run", "-d", "--name", name, "--hostname", name, "--network", self.network, *args, timeout=300)

    def start(self) -> None:
        self.create_network(self.network, "--internal")
        # tmpfs-backed: the raster never touches the disk; owned by jovyan so the client can write it. Its content
        # lives while a container mounts it (the workers do, for the whole run).
        self.volumes.append(self.data)
        docker("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
               "--opt", "o=size=64m,uid=1000,gid=100", self.data)
        self.run(self.scheduler, self.image, "dask", "scheduler", "--port", str(SCHEDULER_PORT),
                 "--dashboard-address", f":{DASHBOARD_PORT}")
        for name in WORKERS:
            # Each worker serves its own dashboard on 8787: a host the proxy must still refuse (not allowlisted).
            self.run(self.worker(name), "-v", f"{self.data}:/data:ro", self.image, "dask", "worker", self.address,
                     "--name", name, "--nthreads", "1", "--memory-limit", "1GiB",
                     "--dashboard-address", f":{DASHBOARD_PORT}")

    def logs(self, lines: int = 40) -> str:
        out = []
        for name in self.containers:
            text = engine.docker("logs", "--tail", str(lines), name, check=False, timeout=60)
            if text.returncode != 0:  # a container run with --rm, gone
                continue
            out.append(f"--- {name} ---\n{(text.stdout + text.stderr).decode(errors='replace').strip()}")
        return "\n".join(out)

    def remove(self) -> None:
        for name in self.containers:
            engine.docker("rm", "-f", "-v", name, check=False, timeout=120)
        for name in self.volumes:
            engine.docker("volume", "rm", "-f", name, check=False, timeout=60)
        for name in self.networks:
            engine.docker("network", "rm", name, check=False, timeout=60)


@pytest.fixture(scope="module")
def cluster(base_geo, request) -> Cluster:
    cluster = Cluster(base_geo)
    request.addfinalizer(cluster.remove)  # registered first: whatever was created goes, even if start() fails
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def tiles(cluster) -> dict:
    """Run tests/e2e/dask/tiles.py in a client container: the workers' per-tile results and the numpy reference."""
    client = f"{cluster.prefix}-client"
    cluster.containers.append(client)
    started = time.monotonic()
    proc = engine.docker("run", "--rm", "-i", "--name", client, "--hostname", client, "--network", cluster.network,
                         "-v", f"{cluster.data}:/data", cluster.image, "python", "-", cluster.address,
                         "/data/scene.tif", str(len(WORKERS)), str(WAIT),
                         input=TILES_SCRIPT.read_bytes(), check=False, timeout=WAIT + 600)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        pytest.fail(f"the dask client failed (exit {proc.returncode}):\n{proc.stderr.decode(errors='replace')[-3000:]}"
                    f"\n{cluster.logs()}")
    result = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    print(f"\nclient container: {len(result['tiles'])} tiles computed in {seconds:.1f} s (container start included)")
    return result


def combine(tiles: list[dict]) -> dict:
    """The whole raster's statistics from the per-tile ones (what a reduction over the cluster's results does)."""
    return {"red_sum": sum(t["red_sum"] for t in tiles), "nir_sum": sum(t["nir_sum"] for t in tiles),
            "valid": sum(t["valid"] for t in tiles), "ndvi_sum": math.fsum(t["ndvi_sum"] for t in tiles),
            "ndvi_min": min(t["ndvi_min"] for t in tiles), "ndvi_max": max(t["ndvi_max"] for t in tiles),
            "hist": [sum(bins) for bins in zip(*(t["hist"] for t in tiles))]}


STATS = ("red_sum", "nir_sum", "valid", "ndvi_sum", "ndvi_min", "ndvi_max", "hist")


def test_tiles_match_numpy(tiles):
    """Each tile read and reduced on a worker equals the same reduction of the client's whole-raster GDAL read."""
    # tiles.py's raster: 700 x 1000 pixels in 256 px blocks (3 x 4 tiles, partial at the edges), a 40 x 60 corner
    # without signal
    assert len(tiles["tiles"]) == len(tiles["reference_tiles"]) == 12
    for tile, reference in zip(tiles["tiles"], tiles["reference_tiles"]):
        # Same pixels in the same order, same numpy operations: equal to the last bit, floats included.
        assert {k: tile[k] for k in STATS} == reference, f"tile {tile['window']} differs"
    whole, reference = combine(tiles["tiles"]), tiles["reference"]
    assert {k: whole[k] for k in STATS if k != "ndvi_sum"} == {k: reference[k] for k in STATS if k != "ndvi_sum"}
    assert whole["ndvi_sum"] == pytest.approx(reference["ndvi_sum"], rel=1e-12)
    assert sum(whole["hist"]) == whole["valid"] == 700 * 1000 - 40 * 60  # only the no-signal corner is left out
    print(f"whole raster (workers, combined): {json.dumps(whole)}")
    print(f"whole raster (numpy in the client): {json.dumps(reference)}")


def test_tiles_georeferenced(tiles):
    """The workers read the GeoTIFF's georeferencing: each window's bounds follow the client's GDAL geotransform."""
    x0, dx, _, y0, _, dy = tiles["geotransform"]
    assert (x0, dx, y0, dy) == (500000.0, 10.0, 4650000.0, -10.0)
    for tile in tiles["tiles"]:
        col, row, width, height = tile["window"]
        assert tile["crs"] == "EPSG:32631"
        assert tile["bounds"] == [x0 + col * dx, y0 + (row + height) * dy, x0 + (col + width) * dx, y0 + row * dy]


def test_work_ran_on_both_workers(tiles):
    ran_on = [t["worker"] for t in tiles["tiles"]]
    # The scheduler's who_has agrees with what each task saw as its worker.
    assert tiles["held_by"] == [[name] for name in ran_on]
    assert set(ran_on) == set(WORKERS), f"every tile ran on {set(ran_on)}"
    hosts = {t["worker"]: t["hostname"] for t in tiles["tiles"]}
    assert len(set(hosts.values())) == 2 and tiles["client_hostname"] not in hosts.values()
    print("tiles per worker: " + ", ".join(f"{name} ({hosts[name]}): {ran_on.count(name)}" for name in WORKERS))


# --- the dashboard, from the user's JupyterLab ----------------------------------------------------------------------

@dataclass
class Lab:
    url: str
    token: str
    container: str

    def get(self, path: str, **kwargs) -> requests.Response:
        with requests.Session() as session:
            session.trust_env = False  # straight to loopback, whatever proxy the host's environment names
            return session.get(urljoin(self.url, path), headers={"Authorization": f"token {self.token}"},
                               timeout=60, **kwargs)


def start_lab(cluster: Cluster, *options: str) -> Lab:
    """JupyterLab as the image runs it (`start` + `jupyter lab`), on the cluster's network and on a bridge that
    publishes its port to the host's loopback; `options` for `docker create` (a platform's environment)."""
    name, public = f"{cluster.prefix}-lab", f"{cluster.prefix}-pub"
    # A bridge with no masquerading: the host reaches the published port, the container still reaches nothing out.
    cluster.create_network(public, "-o", "com.docker.network.bridge.enable_ip_masquerade=false")
    token = secrets.token_hex(16)
    cluster.containers.append(name)
    docker("create", "--name", name, "--hostname", name, "--network", public, "-p", "127.0.0.1::8888",
           "-e", f"JUPYTER_TOKEN={token}", *options, cluster.image, "jupyter", "lab", timeout=300)
    docker("network", "connect", cluster.network, name)
    docker("start", name)
    port = docker("port", name, "8888/tcp").splitlines()[0].rsplit(":", 1)[1]
    lab = Lab(f"http://127.0.0.1:{port}", token, name)
    deadline = time.monotonic() + WAIT
    while True:
        try:
            if lab.get("/api/status").status_code == 200:
                return lab
        except requests.RequestException:
            pass
        state = docker("inspect", "-f", "{{.State.Status}}", name).strip()
        if state != "running" or time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not answer /api/status within {WAIT} s (container {state}):\n{cluster.logs()}")
        time.sleep(1)


@pytest.fixture(scope="module")
def lab(cluster) -> Lab:
    # What a platform running a shared scheduler sets: dask clients in the Lab find it, and the image's Jupyter config
    # allowlists its host for jupyter-server-proxy (images/base-geo/jupyter_server_config.py); the image's start hook
    # points dashboard links through the proxy.
    return start_lab(cluster, "-e", f"DASK_SCHEDULER_ADDRESS={cluster.address}")


class Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script" and dict(attrs).get("src"):
            self.sources.append(dict(attrs)["src"])


def test_dashboard_link_from_the_lab(cluster, lab):
    """A dask client in the Lab finds the platform's scheduler and links its dashboard through the Lab's proxy."""
    code = ("from distributed import Client\n"
            f"with Client(timeout={WAIT}) as c: print(len(c.nthreads()), c.dashboard_link)")
    # Through `start`, as the Lab's kernels and terminals get their environment (its hooks; `docker exec` runs none).
    out = docker("exec", lab.container, "start", "python", "-c", code, timeout=WAIT + 60).split()
    assert out == [str(len(WORKERS)), f"/proxy/{cluster.scheduler}:{DASHBOARD_PORT}/status"]


async def bokeh_session_reply(url: str, lab_token: str, session_token: str) -> str:
    """The first message a Bokeh server sends on a session's websocket (an ACK once it accepted the session)."""
    request = HTTPRequest(url, headers={"Authorization": f"token {lab_token}"}, request_timeout=60)
    # BokehJS opens the socket with the subprotocols ["bokeh", <session token from the page>].
    connection = await websocket_connect(request, subprotocols=["bokeh", session_token])
    try:
        return await asyncio.wait_for(connection.read_message(), 60)
    finally:
        connection.close()


def test_dashboard_through_jupyter_server_proxy(cluster, lab):
    status_path = f"/proxy/{cluster.scheduler}:{DASHBOARD_PORT}/status"
    page = lab.get(status_path)
    assert page.status_code == 200, f"{status_path}: {page.status_code} {page.text[:500]}\n{cluster.logs()}"
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<title>Dask Diagnostic UI</title>" in page.text and '<a href="status">Status</a>' in page.text, page.text
    assert "Bokeh.embed.embed_items(docs_json, render_items)" in page.text, "no Bokeh document in the page"
    # The page's scripts (BokehJS) load through the proxy too, relative to the proxied page, as a browser loads them.
    parser = Scripts()
    parser.feed(page.text)
    bokeh = [src for src in parser.sources if "/bokeh" in src]
    assert bokeh, f"the page loads no BokehJS: {parser.sources}"
    for src in bokeh:
        script = lab.get(urljoin(lab.url + status_path, src))
        assert script.status_code == 200 and "Bokeh" in script.text, f"{src}: {script.status_code}"
    # The live part: BokehJS then opens <page>/ws with the page's session token; the proxy relays the websocket.
    session_token = re.search(r'"token":"([^"]+)"', page.text)[1]
    reply = asyncio.run(bokeh_session_reply(f"ws{lab.url[4:]}{status_path}/ws", lab.token, session_token))
    assert reply and '"msgtype":"ACK"' in reply.replace(" ", ""), f"the Bokeh server refused the session: {reply}"
    # It is this cluster's scheduler: its identity lists the two workers.
    identity = lab.get(f"/proxy/{cluster.scheduler}:{DASHBOARD_PORT}/json/identity.json").json()
    assert identity["type"] == "Scheduler"
    workers = sorted(w["name"] for w in identity["workers"].values())
    assert workers == sorted(WORKERS)
    print(f"dashboard through the proxy: {status_path} -> {len(page.text)} bytes of HTML, {len(bokeh)} BokehJS "
          f"scripts loaded, session websocket acknowledged; scheduler {identity['address']}, workers {workers}")


def test_proxy_refuses_hosts_outside_the_allowlist(cluster, lab):
    """The allowlist is what lets the scheduler through: a worker serving a dashboard on the same port is refused."""
    worker = cluster.worker(WORKERS[0])
    code = f"import urllib.request; print(urllib.request.urlopen('http://{worker}:{DASHBOARD_PORT}/status').status)"
    assert docker("exec", lab.container, "python", "-c", code).strip() == "200", "the Lab cannot reach the worker"
    refused = lab.get(f"/proxy/{worker}:{DASHBOARD_PORT}/status")
    assert refused.status_code == 403 and "is not allowed" in refused.text, refused.status_code
