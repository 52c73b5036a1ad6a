"""The hub contract, end to end: JupyterHub spawns each image as a user server (DockerSpawner, the image's `start`
entrypoint, jupyterhub-singleuser), and through the hub's public proxy a logged-in user reaches JupyterLab, runs
code in a kernel, opens the desktop (noVNC) and the IDE (code-server), and shares a team folder with another user.

Spawn-to-ready times are printed and written to .vre/bench/hub.json; they are never asserted.
"""

from __future__ import annotations

import json
import re
import stat
import time
from urllib.parse import urljoin, urlparse

import pytest
from tests.e2e.hub.hubclient import IMAGES, TEAM_MOUNT, USERS_GID, first_message, run_code

pytestmark = [pytest.mark.hub, pytest.mark.docker]

# What the kernel reports about where it runs.
PROBE = """
import json, os, sys
from osgeo import gdal
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "user": os.environ.get("JUPYTERHUB_USER"),
                  "prefix": sys.prefix, "gdal": gdal.__version__,
                  "layers": open("/opt/vre/layers.txt").read().split()}))
"""


@pytest.fixture(scope="module")
def sessions(hub):
    """A logged-in browser-like session per user (cookies of the hub and, once visited, of the user's server)."""
    return {}


def session_of(hub, sessions, image: str):
    server = hub.server(image)
    if server.user not in sessions:
        sessions[server.user] = hub.login(server.user)
    return server, sessions[server.user]


def lab_config(html: str) -> dict:
    match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"not a JupyterLab page: {html[:300]}"
    return json.loads(match.group(1))


@pytest.mark.parametrize("image", list(IMAGES))
def test_lab_through_the_proxy(hub, sessions, image):
    """/user/<name>/lab answers JupyterLab for that user, after the OAuth round trip between server and hub."""
    server, session = session_of(hub, sessions, image)
    page = session.get(hub.user_url(server.user, "lab"), timeout=120)
    assert page.status_code == 200, f"/user/{server.user}/lab answered {page.status_code}: {page.text[:300]}"
    assert urlparse(page.url).path == f"/user/{server.user}/lab", f"ended at {page.url}, not at the lab"
    config = lab_config(page.text)
    assert config.get("appName") == "JupyterLab", config.get("appName")
    assert config["baseUrl"] == f"/user/{server.user}/", config["baseUrl"]
    assert config.get("hubUser") == server.user, {k: v for k, v in config.items() if k.startswith("hub")}


@pytest.mark.parametrize("image", list(IMAGES))
def test_hub_and_singleuser_versions(hub, sessions, image):
    """The image's jupyterhub-singleuser has the hub's major version (a mismatch may loop on authentication)."""
    server, session = session_of(hub, sessions, image)
    hub_version = hub.client.get(f"{hub.url}/hub/api/", timeout=60).json()["version"]
    answer = session.get(hub.user_url(server.user, "api/status"), timeout=60)
    assert answer.status_code == 200, f"/user/{server.user}/api/status: {answer.status_code} {answer.text[:300]}"
    singleuser = answer.headers.get("X-JupyterHub-Version")
    assert singleuser, "the user server sent no X-JupyterHub-Version header: not jupyterhub-singleuser?"
    print(f"hub {hub_version}, {image} singleuser {singleuser}")
    assert singleuser.split(".")[0] == hub_version.split(".")[0], \
        f"{server.ref} runs jupyterhub-singleuser {singleuser}, the hub is {hub_version}"


@pytest.mark.parametrize("image", list(IMAGES))
def test_kernel_runs_in_the_image(hub, sessions, image):
    """Code sent through the proxy runs in a kernel of this user's container, as jovyan, in the image's Python."""
    server, session = session_of(hub, sessions, image)
    session.get(hub.user_url(server.user, "lab"), timeout=120)  # sets the server's _xsrf cookie, as a browser does
    facts = json.loads(run_code(hub, session, server.user, PROBE).strip().splitlines()[-1])
    print(f"{image}: {facts}")
    assert (facts["uid"], facts["gid"]) == (1000, USERS_GID), facts
    assert facts["user"] == server.user, facts
    assert facts["prefix"] == "/srv/venv", facts
    assert image in facts["layers"], f"{server.ref}: layers {facts['layers']}"


def load_first_script(session, page) -> None:
    """The page's first script loads from under the same prefix: the app works behind /user/<name>/..."""
    src = re.search(r'<script[^>]+src="([^"]+)"', page.text)
    assert src, f"no script in {page.url}: {page.text[:300]}"
    url = urljoin(page.url, src.group(1))
    asset = session.get(url, timeout=120)
    assert asset.status_code == 200 and "javascript" in asset.headers.get("Content-Type", ""), \
        f"{url}: {asset.status_code} {asset.headers.get('Content-Type')} {asset.text[:200]}"


