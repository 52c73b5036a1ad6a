"""Dask over raster tiles: a tiled GeoTIFF read in chunks by rioxarray, reduced on a LocalCluster."""
import json
import os

import numpy as np
import pytest

from vre_compat.helpers import listening, loopback, python_tool, run_ok, write_geotiff

pytestmark = [pytest.mark.base_geo, pytest.mark.dask]

BLOCK = 256


def test_tiled_sum_and_mean_on_local_cluster(tmp_path):
    import dask
    import rioxarray
    from dask.distributed import Client, LocalCluster

    data = (np.arange(768 * 1024).reshape(768, 1024) % 1009).astype("uint16")
    path = write_geotiff(tmp_path / "tiles.tif", data, block=BLOCK)
    # Two worker processes: the file handle is pickled to them and each reads its own windows.
    with dask.config.set({"temporary-directory": str(tmp_path)}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None) as cluster, Client(cluster) as client:
        raster = rioxarray.open_rasterio(path, chunks={"x": BLOCK, "y": BLOCK}).squeeze("band", drop=True)
        assert raster.chunks == ((BLOCK,) * 3, (BLOCK,) * 4), f"not read in tiles: {raster.chunks}"
        assert raster.rio.crs.to_epsg() == 32631
        total, mean = dask.compute(raster.astype("int64").sum(), raster.mean())
        workers = client.run(lambda: True)
    assert len(workers) == 2, f"cluster had workers {list(workers)}"
    assert int(total) == int(data.sum(dtype="int64")), "dask sum differs from numpy"
    assert float(mean) == pytest.approx(data.mean(dtype="float64"), rel=1e-12), "dask mean differs from numpy"


def test_local_cluster_listens_on_loopback_only():
    """A plain LocalCluster() (what a notebook starts) serves nothing beyond the user's server: its scheduler, workers
    and dashboard listen on loopback (the image's default for the dashboard, see images/base-geo/postBuild)."""
    from dask.distributed import LocalCluster

    before = set(listening())
    with LocalCluster(n_workers=1, threads_per_worker=1) as cluster:
        opened = sorted(set(listening()) - before)
        dashboard = cluster.scheduler.http_server.port if cluster.scheduler.http_server else None
    assert dashboard in {port for _, port in opened}, f"no dashboard among {opened}"
    assert len(opened) >= 3 and all(loopback(host) for host, _ in opened), opened


def test_dashboard_link_goes_through_the_proxy():
    """The start hook points dask's dashboard links through jupyter-server-proxy (the hub's prefix if any)."""
    import dask

    expected = f"{os.environ.get('JUPYTERHUB_SERVICE_PREFIX', '/')}proxy/{{host}}:{{port}}/status"
    assert dask.config.get("distributed.dashboard.link") == expected, \
        "DASK_DISTRIBUTED__DASHBOARD__LINK is not set by the image's start hook (run through `start`)"


def test_proxy_allowlists_the_platform_scheduler_only():
    """A scheduler named by DASK_SCHEDULER_ADDRESS (and hosts in VRE_PROXY_HOSTS) may be proxied, nothing else."""
    code = ("from jupyter_server.serverapp import ServerApp; import json; app = ServerApp(); "
            "app.load_config_file(); "
            "print(json.dumps(list(app.config.ServerProxy.host_allowlist)))")
    env = {**os.environ, "DASK_SCHEDULER_ADDRESS": "tcp://dask-scheduler:8786", "VRE_PROXY_HOSTS": "ray-head"}
    hosts = json.loads(run_ok([python_tool("python"), "-c", code], env=env).stdout.strip().splitlines()[-1])
    assert {"dask-scheduler", "ray-head", "localhost"} <= set(hosts), hosts
    assert not any("*" in host for host in hosts), f"the allowlist is open: {hosts}"
