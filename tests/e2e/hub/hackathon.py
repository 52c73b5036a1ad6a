"""A hackathon on one hub: every participant's server spawned at once through the hub's REST API, then each one
runs a kernel computation that writes to the participant's home and to the team's folder. Figures: spawn-to-ready
per server (p50, p95, max), time until all are ready, memory per idle server, failures. Used by test_hackathon.py
(opt-in), whose run writes the figures to .vre/bench/hackathon.json for the benchmark."""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from tests.e2e.hub.hubclient import Hub, run_code

from vre import engine

SPAWN_LIMIT = 600  # seconds for all servers to be ready: a bounded run

# What each participant runs: a computation with a known result, a file in the home and one in the team's folder,
# and what the server sees of the teams.
WORK = r"""
import json, os
import numpy as np
from osgeo import gdal
user, team, n = USER, TEAM, N
total = int((np.arange(n, dtype="int64") % 97).sum())
home = os.path.expanduser("~/hackathon")
os.makedirs(home, exist_ok=True)
ds = gdal.GetDriverByName("GTiff").Create(os.path.join(home, "result.tif"), 64, 64, 1, gdal.GDT_Int32)
ds.GetRasterBand(1).Fill(total % 1000)
ds = None
with open(f"/srv/teams/{team}/{user}.txt", "w") as f:
    f.write(str(total))
print(json.dumps({"total": total, "teams": sorted(os.listdir("/srv/teams")),
                  "home": sorted(os.listdir(home)), "uid": os.getuid()}))
"""


@dataclass
class Participant:
    user: str
    team: str
    n: int
    spawn_seconds: float | None = None
    ready_at: float | None = None  # seconds since the first spawn request
    error: str | None = None
    result: dict = field(default_factory=dict)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def spawn_all(hub: Hub, people: list[Participant], image: str) -> None:
    """All spawn requests at once (one thread each), then the hub's user list polled until every server is ready or
    has failed."""
    started = time.monotonic()

    def request(p: Participant) -> None:
        answer = hub.api("POST", f"/users/{p.user}/server", json={"image": image})
        if answer.status_code not in (201, 202):
            p.error = f"spawn refused: {answer.status_code} {answer.text[:200]}"

    with ThreadPoolExecutor(len(people)) as pool:
        list(pool.map(request, people))
    waiting = {p.user: p for p in people if not p.error}
    while waiting:
        now = time.monotonic() - started
        for model in hub.api("GET", "/users").json():
            p = waiting.get(model["name"])
            state = model["servers"].get("") if p else None
            if p is None:
                continue
            if state and state["ready"]:
                p.ready_at = p.spawn_seconds = now
                del waiting[p.user]
            elif not state or not state["pending"]:
                p.error = f"spawn failed (server: {state})"
                del waiting[p.user]
        if now > SPAWN_LIMIT:
            for p in waiting.values():
                p.error = f"not ready after {SPAWN_LIMIT} s"
            break
        time.sleep(0.5)


def work(hub: Hub, p: Participant) -> None:
    try:
        session = hub.login(p.user)
        session.get(hub.user_url(p.user, "lab"), timeout=300)
        code = f"USER, TEAM, N = {p.user!r}, {p.team!r}, {p.n}\n{WORK}"
        p.result = json.loads(run_code(hub, session, p.user, code, timeout=600).strip().splitlines()[-1])
    except (AssertionError, requests.RequestException, RuntimeError, TimeoutError, ValueError) as err:
        p.error = f"kernel: {type(err).__name__}: {str(err)[:300]}"


def idle_memory(hub: Hub) -> dict[str, int]:
    """Memory in use (bytes, the container's cgroup as `docker stats` reports it) per server, kernels closed."""
    out = engine.docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *hub.containers(),
                        timeout=300).stdout.decode()
    units = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 1e3, "MB": 1e6, "GB": 1e9}
    memory = {}
    for line in out.splitlines():
        name, used = line.split()[0], line.split()[1]
        number = used.rstrip("KMGiBk")
        memory[name] = int(float(number) * units[used[len(number):]])
    return memory


def expected_total(n: int) -> int:
    return sum(i % 97 for i in range(n))


def run(hub: Hub, teams: dict[str, list[str]], image: str) -> tuple[dict, list[Participant]]:
    people = []
    for team, members in teams.items():
        for user in members:
            people.append(Participant(user, team, 10**6 + len(people)))
    t0 = time.monotonic()
    spawn_all(hub, people, image)
    all_ready = time.monotonic() - t0
    ready = [p for p in people if not p.error]
    with ThreadPoolExecutor(len(ready) or 1) as pool:
        list(pool.map(lambda p: work(hub, p), ready))
    work_seconds = time.monotonic() - t0 - all_ready
    time.sleep(5)  # the kernels' processes gone: the servers as they idle
    memory = idle_memory(hub)
    spawns = [p.spawn_seconds for p in people if p.spawn_seconds is not None]
    mib = [m / 2**20 for m in memory.values()]
    figures = {
        "users": len(people), "teams": len(teams), "image": hub.refs[image],
        "spawn_seconds": {"p50": round(statistics.median(spawns), 1), "p95": round(percentile(spawns, 95), 1),
                          "max": round(max(spawns), 1)} if spawns else None,
        "all_ready_seconds": round(all_ready, 1),
        "kernels_done_seconds": round(work_seconds, 1),
        "idle_memory_mib": {"median": round(statistics.median(mib), 1), "max": round(max(mib), 1),
                            "total": round(sum(mib), 1)} if mib else None,
        "failures": {p.user: p.error for p in people if p.error},
    }
    return figures, people


def homes(hub: Hub) -> dict[str, Path]:
    """user -> the host folder of the volume mounted at the user's /home/jovyan (DockerSpawner names it)."""
    out = {}
    for container in json.loads(engine.docker("inspect", *hub.containers()).stdout):
        env = dict(item.split("=", 1) for item in container["Config"]["Env"])
        home = [m["Source"] for m in container["Mounts"] if m["Destination"] == "/home/jovyan"]
        if home:
            out[env["JUPYTERHUB_USER"]] = Path(home[0])
    return out


def check_files(hub: Hub, people: list[Participant], teams_root: Path) -> list[str]:
    """What the host holds after the run: each team folder has its members' files and no one else's; each home
    volume has its owner's result. Problems, as sentences (none: all as expected)."""
    problems = []
    volumes = homes(hub)
    for team in {p.team for p in people}:
        members = sorted(f"{p.user}.txt" for p in people if p.team == team)
        found = sorted(path.name for path in (teams_root / team).iterdir())
        if found != members:
            problems.append(f"team {team}'s folder holds {found}, expected {members}")
    for p in people:
        if (teams_root / p.team / f"{p.user}.txt").read_text() != str(expected_total(p.n)):
            problems.append(f"{p.user}'s team file has the wrong total")
        if p.user not in volumes or not (volumes[p.user] / "hackathon" / "result.tif").is_file():
            problems.append(f"{p.user}'s home volume has no hackathon/result.tif")
    return problems
