"""What a shared hub must guarantee between users (deploy/jupyterhub-docker): per-server memory and CPU limits,
teams that see only their own folder, servers that cannot reach each other (while a user's Ray and Dask dashboards
still work through that user's Jupyter proxy), and idle servers culled.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time

import pytest
from tests.e2e.hub.hubclient import TEAM_MOUNT, USERS_GID, execute, run_code, running_hub

from vre import engine

pytestmark = [pytest.mark.hub, pytest.mark.docker]

GIB = 2**30
MEMORY_LIMIT = 3 * GIB  # the test hub's limits (hubclient.running_hub)
CPU_LIMIT = 1

# The server's cgroup (v1 or v2), as its processes see it.
CGROUP = r"""
import json, os
def read(*names):
    for name in names:
        for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct"):
            path = os.path.join(root, name)
            if os.path.exists(path):
                return open(path).read()
def oom_kills():
    text = read("memory.events", "memory.oom_control")
    return int(dict(line.split() for line in text.splitlines())["oom_kill"])
def memory_limit():
    return int(read("memory.max", "memory.limit_in_bytes"))
def cpu_quota():
    v2 = read("cpu.max")
    quota, period = v2.split() if v2 else (read("cpu.cfs_quota_us"), read("cpu.cfs_period_us"))
    return int(quota) / int(period)
def cpu_seconds():
    v1 = read("cpuacct.usage")
    return int(v1) / 1e9 if v1 else int(dict(l.split() for l in read("cpu.stat").splitlines())["usage_usec"]) / 1e6
"""


def logged_in(hub, sessions, image):
    server = hub.server(image)
    if server.user not in sessions:
        sessions[server.user] = hub.login(server.user)
    session = sessions[server.user]
    session.get(hub.user_url(server.user, "lab"), timeout=120)  # the server's _xsrf cookie, as a browser gets it
    return server, session


@pytest.fixture(scope="module")
def sessions(hub):
    return {}


def test_memory_limit_kills_the_kernel_not_the_server(hub, sessions):
    """A kernel allocating past the server's memory limit is killed by the OOM killer; the server goes on."""
    server, session = logged_in(hub, sessions, "base-geo")
    probe = CGROUP + "print(json.dumps([memory_limit(), oom_kills()]))"
    before = json.loads(run_code(hub, session, server.user, probe))
    assert before[0] == MEMORY_LIMIT, f"the server's memory limit is {before[0]}, not {MEMORY_LIMIT}"
    hog = "import numpy as np\nblocks = []\nfor i in range(64):\n    blocks.append(np.ones(2**24))  # 128 MiB each\n"
    result = execute(hub, session, server.user, hog, timeout=600)
    assert result["died"], f"allocating 8 GiB past a {MEMORY_LIMIT} limit did not kill the kernel: {result}"
    status = session.get(hub.user_url(server.user, "api/status"), timeout=60)
    assert status.status_code == 200, f"the server is gone with its kernel: {status.status_code}"
    after = json.loads(run_code(hub, session, server.user, probe))
    assert after[1] > before[1], f"no OOM kill recorded in the server's cgroup: {before} -> {after}"
    print(f"{server.user}'s kernel {result['died']} after the OOM killer; OOM kills {before[1]} -> {after[1]}")


SPIN = CGROUP + r"""
import multiprocessing, time
def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
if __name__ == "__main__":
    used, wall = cpu_seconds(), time.monotonic()
    with multiprocessing.Pool(2) as pool:  # two busy processes: two CPUs' worth without a limit
        pool.map(spin, [5, 5])
    print(json.dumps({"quota": cpu_quota(), "cpus_used": (cpu_seconds() - used) / (time.monotonic() - wall)}))
"""


def test_cpu_limit(hub, sessions):
    """Two busy processes in one server get at most the server's CPU limit (a CFS quota), not the machine's cores."""
    server, session = logged_in(hub, sessions, "base-geo")
    # A script file: multiprocessing's workers import the main module, which a kernel cell is not.
    code = f"import subprocess, sys\nopen('/tmp/spin.py', 'w').write({SPIN!r})\n" \
           "print(subprocess.run([sys.executable, '/tmp/spin.py'], capture_output=True, text=True, check=True).stdout)"
    figures = json.loads(run_code(hub, session, server.user, code).strip().splitlines()[-1])
    print(f"{server.user}: {figures}")
    assert figures["quota"] == CPU_LIMIT, figures
    assert figures["cpus_used"] <= CPU_LIMIT * 1.05, f"the server used more CPU than its limit: {figures}"


