"""3D, in the desktop layer (pyvista, VTK, trame, laspy, Mesa's EGL), without an X server: VTK renders offscreen with
EGL, a DEM as terrain with an image draped on it, a LAZ point cloud, and the notebook's trame view reached through the
Jupyter server (jupyter-server-proxy)."""
import json
import os
import re

import pytest

from vre_compat.helpers import http_raw, network_guard
from vre_compat.stac_catalog import write_cog

pytestmark = [pytest.mark.desktop, pytest.mark.viz3d]

GEOTRANSFORM = (360000.0, 20.0, 0.0, 4830000.0, 0.0, -20.0)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 512 x 512 DEM (hills) and a 3-band image of the same area."""
    import numpy as np

    folder = tmp_path_factory.mktemp("viz3d")
    y, x = np.mgrid[0:512, 0:512]
    dem = (200 + 80 * np.sin(x / 40.0) * np.cos(y / 55.0)).astype("float32")
    image = np.stack([x % 256, y % 256, (x + y) % 256]).astype("uint8")
    return write_cog(folder / "dem.tif", dem, GEOTRANSFORM), write_cog(folder / "image.tif", image, GEOTRANSFORM)


def differing_fraction(a, b) -> float:
    import numpy as np

    return float((np.abs(a.astype("int16") - b.astype("int16")).sum(axis=-1) > 30).mean())


@pytest.fixture(scope="module")
def empty_frame():
    import pyvista as pv

    p = pv.Plotter(off_screen=True, window_size=[400, 300])
    frame = p.screenshot(return_img=True)
    p.close()
    return frame


def test_offscreen_with_egl():
    import pyvista as pv

    assert os.environ.get("VTK_DEFAULT_OPENGL_WINDOW") == "vtkEGLRenderWindow", "the desktop layer's start hook sets it"
    p = pv.Plotter(off_screen=True, window_size=[64, 64])
    p.screenshot(return_img=True)
    assert type(p.ren_win).__name__ == "vtkEGLRenderWindow", type(p.ren_win).__name__
    assert "DISPLAY" not in os.environ or not os.environ["DISPLAY"], "rendering must not need an X display"
    p.close()


def test_terrain_with_drape(scene, empty_frame):
    import vre_viz

    dem, image = scene
    p = vre_viz.terrain(dem, drape=image, exaggeration=5, off_screen=True, window_size=(400, 300))
    frame = p.screenshot(return_img=True)
    p.close()
    assert frame.shape == empty_frame.shape
    assert differing_fraction(frame, empty_frame) > 0.2, "the terrain frame looks like an empty scene"
    assert frame.reshape(-1, 3).std(axis=0).min() > 20, "the drape's three bands do not show (one flat channel)"


def test_point_cloud_laz(tmp_path, empty_frame):
    import laspy
    import numpy as np

    import vre_viz

    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales, header.offsets = [0.01, 0.01, 0.01], [360000.0, 4820000.0, 0.0]
    las = laspy.LasData(header)
    rng = np.random.default_rng(0)
    n = 50_000
    las.x = 360000 + rng.random(n) * 1000
    las.y = 4820000 + rng.random(n) * 1000
    las.z = 100 + 20 * np.sin(np.asarray(las.x) / 50)
    las.write(tmp_path / "cloud.laz")
    back = laspy.read(tmp_path / "cloud.laz")
    assert len(back.points) == n and np.allclose(back.z, las.z, atol=0.01), "LAZ round trip"
    p = vre_viz.point_cloud(tmp_path / "cloud.laz", off_screen=True, window_size=(400, 300))
    frame = p.screenshot(return_img=True)
    p.close()
    assert differing_fraction(frame, empty_frame) > 0.1, "the point cloud frame looks like an empty scene"


def test_trame_view_through_the_server(lab, scene, tmp_path):
    """The notebook's 3D view (pyvista's server backend: trame streams the server's frames) is an iframe under
    /proxy/<port>/, which the Jupyter server serves with its token; the kernel reaches nothing outside (trame-vtklocal
    would download VTK.wasm: the desktop layer's start hook points it at an empty folder)."""
    from jupyter_client.manager import start_new_kernel

    dem, image = scene
    env, attempts = network_guard(tmp_path)
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        outputs = []
        code = f"import vre_viz\nvre_viz.terrain({str(dem)!r}, drape={str(image)!r}).show()"
        reply = kc.execute_interactive(code, timeout=180, output_hook=outputs.append)
        assert reply["content"]["status"] == "ok", reply["content"]
        shown = json.dumps([m["content"] for m in outputs])
        match = re.search(r'<iframe src=\\"(/proxy/\d+/index\.html[^"\\]*)', shown)
        assert match, f"no trame iframe under /proxy/ in the cell's output: {shown[:1500]}"
        status, body, kind = http_raw(f"{lab.url}{match.group(1)}", headers=lab.auth, timeout=60)
        assert status == 200 and b'data-app-name="trame"' in body, f"{match.group(1)}: {status} {kind}"
        assert not attempts.read_text(), f"the kernel tried to reach outside: {attempts.read_text()}"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_matplotlib_3d_axes(tmp_path):
    """matplotlib's own 3D axes (mpl_toolkits.mplot3d) work in the notebooks' Python: Debian's matplotlib, which QGIS's
    packages pull in, shadowed the environment's mpl_toolkits until the desktop layer left it out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mpl_toolkits
    import numpy as np

    assert all(path.startswith(os.path.dirname(matplotlib.__path__[0])) for path in mpl_toolkits.__path__), \
        f"mpl_toolkits from {list(mpl_toolkits.__path__)}, not beside matplotlib {matplotlib.__version__}"
    ax = plt.figure().add_subplot(projection="3d")
    y, x = np.mgrid[0:20, 0:20]
    ax.plot_surface(x, y, np.sin(x / 3) * np.cos(y / 4))
    ax.figure.savefig(tmp_path / "surface.png")
    assert ax.name == "3d" and (tmp_path / "surface.png").stat().st_size > 1000
