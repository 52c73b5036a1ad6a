"""Browser tests of the desktop and ide images (Debian's chromium + playwright-core, driven from the host).

Images: `--vre-image REF` (or $VRE_BROWSER_IMAGE) tests that image (its io.eo-vre.layers label says which scenarios
apply); otherwise desktop/debian and ide/debian are built through the factory (from BuildKit's cache when nothing
changed). Screenshots and result files land in .vre/artifacts/browser/<image>/.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # runner.py, next to this file

import runner  # noqa: E402

from vre import engine, matrix  # noqa: E402
from vre.build import BuildOptions, Progress, build  # noqa: E402

ROOT = runner.ROOT


def pytest_addoption(parser):
    parser.addoption("--vre-image", default=os.environ.get("VRE_BROWSER_IMAGE"),
                     help="run the browser tests against this image instead of building desktop/ide (debian)")


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a real browser (Chromium) against a running image")


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/browser/" in str(item.fspath):
            for name in ("browser", "docker"):
                item.add_marker(getattr(pytest.mark, name))


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
        layers = ((info.get("Config") or {}).get("Labels") or {}).get("io.eo-vre.layers", "").split()
        if layer not in layers:
            pytest.skip(f"{given} has no {layer} layer (layers: {' '.join(layers) or 'none'})")
        return given
    m = matrix.load(ROOT / "images" / "matrix.yaml")
    key = f"{layer}/debian"
    results = []
    if not build(m, m.select([layer], ["debian"]), BuildOptions(workdir=ROOT / ".vre"), Progress(), results):
        pytest.fail(f"{results[-1].key}: {results[-1].error}")
    return m.targets[key].ref


@pytest.fixture(scope="module")
def desktop_image(request, browser_tools) -> str:
    return image_for(request, "desktop")


@pytest.fixture(scope="module")
def ide_image(request, browser_tools) -> str:
    return image_for(request, "ide")

