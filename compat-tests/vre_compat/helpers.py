"""Shared helpers of the compat tests: synthetic rasters, subprocesses, local servers, kernels.

GDAL, nbformat and nbclient are imported inside the functions, so that a broken library fails the tests that use
it, not the collection of the whole suite.
"""
import contextlib
import ipaddress
import json
import os
import platform
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

VRE_DIR = Path("/opt/vre")  # the image's own description: layers.txt, layers/<layer>/, manifest.json
DEFAULT_LAYERS_FILE = VRE_DIR / "layers.txt"

# Debian builds no Orfeo ToolBox for arm64 (bookworm, bookworm-backports, trixie: no otb-bin, no libotb-apps), so the
# arm64 images go without it (base-geo's apt.txt: `otb-bin [amd64]`); on every other platform a missing OTB fails.
NO_OTB_MACHINES = ("aarch64",)
NO_OTB = "Debian builds no Orfeo ToolBox for arm64: the arm64 images have no OTB (otbcli, otbApplication, pyotb)"


def otb_expected() -> bool:
    """Whether this image must have OTB: everywhere but on the platforms Debian builds none for."""
    return platform.machine() not in NO_OTB_MACHINES


# 10 m pixels near Toulouse, UTM zone 31N (EPSG:32631): north-up, upper-left corner at (360000, 4830000).
UTM31_GEOTRANSFORM = (360000.0, 10.0, 0.0, 4830000.0, 0.0, -10.0)


def emulated() -> bool:
    """Whether this process runs under qemu-user (an arm64 image on an amd64 host, `vre test --platform`): qemu-user
    passes the host's /proc/cpuinfo through, so an aarch64 process that reads an x86 CPU's vendor_id is emulated."""
    if platform.machine() in ("x86_64", "i686"):
        return False
    try:
        return "vendor_id" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def layers_file() -> Path:
    return Path(os.environ.get("VRE_LAYERS_FILE") or DEFAULT_LAYERS_FILE)


def read_layers(path: Path) -> list[str]:
    """Layer names of a layers.txt: one a line; blank lines and '#' comments ignored."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def tail(text: str, lines: int = 40) -> str:
    return "\n".join((text or "").splitlines()[-lines:])


def clip(text: str, head: int = 15, end: int = 25) -> str:
    """Command output for a failure message: the error is often first, the traceback last."""
    lines = (text or "").splitlines()
    return "\n".join(lines if len(lines) <= head + end else [*lines[:head], "[...]", *lines[-end:]])


def which(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` not found on PATH={os.environ.get('PATH')}")
    return path


def python_tool(name: str) -> str:
    """A console script of the notebook environment; one found elsewhere on PATH would test the wrong install."""
    path = which(name)
    expected = Path(sys.prefix, "bin")
    assert Path(path).parent == expected, f"`{name}` resolves to {path}, not to the environment's {expected}"
    return path


def run(cmd: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("stdin", subprocess.DEVNULL)  # nothing may wait for a prompt answer
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def run_ok(cmd: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run a command; fail with its output when it exits non-zero."""
    proc = run(cmd, timeout=timeout, **kwargs)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                    f"--- stdout ---\n{clip(proc.stdout)}\n--- stderr ---\n{clip(proc.stderr)}")
    return proc


def write_geotiff(path: Path, array, geotransform=UTM31_GEOTRANSFORM, epsg: int = 32631, block: int | None = None):
    """Single-band GeoTIFF written with GDAL; `block` makes it tiled (block x block)."""
    from osgeo import gdal, gdal_array, osr

    options = ["TILED=YES", f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}"] if block else []
    rows, cols = array.shape
    dtype = gdal_array.NumericTypeCodeToGDALTypeCode(array.dtype)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, 1, dtype, options=options)
    ds.SetGeoTransform(geotransform)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    ds.GetRasterBand(1).WriteArray(array)
    ds.FlushCache()
    ds = None  # closes the file
    return Path(path)


def read_raster(path: Path):
    """(first band as array, geotransform, osr.SpatialReference) of a raster read with GDAL."""
    from osgeo import gdal, osr

    ds = gdal.Open(str(path))
    assert ds is not None, f"GDAL cannot open {path}: {gdal.GetLastErrorMsg()}"
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    return ds.GetRasterBand(1).ReadAsArray(), ds.GetGeoTransform(), srs


def loaded_libraries(name: str) -> set[str]:
    """Files of shared library `name` (e.g. "libgdal") mapped in this process: two means two copies coexist."""
    pattern = re.compile(rf"^{re.escape(name)}[.-]")
    with open("/proc/self/maps") as maps:
        paths = {line.split(None, 5)[-1].strip() for line in maps if "/" in line}
    return {os.path.realpath(p) for p in paths if pattern.match(os.path.basename(p))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening() -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket of the container's network namespace (/proc/net/tcp*)."""
    out = set()
    for path, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not os.path.exists(path):
            continue
        for line in Path(path).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                host, port = fields[1].split(":")
                raw = b"".join(struct.pack("<I", int(host[i:i + 8], 16)) for i in range(0, len(host), 8))
                out.add((socket.inet_ntop(family, raw), int(port, 16)))
    return sorted(out)


def loopback(host: str) -> bool:
    """127.0.0.0/8 or ::1 (Docker's embedded DNS resolver listens on 127.0.0.11 in a container)."""
    return ipaddress.ip_address(host).is_loopback


# No proxy for loopback requests: a hub may set HTTP(S)_PROXY in the user's environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_raw(url: str, method: str = "GET", headers: dict | None = None, timeout: float = 10,
             data: str | bytes | None = None):
    """(status, body bytes, content type) of a request; HTTP errors are returned, not raised."""
    body = data.encode() if isinstance(data, str) else data
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


