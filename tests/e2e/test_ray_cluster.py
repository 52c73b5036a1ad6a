"""Ray across containers of deep-learning (cpu): a head and two workers on a private network, /dev/shm sized for
Ray's object store, Ray's token authentication on; tasks pinned to each node run there, an object put by the driver
is read on every node, and the head's dashboard is reached from the user's JupyterLab through jupyter-server-proxy,
the only way to it (no port of the cluster is published; its network is internal).

Heavy (three Ray nodes and a Lab on a shared 2-core machine): runs with VRE_TEST_RAY=1 or VRE_TEST_ALL=1.
"""

from __future__ import annotations

import json
import os
import secrets
import time

import pytest
import requests
from tests.e2e.test_dask_cluster import WAIT, Cluster, docker, start_lab
from tests.testkit import ALL_IMAGES, ROOT, build_or_fail

from vre import engine

pytestmark = [pytest.mark.ray, pytest.mark.docker,
              pytest.mark.skipif(not (ALL_IMAGES or os.environ.get("VRE_TEST_RAY") == "1"),
                                 reason="three Ray nodes across containers (heavy): set VRE_TEST_RAY=1 or "
                                        "VRE_TEST_ALL=1")]

WORKERS = ("ray-worker-a", "ray-worker-b")
GCS_PORT, DASHBOARD_PORT = 6379, 8265
SHM = "512m"  # Docker's default /dev/shm is 64 MB: Ray would put its object store in /tmp instead
OBJECT_STORE = 200 * 2**20
TOKEN = secrets.token_hex(24)  # Ray's token authentication: every node and driver of the cluster has it


@pytest.fixture(scope="module")
def image(docker_engine, real_matrix) -> str:
    return build_or_fail(real_matrix, ["deep-learning/debian/cpu"], ROOT / ".vre")["deep-learning/debian/cpu"]


def node(cluster: Cluster, name: str, ray_args: str) -> None:
    # The images keep a local Ray on loopback (images/deep-learning/start): a cluster node says it is one, and
    # announces its address on the cluster's network (an internal network has no route to guess it from).
    # Ray gives a starting node a fixed 30 s to register with the GCS, then the node exits; on a saturated machine
    # that can be missed, and the node is restarted, as an orchestrator (Kubernetes, KubeRay) restarts a Ray pod.
    cluster.run(cluster.worker(name), "--shm-size", SHM, "--restart", "on-failure:5",
                "-e", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1", "-e", "RAY_AUTH_MODE=token",
                "-e", f"RAY_AUTH_TOKEN={TOKEN}", "-e", "RAY_USAGE_STATS_ENABLED=0",
                cluster.image, "bash", "-c",
                f'exec ray start --block --node-ip-address="$(hostname -i)" --num-cpus=1 '
                f"--object-store-memory={OBJECT_STORE} {ray_args}")


def wait_started(cluster: Cluster, name: str) -> None:
    """Until `ray start --block` reports the node up (registered with the GCS); fail if its container stops."""
    deadline = time.monotonic() + 2 * WAIT
    while True:
        logs = engine.docker("logs", cluster.worker(name), timeout=60)
        if "Ray runtime started" in (logs.stdout + logs.stderr).decode(errors="replace"):
            return
        state = docker("inspect", "-f", "{{.State.Status}} (restarts: {{.RestartCount}})", cluster.worker(name)).strip()
        if not state.startswith(("running", "restarting")) or time.monotonic() > deadline:
            pytest.fail(f"Ray node {name} did not start ({state}):\n{cluster.logs()}")
        time.sleep(2)


@pytest.fixture(scope="module")
def ray_cluster(image, request):
    cluster = Cluster(image, prefix=f"vre-ray-{secrets.token_hex(4)}")
    request.addfinalizer(cluster.remove)
    cluster.create_network(cluster.network, "--internal")
    head = cluster.worker("ray-head")
    node(cluster, "ray-head", f"--head --port={GCS_PORT} --dashboard-host=0.0.0.0 --dashboard-port={DASHBOARD_PORT}")
    wait_started(cluster, "ray-head")
    for name in WORKERS:
        node(cluster, name, f"--address={head}:{GCS_PORT}")
        wait_started(cluster, name)  # one at a time: less contention for the 30 s above
    return cluster


