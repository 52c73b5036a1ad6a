"""Markers, layer selection and the guards every compat test runs under."""
import ipaddress
import socket

import pytest

from vre_compat.helpers import jupyter_server, layers_file, read_layers

# One marker per image layer (layer name with '-' -> '_'); every test carries at least one, and runs only when
# all of its layers are installed.
LAYERS = {
    "base_geo": "base-geo layer: GDAL, PROJ, OTB, JupyterLab, EODAG, Dask, Voila",
    "deep_learning": "deep-learning layer: PyTorch, TensorFlow, TensorBoard, Ray",
    "desktop": "desktop layer: QGIS on an XFCE desktop (noVNC)",
    "ide": "ide layer: code-server behind jupyter-vscode-proxy",
}
# Capability markers, for `vre-compat -m otb` and the like.
CAPABILITIES = {
    "gdal": "GDAL drivers, data and tools",
    "proj": "PROJ transformations and data directory",
    "otb": "Orfeo ToolBox: otbcli, otbApplication, pyotb",
    "jupyter": "JupyterLab, kernels, server and lab extensions",
    "eodag": "EODAG and its lab extension, a local STAC catalog, eodag-cube",
    "history": "git, jupyterlab-git and nbdime",
    "tiles": "large rasters as map tiles: COG writing, localtileserver through jupyter-server-proxy, ipyleaflet",
    "viz3d": "3D: pyvista/VTK offscreen (EGL), terrain with a drape, LAS/LAZ point clouds, trame views",
    "dask": "Dask, distributed and dask-labextension",
    "voila": "Voila dashboards",
    "user": "hub contract: user, HOME, start, /opt/vre",
    "lean": "what images leave out: documentation, packages' test suites, dependencies omitted by apt.txt (`!name`)",
    "qgis": "QGIS: application, Python bindings, qgis_process, Processing providers",
    "vnc": "the VNC desktop: TigerVNC on a unix socket, noVNC through Jupyter, XFCE session, launchers",
    "vscode": "code-server (VS Code in the browser) behind jupyter-vscode-proxy",
    "torch": "PyTorch: the variant's build, training",
    "tensorflow": "TensorFlow: the variant's build, its Jupyter kernel",
    "coexistence": "GDAL, OTB, PyTorch, TensorFlow (and QGIS) in one process: import orders, round trip, one copy "
                   "of each native library, one GDAL/PROJ installation, also in Jupyter kernels",
    "gpu": "the gpu variant's CUDA libraries; device checks skip without a GPU (`vre test --gpu` on a GPU host)",
    "tensorboard": "TensorBoard through jupyter-server-proxy",
    "ray": "Ray: its dashboard through jupyter-server-proxy, Dask graphs on Ray",
}
LAYERS_KEY = pytest.StashKey[set]()


def pytest_addoption(parser):
    parser.addoption("--vre-layers", metavar="LAYER,...",
                     help="test these layers instead of those listed in $VRE_LAYERS_FILE (default /opt/vre/layers.txt)")


def pytest_configure(config):
    for name, doc in {**LAYERS, **CAPABILITIES}.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def installed_layers(config) -> tuple[list[str], str]:
    """Layer names and where they came from."""
    option = config.getoption("--vre-layers")
    if option:
        return [name.strip() for name in option.split(",") if name.strip()], "--vre-layers"
    path = layers_file()
    try:
        return read_layers(path), str(path)
    except OSError as err:
        raise pytest.UsageError(f"cannot read the image's layer list: {err}. "
                                f"Set VRE_LAYERS_FILE or pass --vre-layers=base-geo,...") from None


def pytest_report_header(config):
    layers, source = installed_layers(config)
    untested = [name for name in layers if name.replace("-", "_") not in LAYERS]
    extra = f"; no tests for: {', '.join(untested)}" if untested else ""
    return f"vre layers: {', '.join(layers) or '(none)'} (from {source}){extra}"


def pytest_collection_modifyitems(config, items):
    present = {name.replace("-", "_") for name in installed_layers(config)[0]}
    keep, drop = [], []
    for item in items:
        needs = {mark.name for mark in item.iter_markers() if mark.name in LAYERS}
        if not needs:
            raise pytest.UsageError(f"{item.nodeid} has no layer marker (one of {', '.join(LAYERS)})")
        (keep if needs <= present else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def lab(tmp_path_factory, private_runtime_dirs):
    """One JupyterLab for the whole run, as the image runs it: each layer's tests use it (the desktop's start a VNC
    desktop through it, as a browser would)."""
    with jupyter_server(tmp_path_factory.mktemp("lab")) as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def private_runtime_dirs(tmp_path_factory):
    """Kernels and servers keep connection files and IPython state under tmp, not in a (possibly shared) HOME."""
    base = tmp_path_factory.mktemp("runtime")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_RUNTIME_DIR", str(base / "jupyter"))
        mp.setenv("IPYTHONDIR", str(base / "ipython"))
        yield


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Nothing outside the machine is reachable from an image under test: fail fast instead of hanging."""
    real_connect = socket.socket.connect

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise OSError(f"compat tests must not use the network (connect to {address})")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)

