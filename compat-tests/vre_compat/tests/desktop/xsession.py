"""The user's VNC desktop as seen from inside the image: X displays, windows, session processes.

`python -m vre_compat.tests.desktop.xsession` prints it as one JSON line; the host-side browser tests
(src/vre/verify/browser/) run that with `docker exec` to learn where the QGIS window is while they look at the screen.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

VNC_SERVERS = ("Xtigervnc", "Xvnc")
SESSION = ("xfce4-session", "xfwm4", "xfce4-panel", "xfdesktop")


def processes(uid: int | None = None) -> list[dict]:
    """This user's processes: pid, name (argv[0] basename) and argv."""
    uid = os.getuid() if uid is None else uid
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if proc.stat().st_uid != uid:
                continue
            argv = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if argv:
            found.append({"pid": int(proc.name), "name": os.path.basename(argv[0]), "argv": argv})
    return found


def vnc_servers(procs: list[dict] | None = None) -> list[dict]:
    """VNC X servers of this user, newest last, with their display (":1") and unix socket."""
    servers = []
    for p in sorted(procs if procs is not None else processes(), key=lambda p: p["pid"]):
        if p["name"] not in VNC_SERVERS:
            continue
        display = next((a for a in p["argv"][1:] if re.fullmatch(r":\d+", a)), None)
        args = p["argv"]
        socket = args[args.index("-rfbunixpath") + 1] if "-rfbunixpath" in args[:-1] else None
        servers.append({**p, "display": display, "rfbunixpath": socket})
    return servers


# xwininfo -root -tree lines: `0x1c00014 "Untitled Project — QGIS": ("qgis.bin" "QGIS3")  887x381+0+0  +5+56`
_WINDOW = re.compile(r'^\s*(?P<id>0x[0-9a-f]+) (?P<name>"(?:[^"\\]|\\.)*"|\(has no name\))'
                     r'(?:: \((?P<class>[^)]*)\))?\s+(?P<w>\d+)x(?P<h>\d+)[+-]-?\d+[+-]-?\d+'
                     r'\s+\+(?P<x>-?\d+)\+(?P<y>-?\d+)')


def windows(display: str) -> list[dict]:
    """Every X window of the display with a name: id, name, class, absolute geometry, viewable or not."""
    out = subprocess.run(["xwininfo", "-root", "-tree"], env={**os.environ, "DISPLAY": display},
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"xwininfo on {display}: {out.stderr.strip()}")
    found = []
    for line in out.stdout.splitlines():
        m = _WINDOW.match(line)
        if not m or m["name"] == "(has no name)":
            continue
        found.append({"id": m["id"], "name": m["name"][1:-1], "class": (m["class"] or "").replace('"', "").split(),
                      "x": int(m["x"]), "y": int(m["y"]), "width": int(m["w"]), "height": int(m["h"])})
    for w in found:
        state = subprocess.run(["xwininfo", "-id", w["id"]], env={**os.environ, "DISPLAY": display},
                               capture_output=True, text=True, timeout=30).stdout
        w["viewable"] = "IsViewable" in state
    return found


def qgis_windows(wins: list[dict]) -> list[dict]:
    """QGIS's main window(s): viewable, class QGIS3/qgis, large (not a splash or tooltip), largest first."""
    return sorted((w for w in wins if w["viewable"] and w["width"] >= 400 and w["height"] >= 300
                   and ({"QGIS3", "qgis"} & set(w["class"]) or "QGIS" in w["name"])),
                  key=lambda w: -w["width"] * w["height"])


def state() -> dict:
    procs = processes()
    servers = vnc_servers(procs)
    display = servers[-1]["display"] if servers else None
    try:
        wins = windows(display) if display else []
        error = None
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        wins, error = [], str(err)
    names = {p["name"] for p in procs}
    keep = ("pid", "display", "rfbunixpath", "argv")
    return {"display": display, "vnc_servers": [{k: s[k] for k in keep} for s in servers],
            "session": {name: name in names for name in SESSION}, "qgis_running": bool({"qgis", "qgis.bin"} & names),
            "windows": wins, "qgis_windows": qgis_windows(wins), "error": error}


if __name__ == "__main__":
    json.dump(state(), sys.stdout)
    print()
