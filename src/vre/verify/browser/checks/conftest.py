"""Browser tests of the images (Debian's chromium + playwright-core, driven from the host): base-geo's EODAG panel,
the desktop and the IDE.

Images: `--vre-image REF` (or $VRE_BROWSER_IMAGE) tests that image (its io.eo-vre.layers label says which scenarios
apply); otherwise base-geo/debian, desktop/debian and ide/debian are built through the factory (from BuildKit's cache
when nothing changed). Screenshots and result files land in .vre/artifacts/browser/<image>/.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from vre import engine, matrix
from vre.build import BuildOptions, build
from vre.progress import Progress
from vre.verify.browser import runner
from vre.workspace import Workspace


def pytest_addoption(parser):
    parser.addoption("--vre-image", default=os.environ.get("VRE_BROWSER_IMAGE"),
                     help="run the browser tests against this image instead of building base-geo/desktop/ide (debian)")
    parser.addoption("--vre-workspace", default=None,
                     help="the factory's working folder for screenshots and results [default: <rootdir>/.vre]")


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a real browser (Chromium) against a running image")
    config.addinivalue_line("markers", "docker: needs a running Docker engine")


def pytest_collection_modifyitems(items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in item.path.resolve().parents:
            for name in ("browser", "docker"):
                item.add_marker(getattr(pytest.mark, name))


@pytest.fixture(scope="session")
def root(request) -> Path:
    """The repository: pytest's rootdir (`vre test` passes --rootdir)."""
    return Path(request.config.rootpath)


@pytest.fixture(scope="session")
def workspace(request, root) -> Workspace:
    given = request.config.getoption("--vre-workspace")
    return Workspace(Path(given)) if given else Workspace.of(root)


@pytest.fixture(scope="session")
def browser_tools():
    try:
        engine.ping()
    except engine.EngineError as err:
        pytest.skip(f"no Docker engine here: {err}")
    try:
        runner.ensure_tools()
    except runner.BrowserSetupError as err:
        pytest.fail(str(err))


def image_for(request, layer: str) -> str:
    """The image to test for a layer: the one given on the command line (if it has the layer), or a fresh build."""
    given = request.config.getoption("--vre-image", default=None) or os.environ.get("VRE_BROWSER_IMAGE")
    if given:
        info = engine.inspect(given)
        if info is None:
            pytest.fail(f"image {given} not found")
        layers = engine.labels(info).get("io.eo-vre.layers", "").split()
        if layer not in layers:
            pytest.skip(f"{given} has no {layer} layer (layers: {' '.join(layers) or 'none'})")
        return given
    root = request.getfixturevalue("root")
    m = matrix.load(root / "images" / "matrix.yaml")
    key = f"{layer}/debian"
    results = []
    options = BuildOptions(workspace=request.getfixturevalue("workspace"))
    if not build(m, m.select([layer], ["debian"]), options, Progress(), results):
        pytest.fail(f"{results[-1].key}: {results[-1].error}")
    return m.targets[key].ref


@pytest.fixture(scope="module")
def base_geo_image(request, browser_tools) -> str:
    return image_for(request, "base-geo")


@pytest.fixture(scope="module")
def desktop_image(request, browser_tools) -> str:
    return image_for(request, "desktop")


@pytest.fixture(scope="module")
def ide_image(request, browser_tools) -> str:
    return image_for(request, "ide")

