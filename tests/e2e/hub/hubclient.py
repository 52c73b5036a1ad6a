"""Client side of the hub contract tests: the hub (its API, spawning and stopping user servers, logging in as a
user), and the user's server reached through the hub's proxy (the kernel protocol over its websocket)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path

import pytest
import requests
from tests.testkit import ROOT

from vre import engine
from vre.workspace import Workspace

# Image alias (what a user picks, user_options["image"]) -> the factory target it is built from.
IMAGES = {"base-geo": "base-geo/debian", "desktop": "desktop/debian", "ide": "ide/debian",
          "deep-learning": "deep-learning/debian/cpu"}
# One user per image; the first three in team "eo", dave in team "sar".
USERS = {"base-geo": "alice", "ide": "bob", "desktop": "carol", "deep-learning": "dave"}
TEAMS = {"eo": ["alice", "bob", "carol"], "sar": ["dave"]}
TEAM_MOUNT = "/srv/teams/eo"
# The platform's configuration (deploy/jupyterhub-docker): the tests run the hub a deployment runs.
HUB_CONFIG = ROOT / "deploy" / "jupyterhub-docker" / "jupyterhub_config.py"
NO_ICC = "com.docker.network.bridge.enable_icc=false"
USERS_GID = 100  # the images' NB_GID ("users")
BENCH = Workspace.of(ROOT).bench / "hub.json"
HERE = Path(__file__).resolve().parent
SPAWN_LIMIT = 900  # seconds; generous, the machine is shared (the figure is reported, never asserted)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def plain_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback and the Docker network: never through a proxy from the environment
    return session


@dataclass
class Server:
    user: str
    image: str  # alias
    ref: str
    seconds: float  # from the spawn request to the hub reporting the server ready
    image_id: str  # what the container runs (the tag may move while the tests run)


@dataclass
class Hub:
    url: str
    token: str
    password: str
    refs: dict[str, str]
    prefix: str
    log: Path
    proc: subprocess.Popen
    client: requests.Session = field(default_factory=plain_session)
    servers: dict[str, Server | str] = field(default_factory=dict)  # alias -> Server, or why its spawn failed

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.client.request(method, f"{self.url}/hub/api{path}", timeout=60,
                                   headers={"Authorization": f"token {self.token}"}, **kwargs)

    def user_url(self, user: str, path: str = "") -> str:
        return f"{self.url}/user/{user}/{path}"

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_up(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"jupyterhub exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.client.get(f"{self.url}/hub/api/", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the hub did not answer through its proxy within {timeout} s:\n{self.log_tail()}")
            time.sleep(1)

    def server(self, image: str) -> Server:
        """The running server of the image's user, spawned on first use (once: a failed spawn is not retried)."""
        if image not in self.servers:
            try:
                self.servers[image] = self.spawn(USERS[image], image)
            except pytest.fail.Exception as err:
                self.servers[image] = str(err)
        found = self.servers[image]
        if isinstance(found, str):
            pytest.fail(found)
        return found

    def spawn(self, user: str, image: str) -> Server:
        started = time.monotonic()
        answer = self.api("POST", f"/users/{user}/server", json={"image": image})
        if answer.status_code not in (201, 202):
            pytest.fail(f"the hub refused to spawn {image} for {user}: {answer.status_code} {answer.text[:500]}")
        while True:
            model = self.api("GET", f"/users/{user}").json()
            state = model["servers"].get("")
            if state and state["ready"]:
                break
            if not state or not state["pending"]:
                pytest.fail(f"spawning {image} for {user} failed (server: {state}):\n{self.log_tail()}")
            if time.monotonic() - started > SPAWN_LIMIT:
                pytest.fail(f"{image} for {user} not ready after {SPAWN_LIMIT} s:\n{self.log_tail()}")
            time.sleep(0.5)
        seconds = time.monotonic() - started
        image_id = engine.docker("inspect", "-f", "{{.Image}}", f"{self.prefix}-{user}").stdout.decode().strip()
        server = Server(user, image, self.refs[image], seconds, image_id)
        print(f"\nspawn-to-ready {image} ({server.ref}): {server.seconds:.1f} s")
        record_spawn(server)
        return server

    def stop(self, user: str, timeout: float = 180) -> None:
        answer = self.api("DELETE", f"/users/{user}/server")
        if answer.status_code not in (202, 204, 400):  # 400: no server running
            raise RuntimeError(f"the hub refused to stop {user}'s server: {answer.status_code} {answer.text[:300]}")
        deadline = time.monotonic() + timeout
        # Docker removes an auto-remove container just after it stopped: wait for the hub, then for the engine.
        while self.api("GET", f"/users/{user}").json()["servers"] or f"{self.prefix}-{user}" in self.containers():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{user}'s server or container still there {timeout} s after the stop request "
                                   f"(containers: {self.containers()})")
            time.sleep(1)

    def containers(self) -> list[str]:
        return containers(self.prefix)

    def running(self) -> list[str]:
        """Users whose server the hub knows (running or pending)."""
        return [u["name"] for u in self.api("GET", "/users").json() if u["servers"]]

    def login(self, user: str) -> requests.Session:
        """A browser-like session: the hub's login form, then its cookies."""
        session = plain_session()
        form = session.get(f"{self.url}/hub/login", timeout=60)
        match = re.search(r'name="_xsrf"\s+value="([^"]+)"', form.text)
        assert form.status_code == 200 and match, f"no login form at /hub/login: {form.status_code} {form.text[:300]}"
        answer = session.post(f"{self.url}/hub/login", allow_redirects=False, timeout=60,
                              data={"username": user, "password": self.password, "_xsrf": match.group(1)})
        assert answer.status_code == 302 and "jupyterhub-session-id" in session.cookies, \
            f"logging in as {user} failed: {answer.status_code} {answer.text[:300]}"
        return session


