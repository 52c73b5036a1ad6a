"""The VNC desktop: TigerVNC on a unix socket reached only through Jupyter, an XFCE session, launchers in HOME."""
import configparser
import json
import os
import re
import shlex
import shutil
import socket
import stat
import time
from pathlib import Path

import pytest

from vre_compat.helpers import http, run_ok, which
from vre_compat.tests.desktop import xsession

pytestmark = [pytest.mark.desktop, pytest.mark.vnc]

VNC_PORTS = (5800, 5801, 5900, 5901)
LAUNCHERS = ("qgis.desktop", "terminal.desktop", "gdal-tools.desktop")


def test_vnc_server_installed():
    vncserver = which("vncserver")
    assert "tigervnc" in Path(vncserver).read_text(errors="replace").lower(), \
        f"{vncserver} is not TigerVNC's (jupyter-remote-desktop-proxy needs -rfbunixpath)"
    which("Xtigervnc")


def test_rfb_through_jupyter(desktop):
    assert desktop.greeting.startswith(b"RFB 003."), \
        f"/desktop-websockify/ did not answer with an RFB greeting: {desktop.greeting[:40]!r}"


def test_vnc_on_unix_socket_only(desktop):
    args = desktop.server["argv"]
    assert desktop.server["rfbunixpath"], f"the VNC server does not listen on a unix socket: {args}"
    assert "-rfbport" in args and args[args.index("-rfbport") + 1] == "-1", \
        f"the VNC server was not told to keep off TCP (-rfbport -1): {args}"


def _listening_tcp_ports() -> dict[int, set[str]]:
    """Listening TCP ports of the container (this network namespace) -> inodes of their sockets."""
    ports: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                ports.setdefault(int(fields[1].rsplit(":", 1)[1], 16), set()).add(fields[9])
    return ports


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if m := re.fullmatch(r"socket:\[(\d+)\]", target):
            inodes.add(m.group(1))
    return inodes


def test_no_vnc_tcp_port(desktop):
    ports = _listening_tcp_ports()
    open_vnc = sorted(set(VNC_PORTS) & set(ports))
    assert not open_vnc, f"VNC TCP port(s) {open_vnc} listen in the container (all listening: {sorted(ports)})"
    server_inodes = _socket_inodes(desktop.server["pid"])
    by_vnc = sorted(port for port, inodes in ports.items() if inodes & server_inodes)
    assert not by_vnc, f"the VNC server ({desktop.server['argv'][0]}) listens on TCP port(s) {by_vnc}"
    for port in VNC_PORTS:
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"something accepts connections on 127.0.0.1:{port}"


def test_xfce_session(desktop):
    # The panel maps its window a while after its process starts (longer on a loaded machine): poll, bounded.
    deadline = time.monotonic() + 60
    while True:
        state = xsession.state()
        names = {w["name"] for w in state["windows"] if w["viewable"]}
        if ("xfce4-panel" in names and all(state["session"].values())) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert all(state["session"].values()), f"XFCE session processes: {state['session']}"
    assert "xfce4-panel" in names, f"no panel window on {desktop.display} after 60 s: {sorted(names)}"


def _check_launchers(desktop_dir: Path):
    for name in LAUNCHERS:
        path = desktop_dir / name
        assert path.is_file(), f"{path} is missing (present: {sorted(p.name for p in desktop_dir.glob('*'))})"
        assert path.stat().st_mode & stat.S_IXUSR, f"{path} is not executable: XFCE will not run it"
        entry = configparser.ConfigParser(interpolation=None)
        entry.read_string(path.read_text())
        exe = shlex.split(entry["Desktop Entry"]["Exec"])[0]
        assert shutil.which(exe), f"{path}: Exec program {exe!r} not found on PATH"


def test_launchers_in_home():
    _check_launchers(Path.home() / "Desktop")


def test_launchers_land_in_an_empty_home(tmp_path):
    """HOME is often a freshly mounted, empty volume: `start` must put the launchers there."""
    home = tmp_path / "home"
    home.mkdir()
    proc = run_ok([which("start"), "sh", "-c", 'echo "$JUPYTER_REMOTE_DESKTOP_PROXY_XSTARTUP"'],
                  env={**os.environ, "HOME": str(home)})
    _check_launchers(home / "Desktop")
    profile = home / ".local/share/QGIS/QGIS3/profiles/default/QGIS/QGIS3.ini"
    assert profile.is_file(), f"{profile} was not seeded (OTB provider defaults)"
    if Path("/usr/share/otb/description/algs.txt").is_file():
        settings = configparser.ConfigParser(interpolation=None, strict=False)
        settings.read_string(profile.read_text())
        assert settings.get("PythonPlugins", "otbprovider", fallback=None) == "true", profile.read_text()
    xstartup = proc.stdout.strip().splitlines()[-1]
    assert os.access(xstartup, os.X_OK), f"start sets JUPYTER_REMOTE_DESKTOP_PROXY_XSTARTUP={xstartup!r}"


def test_user_launcher_kept(tmp_path):
    """A launcher the user made their own (our marker line removed) survives a restart."""
    desktop_dir = tmp_path / "home" / "Desktop"
    desktop_dir.mkdir(parents=True)
    mine = desktop_dir / "qgis.desktop"
    mine.write_text("[Desktop Entry]\nType=Application\nName=My QGIS\nExec=qgis --nologo\n")
    run_ok([which("start"), "true"], env={**os.environ, "HOME": str(tmp_path / "home")})
    assert "My QGIS" in mine.read_text()


def test_jupyterlab_launcher_entries(lab):
    status, body = http(f"{lab.url}/server-proxy/servers-info", headers=lab.auth)
    assert status == 200, f"/server-proxy/servers-info answered {status}: {body[:300]}"
    entries = {s["name"]: s.get("launcher_entry", {}) for s in json.loads(body)["server_processes"]}
    titles = {name: e.get("title") for name, e in entries.items() if e.get("enabled", True)}
    assert titles.get("desktop-websockify") == "Desktop", f"JupyterLab launcher entries: {titles}"
    assert titles.get("qgis") == "QGIS", f"JupyterLab launcher entries: {titles}"


def test_novnc_page(lab):
    status, body = http(f"{lab.url}/desktop/", headers=lab.auth)
    assert status == 200 and 'id="status"' in body and "viewer.js" in body, \
        f"/desktop/ answered {status}, not the noVNC client: {body[:300]}"
