"""Orfeo ToolBox: BandMath doubles a georeferenced raster through otbcli, otbApplication and pyotb."""
import os
import sys

import numpy as np
import pytest

from vre_compat.helpers import NO_OTB, clip, json_line, otb_expected, read_raster, run, run_ok, which, write_geotiff

pytestmark = [pytest.mark.base_geo, pytest.mark.otb, pytest.mark.skipif(not otb_expected(), reason=NO_OTB)]

EXPRESSION = "im1b1*2"
OTB_ENV = ("OTB_APPLICATION_PATH", "GDAL_DATA", "PROJ_DATA", "PROJ_LIB", "GDAL_DRIVER_PATH", "LD_LIBRARY_PATH")


@pytest.fixture
def image(tmp_path):
    return write_geotiff(tmp_path / "in.tif", np.arange(40 * 30, dtype="float32").reshape(30, 40))


def assert_doubled(src, out):
    assert out.exists(), f"OTB wrote no {out}"
    (a, gt_a, srs_a), (b, gt_b, srs_b) = read_raster(src), read_raster(out)
    np.testing.assert_allclose(b, a * 2, err_msg="BandMath output is not the input doubled")
    assert gt_b == pytest.approx(gt_a), f"geotransform changed: {gt_b} != {gt_a}"
    assert srs_b.IsSame(srs_a), f"CRS changed: {srs_b.ExportToProj4()!r} != {srs_a.ExportToProj4()!r}"


def test_otbcli_bandmath(tmp_path, image):
    out = tmp_path / "out.tif"
    run_ok([which("otbcli_BandMath"), "-il", str(image), "-out", str(out), "-exp", EXPRESSION])
    assert_doubled(image, out)


def test_otbapplication_bandmath(tmp_path, image):
    # A missing binding is an image defect: fail, never skip.
    try:
        import otbApplication
    except ImportError as err:
        pytest.fail(f"OTB Python bindings missing: `import otbApplication` failed ({err}); sys.path={sys.path}")
    app = otbApplication.Registry.CreateApplication("BandMath")
    assert app is not None, (f"otbApplication cannot load BandMath (OTB_APPLICATION_PATH="
                             f"{os.environ.get('OTB_APPLICATION_PATH')}; found "
                             f"{otbApplication.Registry.GetAvailableApplications()})")
    out = tmp_path / "out.tif"
    app.SetParameterStringList("il", [str(image)])
    app.SetParameterString("out", str(out))
    app.SetParameterString("exp", EXPRESSION)
    app.ExecuteAndWriteOutput()
    assert_doubled(image, out)


PYOTB_SCRIPT = """
import json, os, sys
before = {k: os.environ.get(k) for k in %(keys)r}
import pyotb
pyotb.BandMath({"il": [sys.argv[1]], "exp": %(exp)r}).write(sys.argv[2])
print(json.dumps({"before": before, "after": {k: os.environ.get(k) for k in %(keys)r}}))
""" % {"keys": OTB_ENV, "exp": EXPRESSION}


def test_pyotb_bandmath(tmp_path, image):
    # In a subprocess: pyotb calls sys.exit() when it finds no OTB, and rewrites the process environment
    # (GDAL_DATA, PROJ_LIB, ...) when it has to set OTB up itself.
    out = tmp_path / "out.tif"
    proc = run([sys.executable, "-c", PYOTB_SCRIPT, str(image), str(out)])
    if proc.returncode != 0:  # pyotb logs to stdout
        pytest.fail(f"pyotb BandMath failed (exit {proc.returncode}):\n{clip(proc.stdout)}\n{clip(proc.stderr)}")
    env = json_line(proc.stdout)
    changed = {k: (env["before"][k], env["after"][k]) for k in OTB_ENV if env["before"][k] != env["after"][k]}
    assert not changed, f"`import pyotb` had to set OTB's environment up itself (before, after): {changed}"
    assert_doubled(image, out)
