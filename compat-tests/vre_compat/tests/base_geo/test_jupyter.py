"""JupyterLab serves as the current user, starts kernels, and has the image's extensions enabled."""
import json
import os
import re

import pytest

from vre_compat.helpers import http, jupyter_server, python_tool, run_ok

pytestmark = [pytest.mark.base_geo, pytest.mark.jupyter]


def test_status(lab):
    status, body = http(f"{lab.url}/api/status", headers=lab.auth)
    assert status == 200, f"/api/status answered {status}: {body[:300]}"
    assert "started" in json.loads(body)
    assert http(f"{lab.url}/api/status")[0] == 403, "the server answers without its token"


def test_runs_as_current_user(lab):
    with open(f"/proc/{lab.proc.pid}/status") as status:
        uid = int(next(line for line in status if line.startswith("Uid:")).split()[1])
    assert uid == os.getuid(), f"server uid {uid}, tests run as {os.getuid()}"


def test_lab_page(lab):
    status, body = http(f"{lab.url}/lab", headers=lab.auth)
    assert status == 200, f"/lab answered {status}"
    match = re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', body, re.S)
    assert match, "no jupyter-config-data in the /lab page"
    config = json.loads(match.group(1))
    names = {ext["name"] for ext in config.get("federated_extensions", [])} - set(config.get("disabledExtensions", []))
    assert {"eodag-labextension", "dask-labextension"} <= names, f"the lab page loads extensions {sorted(names)}"


def test_lab_neither_asks_for_news_nor_checks_for_updates(lab):
    """JupyterLab's news (jupyter.org) and update check (PyPI) are off: no question to each new user, nothing to reach
    offline; a user can still turn them on."""
    status, body = http(f"{lab.url}/lab/api/settings/@jupyterlab/apputils-extension:notification", headers=lab.auth)
    assert status == 200, f"settings answered {status}: {body[:200]}"
    defaults = {name: spec.get("default") for name, spec in json.loads(body)["schema"]["properties"].items()}
    assert (defaults.get("fetchNews"), defaults.get("checkForUpdates")) == ("false", False), defaults


def test_kernel_through_server(lab):
    status, body = http(f"{lab.url}/api/kernels", method="POST", headers=lab.auth, timeout=60)
    assert status == 201, f"starting a kernel answered {status}: {body[:500]}"
    kernel = json.loads(body)["id"]
    assert http(f"{lab.url}/api/kernels/{kernel}", method="DELETE", headers=lab.auth, timeout=30)[0] == 204


def test_notebook_command_serves_jupyterlab(tmp_path):
    """repo2docker (a local Binder run) starts every image it builds with `jupyter notebook ...
    --NotebookApp.default_url=/lab`: the image's jupyter-notebook serves JupyterLab with those options."""
    with jupyter_server(tmp_path, app="notebook") as server:
        status, body = http(f"{server.url}/lab", headers=server.auth)
    assert status == 200 and "jupyter-config-data" in body, f"`jupyter notebook` served /lab with {status}"


def test_jupyterhub_singleuser():
    run_ok([python_tool("jupyterhub-singleuser"), "--version"])


def extension_list(*args) -> str:
    proc = run_ok([python_tool("jupyter"), *args])
    return re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # without colours


def merged_states(pairs) -> dict:
    """{name: state}; an extension listed in several config/data directories counts as disabled if any says so
    (which one wins depends on venv/user precedence: the running server's log is the final word)."""
    states = {}
    for name, state in pairs:
        if not states.get(name, "").startswith("disabled"):
            states[name] = state
    return states


@pytest.fixture(scope="module")
def labextensions():
    # lines like "        eodag-labextension v5.3.1 enabled OK (python, eodag_labextension)"
    text = extension_list("labextension", "list")
    found = re.findall(r"^\s+(\S+) v\S+ (enabled|disabled) (\S+)", text, re.M)
    return merged_states((name, f"{state} {check}") for name, state, check in found)


@pytest.fixture(scope="module")
def server_extensions():
    # "    jupyter_server_proxy enabled", then "      jupyter_server_proxy 4.6.0 OK" when it imports
    text = extension_list("server", "extension", "list")
    importable = set(re.findall(r"^\s+(\S+) \S*\s*OK\s*$", text, re.M))
    states = merged_states(re.findall(r"^\s+(\S+) (enabled|disabled)\s*$", text, re.M))
    return {name: f"{state} {'OK' if name in importable else 'not importable'}" for name, state in states.items()}


@pytest.mark.parametrize("name", [
    pytest.param("eodag-labextension", marks=pytest.mark.eodag),
    pytest.param("dask-labextension", marks=pytest.mark.dask),
    pytest.param("@jupyterlab/git", marks=pytest.mark.history),
    pytest.param("nbdime-jupyterlab", marks=pytest.mark.history),
    pytest.param("jupyter-leaflet", marks=pytest.mark.tiles),
    "@jupyterhub/jupyter-server-proxy",
])
def test_labextension_enabled(labextensions, name):
    assert labextensions.get(name) == "enabled OK", f"{name}: {labextensions.get(name, 'not installed')}"


@pytest.mark.parametrize("name", [
    pytest.param("eodag_labextension", marks=pytest.mark.eodag),
    pytest.param("dask_labextension", marks=pytest.mark.dask),
    pytest.param("jupyterlab_git", marks=pytest.mark.history),
    pytest.param("nbdime", marks=pytest.mark.history),
    "jupyter_server_proxy",
])
def test_server_extension_enabled(server_extensions, lab, name):
    assert server_extensions.get(name) == "enabled OK", f"{name}: {server_extensions.get(name, 'not configured')}"
    log = lab.log.read_text()
    assert f"{name} | extension was successfully loaded" in log, \
        f"the running JupyterLab did not load {name}:\n" + "\n".join(line for line in log.splitlines() if name in line)