# The driver, on the head: waits for the three nodes, pins one task to each, and has each node read one object.
DRIVER = r"""
import json, socket, sys, time
import numpy as np, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init(address="auto", log_to_driver=False)
deadline = time.monotonic() + float(sys.argv[1])
while len([n for n in ray.nodes() if n["Alive"]]) < 3:
    assert time.monotonic() < deadline, f"nodes: {ray.nodes()}"
    time.sleep(1)
nodes = sorted((n for n in ray.nodes() if n["Alive"]), key=lambda n: n["NodeManagerAddress"])
@ray.remote(num_cpus=1)
def where(n, block):
    return {"host": socket.gethostname(), "node": ray.get_runtime_context().get_node_id(),
            "sum": int(np.arange(n, dtype="int64").sum()), "block_sum": float(block.sum())}
block = ray.put(np.ones(16 * 2**20 // 8))  # 16 MiB, through the object store to every node
results = ray.get([where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                   .remote(10**6 + i, block) for i, n in enumerate(nodes)])
print(json.dumps({"nodes": [{"id": n["NodeID"], "address": n["NodeManagerAddress"]} for n in nodes],
                  "results": results, "version": ray.__version__}))
"""


@pytest.fixture(scope="module")
def tasks(ray_cluster) -> dict:
    proc = engine.docker("exec", "-i", ray_cluster.worker("ray-head"), "start", "python", "-", str(WAIT),
                         timeout=WAIT + 300, check=False, input=DRIVER.encode())
    if proc.returncode != 0:
        pytest.fail(f"the Ray driver failed (exit {proc.returncode}):\n{proc.stderr.decode(errors='replace')[-3000:]}"
                    f"\n{ray_cluster.logs()}")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def test_tasks_run_on_every_node(ray_cluster, tasks):
    hosts = {ray_cluster.worker(name) for name in ("ray-head", *WORKERS)}
    assert [r["node"] for r in tasks["results"]] == [n["id"] for n in tasks["nodes"]], tasks
    assert {r["host"] for r in tasks["results"]} == hosts, tasks
    for i, result in enumerate(tasks["results"]):
        n = 10**6 + i
        assert result["sum"] == n * (n - 1) // 2 and result["block_sum"] == 16 * 2**20 // 8, result
    print(f"Ray {tasks['version']}: one task on each of {sorted(hosts)}")


def test_object_store_in_shared_memory(ray_cluster):
    """/dev/shm has the size given to the containers, large enough for the object store (Ray would warn and use /tmp
    otherwise)."""
    for name in ("ray-head", *WORKERS):
        size = docker("exec", ray_cluster.worker(name), "df", "-B1", "--output=size", "/dev/shm").split()[-1]
        assert int(size) == 512 * 2**20 > OBJECT_STORE, f"{name}: /dev/shm is {size} bytes"


def test_dashboard_only_through_the_lab(ray_cluster, tasks):
    """The head's dashboard, from the user's Lab through jupyter-server-proxy (its host allowlisted by the platform);
    nothing of the cluster is published on the host, and without Jupyter's token the proxy does not open it."""
    head = ray_cluster.worker("ray-head")
    for name in ("ray-head", *WORKERS):
        assert docker("port", ray_cluster.worker(name)).strip() == "", f"{name} publishes a port"
    assert docker("network", "inspect", "-f", "{{.Internal}}", ray_cluster.network).strip() == "true"
    lab = start_lab(ray_cluster, "-e", f"VRE_PROXY_HOSTS={head}")
    base = f"/proxy/{head}:{DASHBOARD_PORT}"
    page = lab.get(f"{base}/")
    assert page.status_code == 200 and "Ray" in page.text, f"{base}/: {page.status_code} {page.text[:300]}"
    plain = requests.Session()
    plain.trust_env = False
    # Jupyter's token in the query, Ray's in the Authorization header: the proxy passes both on.
    nodes = plain.get(f"{lab.url}{base}/nodes?view=summary&token={lab.token}", timeout=60,
                      headers={"Authorization": f"Bearer {TOKEN}"})
    assert nodes.status_code == 200, f"{base}/nodes: {nodes.status_code} {nodes.text[:300]}"
    alive = [n for n in nodes.json()["data"]["summary"] if n["raylet"]["state"] == "ALIVE"]
    assert len(alive) == 3, nodes.text[:1000]
    # Without Jupyter's token (a new session: the token in a query leaves a login cookie) the proxy sends to the login
    # page, not to the dashboard.
    stranger = requests.Session()
    stranger.trust_env = False
    refused = stranger.get(f"{lab.url}{base}/", allow_redirects=False, timeout=60)
    assert refused.status_code in (302, 403) and "Ray" not in refused.text, refused.status_code
    print(f"dashboard through the Lab's proxy: {base}/ ({len(page.text)} bytes), {len(alive)} nodes alive")
