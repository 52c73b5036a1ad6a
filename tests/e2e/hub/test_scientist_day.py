"""The scientist's day, in Chromium, through a real hub (DockerSpawner, configurable-http-proxy): log in, run a
notebook that searches a local STAC catalog with EODAG, reads a band of a product, computes NDVI with OTB, shows it
on the tile map and a DEM in 3D, commit the notebook with git, and open it as a Voila dashboard with its map.
The server runs the desktop image: base-geo's 2D and the 3D stack, which base-geo does not have.

The notebook and its data are made on the spot in the user's server (no internet). Screenshots and the result file
land in .vre/artifacts/browser/day/. Opt-in (a few minutes): VRE_TEST_DAY=1 or VRE_TEST_ALL=1.
"""

from __future__ import annotations

import json
import os

import pytest
from tests.e2e.hub.hubclient import USERS, run_code, xsrf_headers
from tests.testkit import ROOT

from vre.verify.browser import runner
from vre.workspace import Workspace

pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.docker,
              pytest.mark.skipif(not (os.environ.get("VRE_TEST_DAY") or os.environ.get("VRE_TEST_ALL")),
                                 reason="the browser scenario through a hub takes minutes: VRE_TEST_DAY=1")]

USER = USERS["desktop"]
FOLDER = "day"
NOTEBOOK = f"{FOLDER}/scientist.ipynb"
COMMIT = "NDVI over the local catalog, map and 3D"
TILE_TYPE = "image/webp"  # vre_viz.tile_map asks for WebP tiles

CELLS = [
    # The data: a STAC catalog of COG scenes and a DEM, generated here (the test machine has no internet), and the
    # catalog as an EODAG provider in a configuration file (what a platform would ship).
    '''import os, pathlib, textwrap
import numpy as np
from vre_compat.stac_catalog import write_catalog, write_cog
work = pathlib.Path.home() / "day"
catalog = write_catalog(work / "catalog")
(work / "eodag.yml").write_text(textwrap.dedent(f"""\\
    local_stac:
      priority: 10
      search: {{type: StaticStacSearch, api_endpoint: {catalog}}}
      products: {{GENERIC_COLLECTION: {{_collection: '{{collection}}'}}}}
      download: {{type: HTTPDownload}}
    """))
os.environ["EODAG_CFG_FILE"] = str(work / "eodag.yml")
y, x = np.mgrid[0:512, 0:512]
dem = write_cog(work / "dem.tif", (200 + 80 * np.sin(x / 40) * np.cos(y / 55)).astype("float32"),
                (360000.0, 20.0, 0.0, 4830000.0, 0.0, -20.0))''',
    # Search by geometry and date; read two bands of the product found, an 8 km window of each.
    '''from eodag import EODataAccessGateway
dag = EODataAccessGateway()
found = dag.search(collection="LOCAL_S2", geom={"lonmin": 1.27, "latmin": 43.58, "lonmax": 1.29, "latmax": 43.60},
                   start="2024-06-01", end="2024-06-30", provider="local_stac")
product = found[0]
def band(name):
    data = product.assets[f"{name}.tif"].to_xarray()["band_data"]
    return data.rio.clip_box(minx=361000, miny=4821000, maxx=369000, maxy=4829000)
red, nir = band("B04"), band("B08")
print(product.properties["id"], red.shape)''',
    # NDVI with OTB, written as a COG with overviews.
    '''import pyotb, vre_viz
red.rio.to_raster(work / "red.tif"); nir.rio.to_raster(work / "nir.tif")
ndvi = pyotb.BandMath({"il": [str(work / "red.tif"), str(work / "nir.tif")],
                       "exp": "(im2b1 - im1b1) / (im2b1 + im1b1)"})
ndvi.write(str(work / "ndvi.tif"), pixel_type="float")
vre_viz.write_cog(work / "ndvi.tif", work / "ndvi_cog.tif")''',
    # The tile map: tiles from the kernel's tile server, through the hub's prefix.
    '''m, client = vre_viz.tile_map(work / "ndvi_cog.tif", colormap="rdylgn", vmin=0.6, vmax=0.7)
m''',
    # The DEM as terrain with the NDVI draped on it, rendered on the server.
    '''vre_viz.terrain(work / "dem.tif", drape=work / "ndvi_cog.tif", exaggeration=5, window_size=(800, 500)).show()''',
    # An empty 3D view of the same size: what the test compares the terrain with.
    '''import pyvista as pv
pv.Plotter(window_size=[800, 500]).show()''',
]


