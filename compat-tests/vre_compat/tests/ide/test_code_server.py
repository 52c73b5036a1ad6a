"""code-server behind jupyter-vscode-proxy: installed, on a unix socket, opening HOME, with the image's Python."""
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

from vre_compat.helpers import http, run_ok, tail, which
from vre_compat.tests.desktop.xsession import processes

pytestmark = [pytest.mark.ide, pytest.mark.vscode]


def test_code_server_version(tmp_path):
    # HOME in tmp_path: code-server writes a default config.yaml there on first run
    out = run_ok([which("code-server"), "--version"], timeout=120, env={**os.environ, "HOME": str(tmp_path)}).stdout
    match = re.search(r"^(4\.\d+\.\d+) \S+ with Code (\d+\.\d+\.\d+)$", out, re.M)
    assert match, f"code-server --version printed {out!r}"


def _settings(home: Path, scope: str = "Machine") -> dict:
    path = home / ".local" / "share" / "code-server" / scope / "settings.json"
    assert path.is_file(), f"{path} was not written"
    return json.loads(path.read_text())


def test_interpreter_settings_in_an_empty_home(tmp_path):
    """`start` gives code-server the image's Python, also when HOME is a freshly mounted, empty volume."""
    home = tmp_path / "home"
    home.mkdir()
    # as at a container's start: nothing set by an earlier `start`
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_DATA_HOME", "CODE_WORKINGDIR")}
    proc = run_ok([which("start"), "sh", "-c", 'echo "$CODE_WORKINGDIR"'], env={**env, "HOME": str(home)})
    assert proc.stdout.strip().splitlines()[-1] == str(home), "code-server would not open the user's home"
    interpreter = _settings(home)["python.defaultInterpreterPath"]
    prefix = os.environ["NB_PYTHON_PREFIX"]
    assert interpreter == f"{prefix}/bin/python", f"interpreter {interpreter!r}, NB_PYTHON_PREFIX={prefix}"
    assert os.path.realpath(interpreter) == os.path.realpath(sys.executable), \
        f"{interpreter} is not the environment's Python ({sys.executable})"


def test_user_settings_kept(tmp_path):
    home = tmp_path / "home"
    path = home / ".local" / "share" / "code-server" / "Machine" / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"python.defaultInterpreterPath": "/opt/mine/bin/python"}))
    env = {k: v for k, v in os.environ.items() if k != "XDG_DATA_HOME"}
    run_ok([which("start"), "true"], env={**env, "HOME": str(home)})
    settings = _settings(home)
    assert settings["python.defaultInterpreterPath"] == "/opt/mine/bin/python", "the user's choice was overwritten"
    assert settings["python.terminal.activateEnvironment"] is False, "missing defaults were not added"
    # application-scoped settings live in the user settings: no "Restricted Mode" for the user's own home
    assert _settings(home, "User")["security.workspace.trust.enabled"] is False


def test_jupyterlab_launcher_entry(lab):
    status, body = http(f"{lab.url}/server-proxy/servers-info", headers=lab.auth)
    assert status == 200, f"/server-proxy/servers-info answered {status}: {body[:300]}"
    entries = {s["name"]: s.get("launcher_entry", {}) for s in json.loads(body)["server_processes"]}
    assert entries.get("vscode", {}).get("title") == "VS Code", f"JupyterLab launcher entries: {entries}"


def test_workbench_through_jupyter(lab):
    """/vscode/ starts code-server on a unix socket, in HOME, and serves its workbench."""
    status, body = 0, ""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status, body = http(f"{lab.url}/vscode/", headers=lab.auth, timeout=60)
        if status == 200:
            break
        time.sleep(2)
    assert status == 200, f"/vscode/ answered {status}: {body[:500]}\n{tail(lab.log.read_text())}"
    assert "vscode-workbench" in body or "workbench" in body, f"/vscode/ is not the VS Code workbench: {body[:500]}"
    servers = [p for p in processes() if "entry.js" in " ".join(p["argv"]) or p["name"] == "code-server"]
    argv = next((p["argv"] for p in servers if "--socket" in p["argv"]), None)
    assert argv, f"code-server does not run on a unix socket: {[p['argv'] for p in servers]}"
    assert argv[-1] == os.path.expanduser("~"), f"code-server opens {argv[-1]!r}, not the user's home"
    assert not any(a.startswith("--port") or a.startswith("--bind-addr") for a in argv), argv
