"""QGIS 3.40 LTR: Python bindings next to the image's stack, qgis_process, the GUI on the desktop, OTB in Processing."""
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from vre_compat.helpers import clip, http, json_line, read_raster, run, run_ok, which, write_geotiff
from vre_compat.tests.desktop import xsession

pytestmark = [pytest.mark.desktop, pytest.mark.qgis]

QGIS_SERIES = "3.40."


@pytest.fixture(scope="module")
def geotiff(tmp_path_factory):
    """A 64 x 48 Float32 GeoTIFF in UTM 31N with known statistics."""
    path = tmp_path_factory.mktemp("raster") / "ramp.tif"
    array = np.arange(64 * 48, dtype="float32").reshape(48, 64)
    return write_geotiff(path, array), array


QGIS_DEFAULTS = "/usr/local/share/vre-desktop/qgis-defaults"  # what the start hook runs for the user's profile


def headless_env(tmp_path) -> dict:
    """No display, and a QGIS profile under tmp_path (XDG_DATA_HOME), not the user's."""
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "data")}


def test_qgis_python_in_the_environment(tmp_path, geotiff):
    """The kernel's Python imports QGIS next to GDAL and rasterio, and all of them load the one libgdal."""
    path, array = geotiff
    code = textwrap.dedent(f"""
        import json, sys
        import rasterio
        from osgeo import gdal
        from qgis.core import Qgis, QgsApplication, QgsRasterLayer
        from vre_compat.helpers import loaded_libraries
        app = QgsApplication([], False)
        app.initQgis()
        layer = QgsRasterLayer({str(path)!r}, "ramp", "gdal")
        result = dict(version=Qgis.version(), valid=layer.isValid(), crs=layer.crs().authid(),
                      size=[layer.width(), layer.height()], extent=layer.extent().toString(0),
                      gdal=sorted(loaded_libraries("libgdal")), rasterio=rasterio.__gdal_version__,
                      osgeo=gdal.__version__)
        del layer  # layers go before exitQgis(), or their destructors run on a freed provider registry
        app.exitQgis()
        print(json.dumps(result))
    """)
    proc = run_ok([sys.executable, "-c", code], env=headless_env(tmp_path), timeout=180)
    result = json_line(proc.stdout)
    assert result["version"].startswith(QGIS_SERIES), f"QGIS {result['version']}, expected {QGIS_SERIES}x LTR"
    assert result["valid"], "QGIS cannot open the GeoTIFF"
    assert result["crs"] == "EPSG:32631" and result["size"] == [64, 48], result
    assert result["extent"] == "360000,4829520 : 360640,4830000", result["extent"]
    assert len(result["gdal"]) == 1, f"several GDAL libraries loaded together with QGIS: {result['gdal']}"


def qgis_process(args, env, timeout=300):
    proc = run([which("qgis_process"), "--json", *args], env=env, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"qgis_process {' '.join(args)} exited {proc.returncode}\n"
                    f"stdout:\n{clip(proc.stdout)}\nstderr:\n{clip(proc.stderr)}")
    return json.loads(proc.stdout[proc.stdout.index("{"):])


