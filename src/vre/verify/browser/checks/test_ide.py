"""The ide image in a real browser: the VS Code tile opens code-server's workbench on the user's home."""
from __future__ import annotations

import pytest

from vre.verify.browser import runner

MARKER = "eo-vre-browser-test.txt"


@pytest.fixture(scope="module")
def ide_run(ide_image, workspace):
    marker = ["sh", "-c", f"echo 'written by the browser checks' > {runner.HOME}/{MARKER}"]
    with runner.scenario_in_container("ide", ide_image, workspace, prepare=marker, home=runner.HOME,
                                      marker=MARKER) as (container, result, _):
        yield container, result


def test_ide_scenario(ide_run):
    container, result = ide_run
    assert result.ok, (f"{result.error}\nsteps:\n{result.summary()}\nscreenshots: {result.screenshots}\n"
                       f"container log:\n{container.log_tail(80)}")
    print(f"workbench {result.facts.get('url')}, title {result.facts.get('title')!r}; screenshots {result.screenshots}")


def test_only_jupyter_listens(ide_run):
    """code-server listens on a unix socket: the only TCP port in the container is Jupyter's."""
    container, _ = ide_run
    assert container.listening_ports() == [8888], f"listening TCP ports: {container.listening_ports()}"