@contextlib.contextmanager
def running_hub(runtime: Path, refs: dict[str, str], proxy_command: str, teams_root: Path, teams: dict[str, list[str]],
                users: list[str] = (), **settings) -> Iterator[Hub]:
    """deploy/jupyterhub-docker's hub on loopback (its own process group, with its proxy), on a new network named
    eo-vre-hub-<id> like everything it starts; stopped and removed at the end with its servers and home volumes.
    `settings` adds to or replaces the deployment settings (limits, idle_culler, ...)."""
    network = f"eo-vre-hub-{uuid.uuid4().hex[:8]}"
    engine.docker("network", "create", "-o", NO_ICC, network)
    proc = the_hub = None
    try:
        gateway = engine.docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}",
                                network).stdout.decode().strip()
        public_port = free_port()
        settings = {
            "runtime_dir": str(runtime), "prefix": network, "network": network,
            "public": {"ip": "127.0.0.1", "port": public_port},
            "proxy": {"command": [proxy_command], "api_port": free_port()}, "hub_port": free_port(gateway),
            "auth": {"class": "dummy", "password": uuid.uuid4().hex}, "admin_token": uuid.uuid4().hex,
            "users": list(users), "images": refs, "teams_root": str(teams_root), "teams": teams,
            "limits": {"memory": "3G", "cpu": 1, "shm": "1G"}, **settings,
        }
        settings_file = runtime / "settings.json"
        settings_file.touch(mode=0o600)
        settings_file.write_text(json.dumps(settings))
        log = runtime / "hub.log"
        with log.open("w") as out:
            # Its own process group: the proxy it starts goes with it at the end, and only that.
            proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(HUB_CONFIG)],
                                    cwd=runtime, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, "VRE_HUB_SETTINGS": str(settings_file)})
        the_hub = Hub(f"http://127.0.0.1:{public_port}", settings["admin_token"], settings["auth"]["password"], refs,
                      network, log, proc)
        the_hub.wait_up()
        yield the_hub
    finally:
        if proc is not None:
            shut_down(proc, network, the_hub)
        engine.docker("network", "rm", network, check=False)
        volumes = engine.docker("volume", "ls", "-q", "--filter", f"name=^{network}-home-").stdout.decode().split()
        if volumes:
            engine.docker("volume", "rm", "-f", *volumes, check=False)


def shut_down(proc: subprocess.Popen, prefix: str, the_hub: Hub | None) -> None:
    """Stop every server through the hub, then the hub (which stops its proxy), then whatever is left of them."""
    if the_hub is not None and proc.poll() is None:
        try:
            users = the_hub.running()
        except requests.RequestException as err:
            print(f"listing the hub's servers: {err}")
            users = []
        for user in users:
            try:
                the_hub.stop(user)
            except (RuntimeError, requests.RequestException) as err:
                print(f"stopping {user}'s server: {err}")
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the proxy, if the hub could not stop it
    except ProcessLookupError:
        pass
    proc.wait()
    names = containers(prefix)
    if names:
        engine.docker("rm", "-f", *names, check=False)


def containers(prefix: str) -> list[str]:
    """Names of the containers of a hub whose DockerSpawner.prefix is `prefix` (running or not)."""
    out = engine.docker("ps", "-a", "--format", "{{.Names}}", "--filter", f"name=^{prefix}-").stdout
    return out.decode().split()