def test_desktop_through_the_proxy(hub, sessions):
    """/user/<name>/desktop/ is the noVNC client, and its websocket reaches the VNC server (RFB greeting)."""
    server, session = session_of(hub, sessions, "desktop")
    page = session.get(hub.user_url(server.user, "desktop/"), timeout=120)
    assert page.status_code == 200 and 'id="status"' in page.text and "noVNC" in page.text, \
        f"/user/{server.user}/desktop/ answered {page.status_code}, not the noVNC client: {page.text[:300]}"
    load_first_script(session, page)
    greeting = first_message(session, hub.user_url(server.user, "desktop-websockify/"))
    assert greeting.startswith(b"RFB 003."), f"desktop-websockify/ sent {greeting[:40]!r}, not an RFB greeting"


def test_vscode_through_the_proxy(hub, sessions):
    """/user/<name>/vscode/ starts code-server and serves its workbench, opened on the user's home."""
    server, session = session_of(hub, sessions, "ide")
    url = hub.user_url(server.user, "vscode/")
    deadline = time.monotonic() + 300  # the first request starts code-server
    while True:
        page = session.get(url, timeout=120)
        if page.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert page.status_code == 200, f"{url} answered {page.status_code}: {page.text[:300]}"
    assert "vscode-workbench-web-configuration" in page.text, f"{page.url} is not the VS Code workbench: " \
                                                              f"{page.text[:300]}"
    assert urlparse(page.url).path.startswith(f"/user/{server.user}/vscode/"), page.url
    assert re.search(r"folder=(%2F|/)home(%2F|/)jovyan", page.url), f"the workbench opens {page.url}"
    load_first_script(session, page)


WRITE = f"""
import os, stat
os.makedirs("{TEAM_MOUNT}/notes", exist_ok=True)
with open("{TEAM_MOUNT}/notes/plan.txt", "w") as f:
    f.write("from alice\\n")
for path in ("{TEAM_MOUNT}", "{TEAM_MOUNT}/notes", "{TEAM_MOUNT}/notes/plan.txt"):
    s = os.stat(path)
    print(path, oct(stat.S_IMODE(s.st_mode)), s.st_uid, s.st_gid)
"""
APPEND = f"""
with open("{TEAM_MOUNT}/notes/plan.txt", "a") as f:
    f.write("from bob\\n")
print(open("{TEAM_MOUNT}/notes/plan.txt").read(), end="")
"""
READ = f'print(open("{TEAM_MOUNT}/notes/plan.txt").read(), end="")'


def test_team_folder_shared(hub, sessions, team_dir):
    """Two users' servers (different images) share the team folder: A writes, B reads and appends, A sees it."""
    a, a_session = session_of(hub, sessions, "base-geo")
    b, b_session = session_of(hub, sessions, "ide")
    for user, session in ((a.user, a_session), (b.user, b_session)):
        session.get(hub.user_url(user, "lab"), timeout=120)
    modes = {line.split()[0]: line.split()[1:] for line in run_code(hub, a_session, a.user, WRITE).splitlines()}
    print(f"as {a.user}: {modes}")
    # setgid on the team folder: what is made in it keeps the team's group and, for folders, the setgid bit
    mode, uid, gid = modes[f"{TEAM_MOUNT}/notes"]
    assert int(mode, 8) & stat.S_ISGID and int(gid) == USERS_GID, modes
    assert run_code(hub, b_session, b.user, APPEND) == "from alice\nfrom bob\n"
    assert run_code(hub, a_session, a.user, READ) == "from alice\nfrom bob\n"
    # the host folder holds what the containers wrote, owned by the servers' uid
    host_file = team_dir / "notes" / "plan.txt"
    assert host_file.read_text() == "from alice\nfrom bob\n"
    assert (host_file.stat().st_uid, host_file.stat().st_gid) == (1000, USERS_GID)


def test_stop_removes_the_server(hub):
    """Stopping through the hub API removes the user's container (DockerSpawner.remove): nothing is left behind."""
    spawned = [hub.server(image) for image in IMAGES]
    assert sorted(hub.containers()) == sorted(f"{hub.prefix}-{s.user}" for s in spawned), hub.containers()
    for server in spawned:
        hub.stop(server.user)
        hub.servers.pop(server.image)
    left = hub.containers()
    assert left == [], f"containers left after the stop: {left}"
    print("spawn-to-ready: " + ", ".join(f"{s.image} {s.seconds:.1f} s" for s in spawned))
