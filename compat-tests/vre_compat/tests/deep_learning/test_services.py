"""TensorBoard and Ray's dashboard reached from Jupyter through jupyter-server-proxy; Ray runs Dask graphs."""
import json
import os
import shutil
import sys
import tempfile
import time

import pytest

from vre_compat.helpers import clip, emulated, free_port, http, jupyter_server, loopback, run, serve

pytestmark = [pytest.mark.deep_learning]
RUN_NAME = "vre-compat-run"


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """A TensorBoard log directory with one run written by PyTorch's SummaryWriter."""
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path_factory.mktemp("tensorboard")
    with SummaryWriter(str(root / RUN_NAME)) as writer:
        for step in range(5):
            writer.add_scalar("loss", 1.0 / (step + 1), step)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, logdir):
    """A Jupyter server (what JupyterLab runs on) with the image's server-proxy configuration."""
    env = {**os.environ, "TENSORBOARD_LOGDIR": str(logdir)}
    with jupyter_server(tmp_path_factory.mktemp("server"), "server", env=env) as server:
        yield server


def get_until(url, headers, accept, timeout=120, what=""):
    """GET until `accept(status, body)`; fail with the last answer."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = http(url, headers=headers, timeout=60)
        except OSError as err:
            last = (None, str(err))
        if accept(*last):
            return last
        time.sleep(1)
    pytest.fail(f"{what or url}: last answer {last[0]}: {clip(str(last[1]), 5, 10)}")


@pytest.mark.tensorboard
def test_tensorboard_through_proxy(server):
    status, body = get_until(f"{server.url}/tensorboard/", server.auth,
                             lambda s, b: s == 200 and "tb-relative-root" in b, what="/tensorboard/")
    # The page's data comes through the proxy too: the run written by torch shows up.
    get_until(f"{server.url}/tensorboard/data/runs", server.auth,
              lambda s, b: s == 200 and RUN_NAME in b, what="/tensorboard/data/runs")
    # Without Jupyter's token, the proxy sends to the login page (urllib follows the redirect), not to TensorBoard.
    status, body = http(f"{server.url}/tensorboard/")
    assert "tb-relative-root" not in body, f"/tensorboard/ serves TensorBoard without the server's token ({status})"


RAY_DRIVER = r"""
import json, sys, time
import ray
port, temp = int(sys.argv[1]), sys.argv[2]
ray.init(num_cpus=1, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=port,
         object_store_memory=100 * 2**20, _temp_dir=temp, log_to_driver=False)
print(json.dumps({"ray": ray.__version__}), flush=True)
while True:
    time.sleep(60)
"""


@pytest.fixture(scope="module")
def ray_temp():
    if emulated():
        # Measured on an amd64 host: ray.init() takes 39-41 s under qemu-user (about 2 s natively), and its raylet must
        # register with the GCS within a fixed 30 s (ray/_private/node.py), so the start passes or fails with the load.
        pytest.skip("Ray under qemu-user emulation: its start needs a registration within Ray's fixed 30 s that "
                    "emulation misses when loaded (run these tests on real hardware of the platform)")
    # Ray puts unix sockets under its temp dir (108-byte path limit): a short one, removed afterwards.
    path = tempfile.mkdtemp(prefix="vre-ray-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def ray_env(home):
    # Ray's defaults otherwise: token authentication on (its token goes to $HOME/.ray/auth_token, here a tmp HOME).
    return {**os.environ, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}


@pytest.mark.ray
def test_ray_dashboard_through_proxy(server, ray_temp, tmp_path):
    """Ray's dashboard at /proxy/<port>/: its page, and its API with Ray's token (Ray authenticates too)."""
    import ray

    port = free_port()
    cmd = [sys.executable, "-c", RAY_DRIVER, str(port), ray_temp]
    with serve(cmd, f"http://127.0.0.1:{port}/api/authentication_mode", tmp_path / "ray.log", timeout=180,
               env=ray_env(tmp_path)):
        proxied = f"{server.url}/proxy/{port}"
        status, body = get_until(f"{proxied}/", server.auth, lambda s, b: s == 200, what=f"{proxied}/")
        assert "Ray" in body, f"{proxied}/ is not Ray's dashboard: {body[:300]}"
        status, body = http(f"{proxied}/api/authentication_mode", headers=server.auth, timeout=60)
        assert status == 200, f"{proxied}/api/authentication_mode answered {status}: {body[:300]}"
        mode = json.loads(body)["authentication_mode"]
        # Jupyter's token in the query, Ray's in the Authorization header (the proxy forwards both)
        headers = {}
        if mode == "token":
            headers["Authorization"] = "Bearer " + (tmp_path / ".ray" / "auth_token").read_text().strip()
        token = server.auth["Authorization"].split()[-1]
        status, body = http(f"{proxied}/api/version?token={token}", headers=headers, timeout=60)
        assert status == 200, f"{proxied}/api/version answered {status} (Ray authentication {mode}): {body[:300]}"
        assert json.loads(body)["ray_version"] == ray.__version__, body


DASK_ON_RAY = r"""
import json, sys
import dask.array as da, numpy as np, ray
from ray.util.dask import ray_dask_get
ray.init(num_cpus=1, include_dashboard=False, object_store_memory=100 * 2**20, _temp_dir=sys.argv[1],
         log_to_driver=False)
x = da.arange(1_000_000, chunks=100_000).reshape(1000, 1000)
total = int((x % 7).sum().compute(scheduler=ray_dask_get))
ray.shutdown()
print(json.dumps({"total": total, "expected": int((np.arange(1_000_000) % 7).sum())}))
"""


@pytest.mark.ray
@pytest.mark.dask
def test_dask_graph_on_ray(ray_temp, tmp_path):
    proc = run([sys.executable, "-c", DASK_ON_RAY, ray_temp], timeout=300, env=ray_env(tmp_path))
    assert proc.returncode == 0, f"Dask on Ray failed:\n{clip(proc.stderr, 10, 30)}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["total"] == result["expected"], result


LOCAL_RAY = r"""
import json, sys
import ray
from vre_compat.helpers import listening
before = set(listening())
ray.init(num_cpus=1, object_store_memory=100 * 2**20, _temp_dir=sys.argv[1], log_to_driver=False)
assert ray.get(ray.remote(lambda: 6 * 7).remote()) == 42  # the first task starts a worker (its ports too)
print(json.dumps(sorted(set(listening()) - before)))
ray.shutdown()
"""


@pytest.mark.ray
def test_local_ray_listens_on_loopback_only(ray_temp, tmp_path):
    """A plain ray.init() in the user's server opens its ports (GCS, raylet, object manager, workers, dashboard) on
    loopback only: the image's start hook (images/deep-learning/start) keeps a local Ray local."""
    proc = run([sys.executable, "-c", LOCAL_RAY, ray_temp], timeout=300, env=ray_env(tmp_path))
    assert proc.returncode == 0, f"ray.init() failed:\n{clip(proc.stderr, 10, 30)}"
    opened = [tuple(pair) for pair in json.loads(proc.stdout.strip().splitlines()[-1])]
    assert len(opened) > 5 and all(loopback(host) for host, _ in opened), opened
