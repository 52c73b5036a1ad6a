"""Host-side runner of the browser tests: a container of the image on loopback, Chromium scenarios, probes.

Used by the browser checks (checks/, pytest), which `vre test` runs for images whose layers include desktop or ide.
The scenarios (desktop.mjs, ide.mjs) drive Debian's chromium with playwright-core (npm, locked in package-lock.json
and installed with `npm ci` when node_modules is missing).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

from vre import engine
from vre.errors import VreError
from vre.workspace import Workspace

HERE = Path(__file__).resolve().parent
VNC_PORTS = (5800, 5801, 5900, 5901)
CHROMIUM = "/usr/bin/chromium"
HOME = "/home/jovyan"
# The probe the desktop scenario runs inside the container (from the compat suite every image has).
XSESSION = ["python", "-m", "vre_compat.tests.desktop.xsession"]


class BrowserSetupError(VreError):
    """A host tool of the tests (Chromium, Node.js, npm, an npm package) is missing: not a failure of the image."""


def docker(*args: str, check: bool = True, timeout: float = 300, input: str | None = None
           ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([engine.client(), *args], capture_output=True, text=True, env=engine.env(),
                          timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} ... exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc


def ensure_tools(chromium: str = CHROMIUM) -> None:
    """Chromium, node and playwright-core ready."""
    if not Path(chromium).is_file():
        raise BrowserSetupError(f"{chromium} not found: run `make setup` (installs Debian's chromium)")
    npm_ci(HERE, "playwright-core")


def npm_ci(folder: Path, package: str) -> None:
    """node on PATH, and folder's npm packages: `npm ci` (from its committed lock) when `package` is missing."""
    if shutil.which("node") is None:
        raise BrowserSetupError("node not found: run `make setup` (installs Debian's nodejs and npm)")
    if not (folder / "node_modules" / package / "package.json").is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise BrowserSetupError("npm not found: run `make setup` (installs Debian's nodejs and npm)")
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True,
                              timeout=600)
        if proc.returncode != 0:
            raise BrowserSetupError(f"npm ci in {folder} failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")


def artifacts_dir(workspace: Workspace, ref: str) -> Path:
    path = workspace.browser_artifacts(ref)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Container:
    """A running container of the image as a hub would run it: default command, an empty HOME volume."""

    ref: str
    id: str = ""
    url: str = ""
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    logs: str = ""

    def start(self, timeout: float = 180, poll: float = 1) -> Container:
        # HOME is an empty tmpfs owned by the user, like a freshly mounted volume: `start` must fill it.
        self.id = docker("run", "-d", "-p", "127.0.0.1::8888", "-e", f"JUPYTER_TOKEN={self.token}",
                         "--tmpfs", f"{HOME}:rw,exec,uid=1000,gid=100,mode=0755,size=2g",
                         "--shm-size", "512m", self.ref).stdout.strip()
        port = docker("port", self.id, "8888/tcp").stdout.split("\n")[0].rsplit(":", 1)[1]
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            state = docker("inspect", "-f", "{{.State.Status}}", self.id).stdout.strip()
            if state != "running":
                raise RuntimeError(f"the container exited before Jupyter answered ({state}):\n{self.log_tail()}")
            try:
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                        f"{self.url}/api/status?token={self.token}", timeout=5) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Jupyter did not answer /api/status within {timeout} s:\n{self.log_tail()}")
            time.sleep(poll)

    def exec(self, *cmd: str, user: str = "1000", env: dict[str, str] | None = None, timeout: float = 300,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        args = ["exec", "-u", user]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        return docker(*args, self.id, *cmd, check=check, timeout=timeout)

    def probe_command(self) -> list[str]:
        return [engine.client(), "exec", "-u", "1000", self.id, *XSESSION]

    def xsession(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.exec(*XSESSION).stdout.strip().splitlines()[-1])
        return state

    def log_tail(self, lines: int = 60) -> str:
        if self.id:
            proc = docker("logs", "--tail", str(lines), self.id, check=False)
            self.logs = proc.stdout + proc.stderr
        return self.logs

    def log_hints(self, lines: int = 400) -> list[str]:
        """Lines of the container log that say why a desktop or an IDE is not there."""
        pattern = re.compile(r"unable to be loaded|vncserver|Xtigervnc|xstartup|code-server|"
                             r"Traceback|Error|error:", re.I)
        seen: list[str] = []
        for line in self.log_tail(lines).splitlines():
            line = line.strip()
            if pattern.search(line) and line not in seen and "DeprecationWarning" not in line:
                seen.append(line)
        return seen[-12:]

    def ip(self) -> str:
        return docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                      self.id).stdout.split()[0]

    def listening_ports(self) -> list[int]:
        """TCP ports listening inside the container, from its own /proc/net tables."""
        text = self.exec("cat", "/proc/net/tcp", "/proc/net/tcp6").stdout
        ports: set[int] = set()
        for line in text.splitlines():
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A" and ":" in fields[1]:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        return sorted(ports)

    def port_scan(self, ports: tuple[int, ...] = VNC_PORTS) -> dict[int, bool]:
        """From the host, over the container's network address: which ports accept a TCP connection."""
        ip = self.ip()
        result = {}
        for port in ports:
            with socket.socket() as s:
                s.settimeout(2)
                result[port] = s.connect_ex((ip, port)) == 0
        return result

    def stop_with_sigterm(self, limit: float = 30) -> tuple[float, int]:
        """Send SIGTERM (as `docker stop` does) and time how long the container takes to exit."""
        started = time.monotonic()
        docker("kill", "--signal", "TERM", self.id)
        code = int(docker("wait", self.id, timeout=limit + 30).stdout.strip() or -1)
        return time.monotonic() - started, code

    def remove(self) -> None:
        if self.id:
            self.log_tail(200)
            docker("rm", "-f", self.id, check=False)