@pytest.mark.vnc
def test_qgis_process_on_the_desktop_display(desktop, geotiff, tmp_path):
    """qgis_process on the desktop session's X display opens the GeoTIFF and computes its statistics."""
    path, array = geotiff
    env = {**os.environ, "DISPLAY": desktop.display, "XDG_RUNTIME_DIR": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("QT_QPA_PLATFORM", None)
    out = qgis_process(["run", "native:rasterlayerstatistics", "--", f"INPUT={path}", "BAND=1"], env)
    results = out["results"]
    assert results["MIN"] == pytest.approx(array.min()) and results["MAX"] == pytest.approx(array.max())
    assert results["MEAN"] == pytest.approx(float(array.mean()), rel=1e-6), results


@pytest.mark.vnc
def test_qgis_gui_opens_geotiff_on_the_desktop(desktop, geotiff, tmp_path):
    """The QGIS application on the desktop display opens the GeoTIFF given on its command line, in a window."""
    path, _ = geotiff
    report = tmp_path / "report.json"
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent(f"""
        import json
        from qgis.core import QgsProject
        from qgis.PyQt.QtCore import QTimer
        from qgis.utils import iface

        def report():
            layers = [dict(name=l.name(), valid=l.isValid(), source=l.source(), crs=l.crs().authid())
                      for l in QgsProject.instance().mapLayers().values()]
            window = iface.mainWindow()
            with open({str(report)!r}, "w") as out:
                json.dump(dict(layers=layers, title=window.windowTitle(), visible=window.isVisible(),
                               window=int(window.winId())), out)

        QTimer.singleShot(3000, report)
    """))
    env = {**os.environ, "DISPLAY": desktop.display, "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("QT_QPA_PLATFORM", None)
    log = tmp_path / "qgis.log"
    cmd = [which("qgis"), "--nologo", "--noversioncheck", "--profiles-path", str(tmp_path / "profiles"),
           "--code", str(probe), str(path)]
    with open(log, "w") as out:
        qgis = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not report.exists():
            if qgis.poll() is not None:
                pytest.fail(f"qgis exited {qgis.returncode} before reporting\n{clip(log.read_text())}")
            if time.monotonic() > deadline:
                pytest.fail(f"qgis did not report within 240 s\n{clip(log.read_text())}")
            time.sleep(1)
        time.sleep(0.5)
        result = json.loads(report.read_text())
        assert result["visible"], f"the QGIS main window is not visible: {result}"
        assert [(x["valid"], x["crs"], x["source"]) for x in result["layers"]] == [(True, "EPSG:32631", str(path))], \
            f"QGIS did not open the GeoTIFF: {result['layers']}"
        shown = [w for w in xsession.qgis_windows(xsession.windows(desktop.display))]
        assert shown, f"no QGIS window on {desktop.display}: {xsession.windows(desktop.display)}"
    finally:
        qgis.kill()
        qgis.wait(10)


def test_qgis_plots_in_processing(tmp_path, geotiff):
    """QGIS's plot algorithms (Plotly) run without Debian's matplotlib, which the desktop layer leaves out."""
    path, _ = geotiff
    out_path = tmp_path / "histogram.html"
    qgis_process(["run", "qgis:rasterlayerhistogram", "--", f"INPUT={path}", "BAND=1", "BINS=10",
                  f"OUTPUT={out_path}"], headless_env(tmp_path))
    assert "plotly" in out_path.read_text().lower(), "the histogram page has no Plotly chart"


@pytest.mark.otb
def test_otb_algorithms_in_processing(tmp_path, geotiff):
    """OTB's applications are QGIS Processing algorithms (provider `otb`) and run on Debian's OTB."""
    path, array = geotiff
    env = headless_env(tmp_path)
    run_ok([QGIS_DEFAULTS], env=env)  # a fresh profile gets the image's defaults, as at a first start
    listing = qgis_process(["list"], env)
    otb = listing.get("providers", {}).get("otb")
    assert otb, f"no OTB provider in QGIS Processing (providers: {sorted(listing.get('providers', {}))})"
    algorithms = set(otb.get("algorithms", {}))
    assert {"otb:BandMath", "otb:Smoothing", "otb:TrainImagesClassifier"} <= algorithms, \
        f"OTB provider has {len(algorithms)} algorithms: {sorted(algorithms)[:20]}"
    out_path = tmp_path / "double.tif"
    result = qgis_process(["run", "otb:BandMath", "--", f"il={path}", "exp=im1b1*2", f"out={out_path}"], env)
    assert out_path.exists(), f"otb:BandMath wrote nothing: {result}"
    doubled, transform, srs = read_raster(out_path)
    np.testing.assert_allclose(doubled, array * 2)
    assert srs.GetAuthorityCode(None) == "32631"


def _qgis(before: frozenset[int] | set[int] = frozenset()) -> list[dict]:
    """This user's QGIS processes (the `qgis` wrapper or qgis.bin) but those whose pid is in `before`."""
    return [p for p in xsession.processes() if p["name"] in ("qgis", "qgis.bin") and p["pid"] not in before]


def _wait_for_qgis_window(desktop, before: set[int], after: str) -> None:
    """Until QGIS's main window is on the desktop, from a QGIS started since `before` (fails after 240 s)."""
    deadline = time.monotonic() + 240
    while not ((started := _qgis(before)) and xsession.qgis_windows(xsession.windows(desktop.display))):
        if time.monotonic() > deadline:
            pytest.fail(f"no QGIS window on {desktop.display} 240 s after {after} (started: {started})")
        time.sleep(2)


def _kill_new_qgis(before: set[int]) -> None:
    for p in _qgis(before):
        try:
            os.kill(p["pid"], 9)
        except OSError:
            pass


@pytest.mark.vnc
def test_jupyterlab_qgis_launcher_starts_qgis(desktop):
    """The JupyterLab "QGIS" tile (/qgis/) sends the browser to the desktop and starts QGIS on it."""
    lab = desktop.lab
    before = {p["pid"] for p in _qgis()}
    try:
        status, _ = http(f"{lab.url}/qgis/", headers=lab.auth, timeout=60)
        # urllib follows the redirect to ../desktop/ (the noVNC page)
        assert status == 200, f"/qgis/ answered {status}"
        _wait_for_qgis_window(desktop, before, "/qgis/")
    finally:
        _kill_new_qgis(before)


@pytest.mark.vnc
def test_qgis_launcher_starts_one_qgis_for_many_requests(desktop):
    """Requests in quick succession while QGIS is starting (jupyter-server-proxy's readiness checks, then the user's;
    or a user clicking twice) start one QGIS: a CI run once saw two, when a request looked for QGIS in /proc before
    the first request's `qgis` wrapper had exec'd qgis.bin."""
    from concurrent.futures import ThreadPoolExecutor

    lab = desktop.lab
    before = {p["pid"] for p in _qgis()}
    try:
        # 4 at once, every 50 ms for 4 s: across the time the wrapper takes to become qgis.bin
        with ThreadPoolExecutor(4) as pool:
            for _ in range(80):
                for status, _ in pool.map(lambda _: http(f"{lab.url}/qgis/", headers=lab.auth, timeout=60), range(4)):
                    assert status == 200, f"/qgis/ answered {status}"
                time.sleep(0.05)
        _wait_for_qgis_window(desktop, before, "80 rounds of 4 requests to /qgis/")
        time.sleep(5)  # a second QGIS started late would show by now
        binaries = [p for p in _qgis(before) if p["name"] == "qgis.bin"]
        assert len(binaries) == 1, f"{len(binaries)} QGIS started for one desktop: {binaries}"
    finally:
        _kill_new_qgis(before)
