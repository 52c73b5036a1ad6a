"""Run inside the extended image by `vre extend`: what the extension adds works with the base's stack."""

import json
import subprocess

import humanize
from osgeo import gdal


def test_humanize_formats_a_raster_size():
    dataset = gdal.GetDriverByName("MEM").Create("", 1024, 1024, 1, gdal.GDT_Float32)
    size = dataset.RasterXSize * dataset.RasterYSize * 4
    assert humanize.naturalsize(size, binary=True) == "4.0 MiB"


def test_jq_reads_gdalinfo_json():
    info = subprocess.run(["gdalinfo", "--formats"], capture_output=True, text=True, check=True).stdout
    assert "GTiff" in info
    out = subprocess.run(["jq", "-r", ".driverShortName"], input=json.dumps({"driverShortName": "GTiff"}),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "GTiff"