def start_container(ref: str, poll: float = 1) -> Container:
    """The image running as a hub runs it, once /api/status answers (asked every `poll` seconds)."""
    container = Container(ref)
    try:
        return container.start(poll=poll)
    except Exception:
        container.remove()
        raise


SCENARIO_TIMEOUT = 900.0  # seconds a browser scenario may take before its process is killed


@contextlib.contextmanager
def scenario_in_container(name: str, image: str, workspace: Workspace, prepare: list[str] | None = None,
                          **extra: str) -> Iterator[tuple[Container, ScenarioResult, Path]]:
    """The image started as a hub runs it, `prepare` run in it (a command, before the browser comes), then the
    <name>.mjs scenario: (container, result, artifacts folder), the container left running for further checks and
    removed afterwards, its log kept beside the screenshots."""
    container = start_container(image)
    out = artifacts_dir(workspace, image)
    try:
        if prepare:
            container.exec(*prepare)
        yield container, run_scenario(name, container, out, chromium=CHROMIUM, timeout=SCENARIO_TIMEOUT,
                                      **extra), out
    finally:
        container.remove()
        (out / "container.log").write_text(container.logs)


@dataclass
class HubTarget:
    """A hub as run_scenario's target (instead of a Container): its URL, the user's password (passed as --token),
    and where to look when a step fails (e.g. the hub's log tail)."""

    url: str
    token: str
    log: Callable[[], str] = lambda: ""

    def probe_command(self) -> list[str]:
        return ["true"]  # no container-side probe

    def log_hints(self) -> list[str]:
        return self.log().splitlines()[-30:]


@dataclass
class ScenarioResult:
    ok: bool
    error: str | None
    steps: list[dict[str, Any]]
    screenshots: list[str]
    facts: dict[str, Any]
    seconds: float
    output: str

    def summary(self) -> str:
        lines = [f"  {'ok  ' if s['ok'] else 'FAIL'} {s['name']} ({s['seconds']} s)"
                 + (f": {s['error']}" if s.get("error") else "") for s in self.steps]
        return "\n".join(lines)


def run_scenario(name: str, container: Container | HubTarget, out: Path, chromium: str = CHROMIUM,
                 timeout: float = SCENARIO_TIMEOUT, **extra: str) -> ScenarioResult:
    """Run <name>.mjs (next to this file) against the container; its result file is the verdict."""
    args = ["node", str(HERE / f"{name}.mjs"), "--url", container.url, "--token", container.token,
            "--out", str(out), "--chromium", chromium, "--probe", json.dumps(container.probe_command())]
    for key, value in extra.items():
        args += [f"--{key}", value]
    result_file = out / f"{name}-result.json"
    result_file.unlink(missing_ok=True)
    started = time.monotonic()
    try:
        proc = subprocess.run(args, cwd=HERE, capture_output=True, text=True, timeout=timeout)
        output = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        told = b"".join(part if isinstance(part, bytes) else part.encode() for part in (err.stdout, err.stderr) if part)
        output = f"{told.decode(errors='replace')}\nthe scenario process was killed after {timeout} s"
    seconds = time.monotonic() - started
    if not result_file.is_file():
        return ScenarioResult(False, f"{name}.mjs wrote no result:\n{output[-3000:]}", [], [], {}, seconds, output)
    data = json.loads(result_file.read_text())
    error = data["error"]
    if not data["ok"]:
        # What the server said: e.g. "entry_point desktop-websockify was unable to be loaded: vncserver executable
        # not found", next to what the browser saw.
        hints = container.log_hints()
        if hints:
            error += "\nthe container log says:\n  " + "\n  ".join(hints)
    return ScenarioResult(data["ok"], error, data["steps"], data["screenshots"], data["facts"], seconds, output)
