"""Fixtures of the ide tests: a JupyterLab server as the image runs it."""
import secrets
from types import SimpleNamespace

import pytest

from vre_compat.helpers import free_port, python_tool, serve

# Capability marker of these tests (to move to tests/conftest.py CAPABILITIES; registering twice is harmless).
MARKERS = {"vscode": "code-server (VS Code in the browser) behind jupyter-vscode-proxy"}


def pytest_configure(config):
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


@pytest.fixture(scope="package")
def ide_lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("ide-lab")
    port, token = free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    cmd = [python_tool("jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    log = root / "lab.log"
    with serve(cmd, f"{url}/api/status?token={token}", log) as proc:
        yield SimpleNamespace(url=url, proc=proc, log=log, token=token, auth={"Authorization": f"token {token}"})