TEAMS_VIEW = r"""
import json, os
out = {"teams": sorted(os.listdir("/srv/teams"))}
for action, call in (("read", lambda: open("/srv/teams/eo/notes/plan.txt").read()),
                     ("list", lambda: os.listdir("/srv/teams/eo")),
                     ("write", lambda: open("/srv/teams/eo/from-dave.txt", "w").write("x")),
                     ("mkdir", lambda: os.makedirs("/srv/teams/eo/dave"))):
    try:
        call()
        out[action] = "allowed"
    except OSError as err:
        out[action] = type(err).__name__
with open("/srv/teams/sar/dave.txt", "w") as f:
    f.write("sar")
print(json.dumps(out))
"""


def test_teams_isolated(hub, sessions, teams_root):
    """dave (team sar) sees only his team's folder: another team's folder is neither readable nor writable."""
    alice, alice_session = logged_in(hub, sessions, "base-geo")
    run_code(hub, alice_session, alice.user,
             f"import os\nos.makedirs('{TEAM_MOUNT}/notes', exist_ok=True)\n"
             f"open('{TEAM_MOUNT}/notes/plan.txt', 'w').write('eo only')")
    dave, dave_session = logged_in(hub, sessions, "deep-learning")
    seen = json.loads(run_code(hub, dave_session, dave.user, TEAMS_VIEW).strip().splitlines()[-1])
    print(f"{dave.user}: {seen}")
    assert seen["teams"] == ["sar"], seen
    assert all(seen[action] != "allowed" for action in ("read", "list", "write", "mkdir")), seen
    eo = {p.relative_to(teams_root).as_posix() for p in (teams_root / "eo").rglob("*")}
    assert not any("dave" in name for name in eo), f"dave's writes reached team eo's folder: {eo}"
    assert (teams_root / "sar" / "dave.txt").read_text() == "sar"
    sar = teams_root / "sar"
    assert sar.stat().st_gid == USERS_GID and sar.stat().st_mode & 0o2070 == 0o2070, oct(sar.stat().st_mode)
    alice_teams = run_code(hub, alice_session, alice.user, "import os; print(sorted(os.listdir('/srv/teams')))")
    assert alice_teams.strip() == "['eo']"


# User A's Ray and Dask, as a notebook starts them (plain ray.init() and LocalCluster()), left running in the
# background (its own session: the kernel that started it ends, they stay).
SERVICES = r"""
import json, os, sys, time
if __name__ == "__main__":
    import ray
    from distributed import Client, LocalCluster
    ray.init(num_cpus=1, object_store_memory=100 * 2**20)
    assert ray.get(ray.remote(lambda: 6 * 7).remote()) == 42
    client = Client(LocalCluster(n_workers=1, threads_per_worker=1))
    assert client.submit(sum, [1, 2, 3]).result() == 6
    with open(sys.argv[1] + ".part", "w") as f:
        json.dump({"dask_link": client.dashboard_link}, f)
    os.replace(sys.argv[1] + ".part", sys.argv[1])  # complete when it appears
    while True:
        time.sleep(60)
"""
START_SERVICES = r"""
import json, os, subprocess, sys, time
open("/tmp/services.py", "w").write(SCRIPT)
subprocess.Popen([sys.executable, "/tmp/services.py", "/tmp/services.json"], start_new_session=True,
                 stdout=open("/tmp/services.log", "w"), stderr=subprocess.STDOUT)
deadline = time.monotonic() + 300
while not os.path.exists("/tmp/services.json"):
    assert time.monotonic() < deadline, open("/tmp/services.log").read()[-3000:]
    time.sleep(1)
time.sleep(1)
print(open("/tmp/services.json").read())
"""
# From user B's server: a TCP connection to each port, all at once.
SCAN = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def connect(port):
    try:
        socket.create_connection((HOST, port), timeout=5).close()
        return port, "connected"
    except OSError as err:
        return port, type(err).__name__
