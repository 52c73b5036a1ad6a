"""GDAL: the drivers EO work needs, its data files, and one GDAL shared by every binding."""
import numpy as np
import pytest

from vre_compat.helpers import loaded_libraries, read_raster, run_ok, which, write_geotiff

pytestmark = [pytest.mark.base_geo, pytest.mark.gdal]

DRIVERS = {  # driver: (extension, creation options for a lossless copy)
    "GTiff": ("tif", []),
    "COG": ("tif", []),
    "JP2OpenJPEG": ("jp2", ["REVERSIBLE=YES", "QUALITY=100"]),
    "netCDF": ("nc", []),
}


@pytest.mark.parametrize("driver", DRIVERS)
def test_driver_in_python(driver):
    from osgeo import gdal

    assert gdal.GetDriverByName(driver) is not None, f"osgeo.gdal {gdal.__version__} has no {driver} driver"


def test_drivers_in_gdalinfo():
    out = run_ok([which("gdalinfo"), "--formats"]).stdout
    # lines look like "  GTiff -raster- (rw+vs): GeoTIFF"
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("  ")}
    assert not set(DRIVERS) - listed, f"gdalinfo --formats lacks {sorted(set(DRIVERS) - listed)}"


@pytest.mark.parametrize("driver", DRIVERS)
def test_driver_round_trip(tmp_path, driver):
    """Copy a georeferenced raster to the format and back: pixels, geotransform and CRS survive."""
    from osgeo import gdal

    extension, options = DRIVERS[driver]
    src = write_geotiff(tmp_path / "src.tif", (np.arange(64 * 48).reshape(48, 64) % 251).astype("uint8"))
    out = tmp_path / f"copy.{extension}"
    assert gdal.Translate(str(out), str(src), format=driver, creationOptions=options) is not None, \
        f"{driver}: {gdal.GetLastErrorMsg()}"
    (a, gt_a, srs_a), (b, gt_b, srs_b) = read_raster(src), read_raster(out)
    np.testing.assert_array_equal(b, a, err_msg=f"{driver} changed the pixels")
    assert gt_b == pytest.approx(gt_a), f"{driver} changed the geotransform"
    assert srs_b.IsSame(srs_a), f"{driver} changed the CRS to {srs_b.ExportToProj4()}"


def test_gdal_data_found():
    from osgeo import gdal

    assert gdal.FindFile("gdal", "gdalvrt.xsd"), \
        f"GDAL cannot find its data files (GDAL_DATA={gdal.GetConfigOption('GDAL_DATA')})"


def test_one_gdal_for_all_bindings():
    """rasterio/fiona wheels bundle their own GDAL; in the image they must load the one osgeo and the CLI use."""
    import fiona  # noqa: F401
    import rasterio  # noqa: F401
    from osgeo import gdal

    libraries = loaded_libraries("libgdal")
    assert len(libraries) == 1, f"several GDAL libraries loaded by osgeo, rasterio and fiona: {libraries}"
    cli = run_ok([which("gdalinfo"), "--version"]).stdout.split()[1].rstrip(",")  # "GDAL 3.6.2, released ..."
    assert cli == gdal.__version__, f"gdalinfo is GDAL {cli}, osgeo.gdal is {gdal.__version__}"