def record_spawn(server: Server) -> None:
    """Spawn-to-ready figure for the benchmark (.vre/bench/hub.json), merged per image."""
    figures = json.loads(BENCH.read_text()) if BENCH.is_file() else {}
    figures[server.image] = {"ref": server.ref, "image_id": server.image_id,
                             "spawn_to_ready_seconds": round(server.seconds, 1),
                             "measured": datetime.now(UTC).isoformat(timespec="seconds")}
    BENCH.parent.mkdir(parents=True, exist_ok=True)
    BENCH.write_text(json.dumps(figures, indent=1))


# The kernel protocol over the Jupyter server's websocket (legacy JSON frames), as JupyterLab speaks it.

def cookie_header(session: requests.Session, url: str) -> str:
    return session.prepare_request(requests.Request("GET", url)).headers.get("Cookie", "")


def xsrf_headers(session: requests.Session, user: str) -> dict[str, str]:
    """The header a cookie-authenticated request to the user's server needs (set by a page of that server)."""
    token = next((c.value for c in session.cookies if c.name == "_xsrf" and c.path.startswith(f"/user/{user}")),
                 None)
    assert token, f"no _xsrf cookie of /user/{user}/: {[(c.name, c.path) for c in session.cookies]}"
    return {"X-XSRFToken": token}


@contextlib.asynccontextmanager
async def _websocket(session: requests.Session, url: str, timeout: float):
    """A websocket of the user's server (http URL), opened with the session's cookies as a browser opens it."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    request = HTTPRequest(url.replace("http://", "ws://", 1), headers={"Cookie": cookie_header(session, url)})
    conn = await asyncio.wait_for(websocket_connect(request), timeout)
    try:
        yield conn
    finally:
        conn.close()


async def _execute(session: requests.Session, url: str, code: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    msg_id = uuid.uuid4().hex
    result = {"stdout": "", "stderr": "", "error": None, "status": None, "idle": False, "died": None}
    async with _websocket(session, url, timeout) as conn:
        conn.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                       "version": "5.3", "date": datetime.now(UTC).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        # execute_reply (shell) and the idle status (iopub) may come in either order: wait for both.
        while result["status"] is None or not result["idle"]:
            raw = await asyncio.wait_for(conn.read_message(), max(deadline - time.monotonic(), 0.1))
            if raw is None:
                raise RuntimeError(f"the kernel's websocket closed: {conn.close_code} {conn.close_reason}")
            msg = json.loads(raw)
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] in ("restarting", "dead"):
                # The server's word that the kernel process died (e.g. killed by the OOM killer), whatever it ran.
                result["died"] = content["execution_state"]
                break
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if kind == "stream":
                result[content["name"]] += content["text"]
            elif kind == "error":
                result["error"] = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(content["traceback"]))
            elif kind == "execute_reply":
                result["status"] = content["status"]
            elif kind == "status" and content["execution_state"] == "idle":
                result["idle"] = True
    return result


def execute(the_hub: Hub, session: requests.Session, user: str, code: str, timeout: float = 300) -> dict:
    """Run code in a new kernel of the user's server, through the hub's proxy: stdout, stderr, error, status, and
    `died` ("restarting" or "dead") if the kernel died under it."""
    kernels = the_hub.user_url(user, "api/kernels")
    headers = xsrf_headers(session, user)
    answer = session.post(kernels, json={}, headers=headers, timeout=120)
    assert answer.status_code == 201, f"POST {kernels}: {answer.status_code} {answer.text[:300]}"
    kernel = answer.json()["id"]
    try:
        result = asyncio.run(_execute(session, f"{kernels}/{kernel}/channels", code, timeout))
    finally:
        session.delete(f"{kernels}/{kernel}", headers=headers, timeout=60)
    return result


def run_code(the_hub: Hub, session: requests.Session, user: str, code: str, timeout: float = 300) -> str:
    """Run code in a new kernel of the user's server, through the hub's proxy; its stdout."""
    result = execute(the_hub, session, user, code, timeout)
    assert result["status"] == "ok", f"the code failed in {user}'s kernel:\n{result['error']}\n{result['stderr']}"
    return result["stdout"]


async def _first_message(session: requests.Session, url: str, timeout: float) -> bytes:
    async with _websocket(session, url, timeout) as conn:
        message = await asyncio.wait_for(conn.read_message(), timeout)
    return message if isinstance(message, bytes) else (message or "").encode()


def first_message(session: requests.Session, url: str, timeout: float = 180) -> bytes:
    """The first message a websocket of the user's server sends (e.g. the VNC server's RFB greeting)."""
    return asyncio.run(_first_message(session, url, timeout))