with ThreadPoolExecutor(32) as pool:
    print(json.dumps(dict(pool.map(connect, PORTS))))
"""


def test_servers_cannot_reach_each_other(hub, sessions):
    """dave runs Ray and Dask in his server; from alice's server not one of dave's ports answers (nor his Jupyter
    server's), while dave's dashboards work through dave's Jupyter proxy."""
    dave, dave_session = logged_in(hub, sessions, "deep-learning")
    alice, alice_session = logged_in(hub, sessions, "base-geo")
    services = json.loads(run_code(hub, dave_session, dave.user, f"SCRIPT = {SERVICES!r}\n{START_SERVICES}",
                                   timeout=400).strip().splitlines()[-1])
    # Every listening socket of the server (the compat suite's helper, in every image), once all of it runs.
    listening = [tuple(pair) for pair in json.loads(run_code(
        hub, dave_session, dave.user, "import json; from vre_compat.helpers import listening; "
                                      "print(json.dumps(listening()))"))]
    print(f"{dave.user}'s server listens on {listening}")
    # The images' defaults: what the user started listens on loopback only (127.0.0.11: Docker's DNS resolver);
    # Jupyter (8888) is the one open port.
    assert [p for p in listening if not ipaddress.ip_address(p[0]).is_loopback] == [("0.0.0.0", 8888)], listening
    assert len(listening) > 10, f"Ray and Dask did not start their servers: {listening}"
    # The network's layout: from alice's server, nothing of dave's answers, not even Jupyter's port.
    address = engine.docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                            f"{hub.prefix}-{dave.user}").stdout.decode().strip()
    ports = sorted({port for _, port in listening})
    scan = json.loads(run_code(hub, alice_session, alice.user, f"HOST, PORTS = {address!r}, {ports}\n{SCAN}"))
    print(f"from {alice.user}'s server to {address}: {scan}")
    assert not [port for port, outcome in scan.items() if outcome == "connected"], scan
    # The host (where the hub and its proxy run) does reach dave's Jupyter port on that address: the scan would see it.
    socket.create_connection((address, 8888), timeout=10).close()
    # dave's dashboards, through dave's Jupyter proxy (authenticated as dave)
    ray_page = dave_session.get(hub.user_url(dave.user, "proxy/8265/"), timeout=120)
    assert ray_page.status_code == 200 and "Ray" in ray_page.text, f"Ray's dashboard: {ray_page.status_code}"
    link = services["dask_link"]
    assert link == f"/user/{dave.user}/proxy/127.0.0.1:8787/status", link
    dask_page = dave_session.get(f"{hub.url}{link}", timeout=120)
    assert dask_page.status_code == 200 and "Dask" in dask_page.text, f"Dask's dashboard: {dask_page.status_code}"
    # ... and not through anyone else's: alice's proxy reaches her own loopback, where nothing listens on 8265.
    assert alice_session.get(hub.user_url(alice.user, "proxy/8265/"), timeout=120).status_code != 200


def test_idle_servers_culled(hub_images, proxy_command, tmp_path_factory):
    """jupyterhub-idle-culler (a service of the hub, here with a 20 s timeout) stops a server nobody uses."""
    runtime = tmp_path_factory.mktemp("culled-hub")
    with running_hub(runtime, {"base-geo": hub_images["base-geo"]}, proxy_command, tmp_path_factory.mktemp("teams"),
                     {}, users=["erin"], idle_culler={"timeout": 20, "every": 5}) as culled_hub:
        # Not Hub.spawn: the server may be culled as soon as it is ready (its activity dates from the spawn).
        answer = culled_hub.api("POST", "/users/erin/server", json={"image": "base-geo"})
        assert answer.status_code in (201, 202), f"{answer.status_code} {answer.text[:300]}"
        deadline = time.monotonic() + 600
        while culled_hub.running() or culled_hub.containers():
            assert time.monotonic() < deadline, f"erin's server still there after 600 s:\n{culled_hub.log_tail()}"
            time.sleep(2)
        # The culler stops ready servers only (pending ones are skipped): erin's was ready, then culled.
        assert "Culling server erin" in culled_hub.log.read_text(errors="replace"), culled_hub.log_tail()
        print("erin's idle server culled")
