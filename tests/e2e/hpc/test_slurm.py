"""JupyterHub + batchspawner's SlurmSpawner (deploy/slurm/): a user's server is a Slurm job running the image with
ch-run, reached through the hub's proxy; from it, dask-jobqueue's SLURMCluster starts workers as Slurm jobs running
the same image, which compute over raster tiles with exact results."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from tests.e2e.hpc.hpckit import READY_LIMIT, WHO_AM_I, home, hubclient, record

USER = "vrehpc1"
TILES = Path(__file__).resolve().parent.parent / "dask" / "tiles.py"
# From the user's kernel: two workers as Slurm jobs (the hub's dask-jobqueue defaults run them in the image), the
# tiles computed by them (tests/dask/tiles.py), and what each worker says about where it runs.
DASK_CODE = """
import json, os, runpy
from dask_jobqueue import SLURMCluster
from distributed import Client
tiles = runpy.run_path(os.path.expanduser("~/vre-hpc-tiles.py"))
with SLURMCluster() as cluster:
    cluster.scale(2)
    tiles["main"](cluster.scheduler_address, os.path.expanduser("~/vre-hpc-tiles.tif"), 2, 300)
    with Client(cluster) as client:
        where = client.run(lambda: {"job": os.environ.get("SLURM_JOB_ID"), "uid": os.getuid(),
                                    "in_image": os.path.exists("/opt/vre/layers.txt")})
    print(json.dumps({"job_script": cluster.job_script(), "workers": list(where.values())}))
"""


def last_json(text: str, back: int = 1) -> dict:
    return json.loads(text.strip().splitlines()[-back])


@pytest.fixture(scope="module")
def server(slurm_hub):
    """The user's server, spawned through the hub's REST API; the time from the request (the job's submission) to
    the hub reporting it ready, and to its Lab page answering through the proxy."""
    started = time.monotonic()
    answer = slurm_hub.api("POST", f"/users/{USER}/server")
    assert answer.status_code in (201, 202), f"spawn refused: {answer.status_code} {answer.text[:300]}"
    while True:
        state = slurm_hub.api("GET", f"/users/{USER}").json()["servers"].get("")
        if state and state["ready"]:
            break
        if not state or not state["pending"]:
            pytest.fail(f"the spawn failed ({state}):\n{slurm_hub.log_tail()}\n{job_logs()}")
        if time.monotonic() - started > READY_LIMIT:
            pytest.fail(f"not ready after {READY_LIMIT} s:\n{slurm_hub.log_tail()}")
        time.sleep(0.25)
    ready = time.monotonic() - started
    session = slurm_hub.login(USER)
    lab = session.get(slurm_hub.user_url(USER, "lab"), timeout=120)
    assert lab.status_code == 200 and "jupyter-config-data" in lab.text, f"/user/{USER}/lab: {lab.status_code}"
    record("slurm: job submitted -> JupyterLab ready", {"hub_ready_seconds": round(ready, 1),
                                                         "lab_page_seconds": round(time.monotonic() - started, 1)})
    return session


def job_logs() -> str:
    logs = sorted(home(USER).glob("jupyterhub_slurmspawner_*.log"))
    return logs[-1].read_text()[-3000:] if logs else "(no job log)"


def squeue(user: str) -> list[list[str]]:
    out = subprocess.run(["squeue", "-h", "-u", user, "-o", "%i %j %T"], capture_output=True, text=True, check=True)
    return [line.split() for line in out.stdout.splitlines()]


def test_server_is_a_slurm_job_running_the_image(slurm_hub, server):
    who = json.loads(hubclient.run_code(slurm_hub, server, USER, WHO_AM_I).strip().splitlines()[-1])
    jobs = {job: (name, state) for job, name, state in squeue(USER)}
    assert who["slurm_job"] in jobs and jobs[who["slurm_job"]] == ("spawner-jupyterhub", "RUNNING"), (who, jobs)
    assert who["in_image"] and who["user"] == USER and who["home"] == str(home(USER)), who
    Path(who["probe"]).unlink()


def test_dask_jobqueue_workers_are_slurm_jobs_with_exact_results(slurm_hub, server):
    from tests.e2e.test_dask_cluster import STATS, combine  # the Dask cluster test's exact comparison

    target = home(USER)
    shutil.copy(TILES, target / "vre-hpc-tiles.py")
    shutil.chown(target / "vre-hpc-tiles.py", USER)
    try:
        out = hubclient.run_code(slurm_hub, server, USER, DASK_CODE, timeout=900)
    finally:
        for name in ("vre-hpc-tiles.py", "vre-hpc-tiles.tif"):
            (target / name).unlink(missing_ok=True)
    info, result = last_json(out, 1), last_json(out, 2)
    server_job = json.loads(hubclient.run_code(slurm_hub, server, USER, WHO_AM_I).strip().splitlines()[-1])
    Path(server_job["probe"]).unlink()
    # Two workers, each its own Slurm job (not the server's), in the image, as the user.
    jobs = {w["job"] for w in info["workers"]}
    assert len(info["workers"]) == 2 and len(jobs) == 2 and None not in jobs, info["workers"]
    assert server_job["slurm_job"] not in jobs
    assert all(w["in_image"] and w["uid"] == server_job["uid"] for w in info["workers"]), info["workers"]
    assert "ch-run" in info["job_script"] and "#SBATCH" in info["job_script"], info["job_script"]
    # Exact per-tile results against one whole-raster read (as in tests/test_dask_cluster.py).
    assert len(result["tiles"]) == len(result["reference_tiles"]) == 12
    for tile, reference in zip(result["tiles"], result["reference_tiles"]):
        assert {k: tile[k] for k in STATS} == reference, f"tile {tile['window']} differs"
    whole, reference = combine(result["tiles"]), result["reference"]
    assert {k: whole[k] for k in STATS if k != "ndvi_sum"} == {k: reference[k] for k in STATS if k != "ndvi_sum"}
    assert whole["ndvi_sum"] == pytest.approx(reference["ndvi_sum"], rel=1e-12)
    assert sum(whole["hist"]) == whole["valid"] == 700 * 1000 - 40 * 60
    assert len({t["worker"] for t in result["tiles"]}) == 2, "the tiles did not run on both workers"
