"""PROJ: a known WGS84 -> UTM 31N transformation, via pyproj, via GDAL's osr, and inside a Jupyter kernel."""
import contextlib
import io
import os

import pytest

from vre_compat.helpers import json_line, loaded_libraries, run_in_kernel

pytestmark = [pytest.mark.base_geo, pytest.mark.proj]

LAT, LON = 43.6, 1.44  # Toulouse
# Expected EPSG:32631 coordinates, computed without PROJ: Karney (2011) transverse Mercator, 6th-order Krueger
# series on WGS84 (k0 0.9996, central meridian 3 E, false easting 500 km), pure Python; its series error is far
# below 1 mm at 1.56 degrees from the central meridian.
EASTING, NORTHING = 374090.399, 4828629.496
TOLERANCE = 0.03  # metres

# Run as is in this process and in a kernel; prints one JSON line.
PROBE = """
import json, os, sys
import pyproj
from osgeo import gdal, osr
xy = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32631", always_xy=True).transform(%(lon)r, %(lat)r)
src, dst = osr.SpatialReference(), osr.SpatialReference()
for srs, code in ((src, 4326), (dst, 32631)):
    assert srs.ImportFromEPSG(code) == 0, gdal.GetLastErrorMsg()
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
x, y, _ = osr.CoordinateTransformation(src, dst).TransformPoint(%(lon)r, %(lat)r)
print(json.dumps({
    "pyproj": list(xy), "osr": [x, y], "prefix": sys.prefix,
    "pyproj_data_dir": pyproj.datadir.get_data_dir(),
    # the directory PROJ (as GDAL uses it) takes proj.db from: the first search path that has one
    "osr_proj_db_dir": next((p for p in osr.GetPROJSearchPaths() or [] if os.path.exists(p + "/proj.db")), None),
    "gdal_data_file": gdal.FindFile("gdal", "gdalvrt.xsd"),
    "env": {k: os.environ.get(k) for k in ("PROJ_DATA", "PROJ_LIB", "GDAL_DATA")},
}))
""" % {"lon": LON, "lat": LAT}


def probe_here() -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(PROBE, {})
    return json_line(out.getvalue())


def assert_toulouse(xy, what):
    assert xy == pytest.approx((EASTING, NORTHING), abs=TOLERANCE), \
        f"{what} puts Toulouse at {xy}, expected ({EASTING}, {NORTHING}) +- {TOLERANCE} m"


def test_pyproj():
    import pyproj

    try:
        transformer = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32631", always_xy=True)
    except (pyproj.exceptions.ProjError, pyproj.exceptions.DataDirError) as err:
        pytest.fail(f"pyproj cannot build EPSG:4326 -> EPSG:32631 ({err}); PROJ_DATA={os.environ.get('PROJ_DATA')}")
    assert_toulouse(transformer.transform(LON, LAT), f"pyproj {pyproj.__version__}")


def test_osr():
    from osgeo import gdal, osr

    src, dst = osr.SpatialReference(), osr.SpatialReference()
    for srs, code in ((src, 4326), (dst, 32631)):
        if srs.ImportFromEPSG(code) != 0:
            pytest.fail(f"osr cannot load EPSG:{code}: {gdal.GetLastErrorMsg()}; "
                        f"PROJ_DATA={os.environ.get('PROJ_DATA')}")
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)  # lon, lat whatever the GDAL version
    x, y, _ = osr.CoordinateTransformation(src, dst).TransformPoint(LON, LAT)
    assert_toulouse((x, y), f"osr (GDAL {gdal.__version__})")


def test_pyproj_and_gdal_share_proj():
    """pyproj wheels bundle their own PROJ and proj.db; in the image pyproj must use GDAL's."""
    import pyproj
    from osgeo import osr

    gdal_proj = ".".join(str(f()) for f in (osr.GetPROJVersionMajor, osr.GetPROJVersionMinor,
                                            osr.GetPROJVersionMicro))
    assert pyproj.proj_version_str == gdal_proj, f"pyproj uses PROJ {pyproj.proj_version_str}, GDAL PROJ {gdal_proj}"
    libraries = loaded_libraries("libproj")
    assert len(libraries) == 1, f"several PROJ libraries loaded: {libraries}"
    try:
        data_dir = os.path.realpath(pyproj.datadir.get_data_dir())
    except pyproj.exceptions.DataDirError as err:
        pytest.fail(f"pyproj finds no PROJ data directory (PROJ_DATA={os.environ.get('PROJ_DATA')}): {err}")
    osr_paths = [os.path.realpath(p) for p in osr.GetPROJSearchPaths() or []]
    assert data_dir in osr_paths, f"pyproj reads {data_dir}, GDAL searches {osr_paths}"


def test_kernel_sees_the_same_proj(tmp_path):
    """Kernels do not run activation scripts: PROJ/GDAL data must be found there exactly as here."""
    here = probe_here()
    kernel = json_line(run_in_kernel(PROBE, tmp_path))
    assert os.path.realpath(kernel["prefix"]) == os.path.realpath(here["prefix"]), \
        f"the python3 kernel runs in {kernel['prefix']}, the tests in {here['prefix']}"
    assert_toulouse(kernel["pyproj"], "pyproj in a kernel")
    assert_toulouse(kernel["osr"], "osr in a kernel")
    for key in ("pyproj_data_dir", "osr_proj_db_dir", "gdal_data_file", "env"):
        assert kernel[key] == here[key], f"{key} differs: kernel {kernel[key]!r}, test process {here[key]!r}"
