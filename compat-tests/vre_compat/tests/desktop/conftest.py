"""Fixtures of the desktop tests: the VNC desktop started through the run's JupyterLab (as a browser does)."""
import asyncio
import time
from types import SimpleNamespace

import pytest

from vre_compat.helpers import tail
from vre_compat.tests.desktop import xsession


async def _rfb_greeting(url: str, headers: dict, timeout: float) -> bytes:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    conn = await asyncio.wait_for(websocket_connect(HTTPRequest(url, headers=headers)), timeout)
    try:
        message = await asyncio.wait_for(conn.read_message(), timeout)
    finally:
        conn.close()
    return message if isinstance(message, bytes) else (message or "").encode()


def rfb_greeting(lab, timeout: float = 90) -> bytes:
    """The first bytes the VNC server sends, read through Jupyter's /desktop-websockify/ (starting the desktop)."""
    return asyncio.run(_rfb_greeting(f"{lab.ws_url}/desktop-websockify/", lab.auth, timeout))


@pytest.fixture(scope="package")
def desktop(lab):
    """The desktop session started by connecting to it through Jupyter; its display once XFCE runs."""
    greeting = rfb_greeting(lab)
    deadline = time.monotonic() + 90
    while True:
        state = xsession.state()
        mine = [s for s in state["vnc_servers"] if s["pid"] in _descendants(lab.proc.pid)]
        if mine and all(state["session"].values()):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"the desktop did not come up within 90 s after the VNC connection\nstate: {state}\n"
                        f"lab log:\n{tail(lab.log.read_text())}")
        time.sleep(1)
    yield SimpleNamespace(display=mine[-1]["display"], server=mine[-1], greeting=greeting, lab=lab)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in xsession.processes():
        try:
            with open(f"/proc/{p['pid']}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(p["pid"])
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found