def notebook_json() -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "cells": [{"cell_type": "code", "id": f"cell{i}", "metadata": {}, "execution_count": None,
                       "outputs": [], "source": source} for i, source in enumerate(CELLS)]}


def test_scientist_day(desktop_hub):
    hub = desktop_hub
    hub.server("desktop")
    session = hub.login(USER)
    assert session.get(hub.user_url(USER, "lab"), timeout=120).status_code == 200
    # the scientist told git who they are, once; the notebook is in their home
    run_code(hub, session, USER, "import subprocess\n"
             "subprocess.run(['git', 'config', '--global', 'user.name', 'Carol'], check=True)\n"
             "subprocess.run(['git', 'config', '--global', 'user.email', 'carol@example.org'], check=True)")
    headers = xsrf_headers(session, USER)
    for path, model in ((FOLDER, {"type": "directory"}),
                        (NOTEBOOK, {"type": "notebook", "format": "json", "content": notebook_json()})):
        answer = session.put(hub.user_url(USER, f"api/contents/{path}"), json=model, headers=headers, timeout=60)
        assert answer.status_code in (200, 201), f"PUT {path}: {answer.status_code} {answer.text[:300]}"

    try:
        runner.ensure_tools()
    except runner.BrowserSetupError as err:
        pytest.fail(str(err))
    out = runner.artifacts_dir(Workspace.of(ROOT), "day")
    result = runner.run_scenario("day", runner.HubTarget(hub.url, hub.password, hub.log_tail), out, timeout=1500,
                                 user=USER, notebook=NOTEBOOK)
    (out / "day-output.txt").write_text(result.output)
    print(f"\n{result.summary()}\nscreenshots: {result.screenshots}")
    assert result.ok, f"{result.error}\n{result.summary()}"

    facts = result.facts
    assert not facts.get("labDialogs"), f"JupyterLab opened dialogs (an extension offline?): {facts['labDialogs']}"
    assert not facts["outside"], f"requests left the machine: {facts['outside'][:10]}"
    assert facts["tiles"], "no tile request went through the hub"
    prefix = f"/user/{USER}/proxy/"
    served = {t["path"] for t in facts["tiles"]
              if t["status"] == 200 and t["type"] == TILE_TYPE and t["bytes"] >= 100}
    # 304: the browser asked again for a tile it holds (an earlier 200 with the image), the server said it is unchanged
    bad = [t for t in facts["tiles"] if not t["path"].startswith(prefix)
           or t["path"] not in served or t["status"] not in (200, 304)
           or (t["status"] == 200 and (t["type"] != TILE_TYPE or t["bytes"] < 100))]
    assert not bad, f"tiles that failed or bypassed {prefix}: {bad[:5]}"
    for where in ("labTiles", "voilaTiles"):
        drawn = [t for t in facts[where] if t["visible"] and t["colours"] > 1]
        assert drawn, f"{where}: no tile with visible, varied pixels: {facts[where][:5]}"
    assert facts["voilaTileRequests"] > 0, "the dashboard's map requested no tile"
    assert all(src.startswith(prefix) for src in facts["viewSources"]), facts["viewSources"]
    assert facts["view3dDifference"] > 0.05, f"the 3D terrain looks like the empty view: {facts['view3dDifference']}"
    assert facts["commits"][0] == COMMIT, facts["commits"]
    log = run_code(hub, session, USER, "import subprocess\nprint(subprocess.run(['git', '-C', 'day', 'log', "
                   "'--format=%s', '--name-only'], capture_output=True, text=True, check=True).stdout)")
    assert COMMIT in log and "scientist.ipynb" in log, log
    print(json.dumps({k: v for k, v in facts.items() if k != "tiles"}, indent=1)[:3000])
