"""The desktop image in a real browser: noVNC connects through Jupyter, QGIS starts from its desktop icon and shows,
no VNC port is open, qgis_process opens a GeoTIFF on the same display, and SIGTERM stops the container quickly."""
from __future__ import annotations

import json
import time

import pytest

from vre.verify.browser import runner
from vre.verify.browser.runner import start_container

# Stopping must be quick: hubs and `docker stop` give 10 s before SIGKILL.
STOP_LIMIT = 10.0


@pytest.fixture(scope="module")
def desktop_run(desktop_image, workspace):
    """One container; the browser scenario runs first and leaves the desktop (and QGIS) running for the rest."""
    with runner.scenario_in_container("desktop", desktop_image, workspace) as run:
        yield run


def explain(container, result) -> str:
    log = "\n".join(line for line in container.log_tail(300).splitlines()
                    if any(w in line.lower() for w in ("vnc", "desktop", "error", "proxy", "xstartup", "qgis")))
    return (f"{result.error}\nsteps:\n{result.summary()}\nscreenshots: {result.screenshots}\n"
            f"container log (relevant lines):\n{log[-4000:]}")


def test_desktop_scenario(desktop_run):
    container, result, out = desktop_run
    assert result.ok, explain(container, result)
    comparison = result.facts["comparison"]
    print(f"QGIS window {result.facts['qgisWindow']}, changed inside {comparison['insideShare']:.0%}, "
          f"outside {comparison['outsideShare']:.0%}; screenshots {result.screenshots}")


def test_launchers_in_empty_home(desktop_run):
    container, _, _ = desktop_run
    listing = container.exec("ls", "-l", f"{runner.HOME}/Desktop").stdout
    for name in ("qgis.desktop", "terminal.desktop", "gdal-tools.desktop"):
        assert name in listing, f"{name} not in the (initially empty) HOME's Desktop:\n{listing}"


def test_no_vnc_port_open(desktop_run):
    container, result, _ = desktop_run
    state = container.xsession()
    assert state["vnc_servers"], f"no VNC server runs: the scan would prove nothing ({state})"
    scan = container.port_scan()
    listening = container.listening_ports()
    print(f"port scan of {container.ip()}: {scan}; listening in the container: {listening}")
    assert not any(scan.values()), f"VNC ports accept connections: {scan}"
    assert not set(runner.VNC_PORTS) & set(listening), f"listening TCP ports in the container: {listening}"


def test_qgis_process_on_the_desktop_display(desktop_run):
    """QGIS (qgis_process) in the running desktop's X display opens a GeoTIFF written here."""
    container, _, _ = desktop_run
    display = container.xsession()["display"]
    assert display, "no desktop display"
    path = f"{runner.HOME}/browser-test.tif"
    container.exec("python", "-c", (
        "import numpy; from vre_compat.helpers import write_geotiff; "
        f"write_geotiff({path!r}, numpy.arange(32 * 16, dtype='float32').reshape(16, 32))"))
    proc = container.exec("qgis_process", "--json", "run", "native:rasterlayerstatistics", "--",
                          f"INPUT={path}", "BAND=1", env={"DISPLAY": display}, check=False, timeout=300)
    assert proc.returncode == 0, f"qgis_process on {display} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    results = json.loads(proc.stdout[proc.stdout.index("{"):])["results"]
    assert (results["MIN"], results["MAX"]) == (0, 511) and results["MEAN"] == pytest.approx(255.5), results


def test_sigterm_stops_quickly(desktop_run):
    container, _, _ = desktop_run
    state = container.xsession()
    assert state["vnc_servers"] and all(state["session"].values()), f"the desktop is not running: {state}"
    seconds, code = container.stop_with_sigterm()
    print(f"stopped {seconds:.1f} s after SIGTERM (exit {code}) with the desktop "
          f"{'and QGIS ' if state['qgis_running'] else ''}running")
    assert seconds < STOP_LIMIT, f"the container took {seconds:.1f} s to stop after SIGTERM (limit {STOP_LIMIT} s)"


# Two ways a desktop image can be broken: no VNC server at all (the Desktop tile is not even registered), and a VNC
# server whose X server is missing (the tile is there, the connection never comes up).
BREAKAGES = {
    "no-vncserver": ("/usr/bin/vncserver /usr/bin/tigervncserver /usr/bin/Xtigervnc /usr/bin/Xvnc", "vncserver"),
    "no-xserver": ("/usr/bin/Xtigervnc /usr/bin/Xvnc", "Xtigervnc"),
}


@pytest.fixture(params=sorted(BREAKAGES))
def broken_desktop(request, desktop_image, workspace):
    """The desktop image with (part of) its VNC server removed: what a broken build would look like."""
    files, named = BREAKAGES[request.param]
    ref = f"eo-vre/test-desktop-{request.param}:debian"
    dockerfile = f"FROM {desktop_image}\nUSER root\nRUN rm -f {files}\nUSER 1000\n"
    runner.docker("build", "-t", ref, "-", input=dockerfile, timeout=600)
    try:
        yield ref, named
    finally:
        runner.docker("rmi", "-f", ref, check=False)


def test_broken_desktop_fails_clearly(broken_desktop, workspace):
    """Without a working VNC server the scenario fails soon, naming what is missing; it does not time out."""
    ref, named = broken_desktop
    container = start_container(ref)
    out = runner.artifacts_dir(workspace, ref)
    try:
        started = time.monotonic()
        result = runner.run_scenario("desktop", container, out, timeout=600)
        seconds = time.monotonic() - started
    finally:
        container.remove()
    print(f"{ref}: failed after {seconds:.0f} s with: {result.error}")
    assert not result.ok, f"the scenario passed on {ref}"
    assert "no result within" not in (result.error or ""), f"it failed by timing out: {result.error}"
    assert named in (result.error or ""), f"the failure does not name {named}: {result.error}"
    assert seconds < 180, f"the failure took {seconds:.0f} s"
