"""A notebook computes with GDAL and numpy: executed with nbclient, and rendered by Voila."""
import pytest

from vre_compat.helpers import execute_notebook, free_port, http, make_notebook, python_tool, serve, stdout_of

pytestmark = [pytest.mark.base_geo, pytest.mark.jupyter]

CELL = """
import numpy as np
from osgeo import gdal
ds = gdal.GetDriverByName("MEM").Create("", 10, 10, 1, gdal.GDT_Int32)
ds.GetRasterBand(1).WriteArray(np.arange(100, dtype="int32").reshape(10, 10))
print(f"vre-total={int(ds.GetRasterBand(1).ReadAsArray().sum()) * 3}")
"""
EXPECTED = "vre-total=14850"  # 3 * (0 + 1 + ... + 99); the number appears nowhere in the source


@pytest.fixture
def notebook(tmp_path):
    return make_notebook(tmp_path / "compute.ipynb", CELL)


def test_nbclient_executes(notebook):
    output = stdout_of(execute_notebook(notebook))
    assert EXPECTED in output, f"notebook printed {output!r}"


@pytest.mark.voila
def test_voila_renders(notebook):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [python_tool("voila"), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1", notebook.name]
    with serve(cmd, url, notebook.parent / "voila.log"):
        status, html = http(url, timeout=120)  # voila executes the notebook for this request
    assert status == 200, f"voila answered {status}"
    assert EXPECTED in html, f"voila page lacks {EXPECTED!r}:\n{html[-2000:]}"