def http(url: str, method: str = "GET", headers: dict | None = None, timeout: float = 10,
         data: str | bytes | None = None):
    """(status, body text) of a request; HTTP errors are returned, not raised."""
    status, body, _ = http_raw(url, method, headers, timeout, data)
    return status, body.decode("utf-8", "replace")


@contextlib.contextmanager
def serve(cmd: list[str], ready_url: str, log: Path, timeout: float = 120, env: dict | None = None):
    """Run a server until `ready_url` answers 200, yield its Popen, and always stop it (and its kernels)."""
    env = {**(os.environ if env is None else env), "TMPDIR": str(log.parent)}  # its temp files stay in tmp_path
    with open(log, "w") as out:
        # Own session: stopping the group also stops kernels the server started.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                cwd=log.parent)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{cmd[0]} exited {proc.returncode} before answering {ready_url}\n{tail(log.read_text())}")
            with contextlib.suppress(OSError):
                status = http(ready_url, timeout=30)[0]  # a page may execute a notebook before answering
                if status == 200:
                    break
                if status >= 500:
                    pytest.fail(f"{cmd[0]} answered {status} to {ready_url}\n{tail(log.read_text())}")
            if time.monotonic() > deadline:
                pytest.fail(f"{cmd[0]} did not answer {ready_url} within {timeout} s\n{tail(log.read_text())}")
            time.sleep(0.5)
        yield proc
    finally:
        _stop(proc)


@contextlib.contextmanager
def jupyter_server(root: Path, app: str = "lab", env: dict | None = None):
    """A Jupyter server as the image runs it (its config, extensions, start-hook environment) on loopback, in `root`.

    Explicit ip/port/root override the image's /etc/jupyter config (0.0.0.0:8888, which a live server may hold).
    """
    import secrets
    from types import SimpleNamespace

    port, token = free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    cmd = [python_tool("jupyter"), app, "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    log = root / f"{app}.log"
    with serve(cmd, f"{url}/api/status?token={token}", log, env=env) as proc:
        yield SimpleNamespace(url=url, ws_url=f"ws://127.0.0.1:{port}", proc=proc, log=log, token=token,
                              auth={"Authorization": f"token {token}"})


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group and return once all of it is gone: its children (Ray's GCS and raylet
    beside its driver) outlive the leader by a second or more, and the next test must not start beside them."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()  # reaps the leader, whose zombie would keep the group alive
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def make_notebook(path: Path, *cells: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def execute_notebook(path: Path, timeout: float = 180):
    """Execute a notebook file in a fresh `python3` kernel (as JupyterLab would start it); return the executed nb."""
    import nbclient
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def stdout_of(nb) -> str:
    return "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream" and out.get("name") == "stdout")


def run_in_kernel(code: str, workdir: Path) -> str:
    """stdout of `code` run in a fresh Jupyter kernel."""
    return stdout_of(execute_notebook(make_notebook(workdir / "probe.ipynb", code)))


def json_line(text: str):
    """The last line of `text` parsed as JSON (start hooks or libraries may print before it)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "no output"
    return json.loads(lines[-1])


# Loaded by every Python process started with network_guard's environment (sitecustomize): outside name lookups and
# connections are logged and refused. Libraries that catch the refusal cannot hide that they tried.
GUARD = """
import os, socket
LOCAL = ("127.0.0.1", "::1", "localhost", "0.0.0.0", "")
def _log(what):
    with open(os.environ["VRE_CONNECT_LOG"], "a") as log:
        log.write(f"{os.getpid()} {what}\\n")
    raise OSError(f"no network in this test ({what})")
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo
def _guarded_connect(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOCAL:
        _log(f"connect {address}")
    return _connect(sock, address)
def _guarded_getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else str(host or "")
    if name not in LOCAL:
        _log(f"resolve {name}")
    return _getaddrinfo(host, *args, **kwargs)
socket.socket.connect, socket.getaddrinfo = _guarded_connect, _guarded_getaddrinfo
"""


def network_guard(folder: Path) -> tuple[dict, Path]:
    """(environment for a subprocess, its log of attempts): its Python processes, and theirs (servers, kernels),
    log and refuse every name lookup and connection outside the machine."""
    guard = folder / "network-guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(GUARD)
    log = folder / "network-guard.log"
    log.touch()
    env = {**os.environ, "VRE_CONNECT_LOG": str(log),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(guard), os.environ.get("PYTHONPATH")]))}
    return env, log
