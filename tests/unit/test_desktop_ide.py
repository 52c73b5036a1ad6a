"""The desktop and ide layers' specs, without building: matrix wiring, locks, and the npm locks they install from."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from vre import matrix
from vre.lock import debian as lock_pip
from vre.verify import browser
from vre.verify.browser import runner

from tests.testkit import ROOT

IDE = ROOT / "environments" / "debian" / "ide"
DESKTOP = ROOT / "environments" / "debian" / "desktop"


@pytest.fixture(scope="module")
def m() -> matrix.Matrix:
    return matrix.load(ROOT / "images" / "matrix.yaml")


@pytest.mark.parametrize("image", ["desktop", "ide"])
def test_debian_targets(m, image):
    target = m.targets[f"{image}/debian"]
    assert target.parent == "base-geo/debian"
    assert [layer.name for layer in target.layers] == [image]
    assert "conda" in m.spec.images[image].flavors, "the conda flavor of the image must stay in the matrix"


@pytest.mark.parametrize("image", ["desktop", "ide"])
def test_requirements_locks_fresh(m, image):
    assert lock_pip.stale(m, m.targets[f"{image}/debian"]) == []


def test_code_server_and_its_node_locked():
    lock = json.loads((IDE / "package-lock.json").read_text())
    packages = lock["packages"]
    package = json.loads((IDE / "package.json").read_text())
    code_server = packages["node_modules/code-server"]
    assert code_server["version"] == package["dependencies"]["code-server"]
    wanted_major = re.match(r"\D*(\d+)", code_server["engines"]["node"]).group(1)
    for arch in ("x64", "arm64"):  # both platforms of the matrix
        node = packages[f"node_modules/node-linux-{arch}"]
        assert node["version"].split(".")[0] == wanted_major, f"code-server wants node {wanted_major}: {node}"
        assert node["integrity"].startswith("sha512-") and node["cpu"] == arch
    assert packages["node_modules/npm"]["integrity"].startswith("sha512-")
    assert all(p.get("integrity") for k, p in packages.items() if k and not p.get("link") and not p.get("inBundle")), \
        "every locked package carries an integrity hash (bundled ones are covered by their bundle's)"


def test_qgis_comes_from_backports():
    lines = [line.split("#")[0].strip() for line in (DESKTOP / "apt.txt").read_text().splitlines()]
    qgis = [line for line in lines if line.startswith(("qgis", "python3-qgis", "libqgis"))]
    assert "qgis/bookworm-backports" in qgis
    assert all(line.endswith("/bookworm-backports") for line in qgis), qgis
    assert "bookworm-backports" in (DESKTOP / "apt-sources.list").read_text()


def test_browser_tests_lock_supports_debian_node():
    package = json.loads((ROOT / "src" / "vre" / "verify" / "browser" / "package.json").read_text())
    lock = json.loads((ROOT / "src" / "vre" / "verify" / "browser" / "package-lock.json").read_text())
    core = lock["packages"]["node_modules/playwright-core"]
    assert core["version"] == package["dependencies"]["playwright-core"]
    # Debian bookworm's nodejs is 18: the locked playwright-core must accept it
    assert core["engines"]["node"] == ">=18", core["engines"]


def test_jupyter_server_proxy_entry():
    config = json.loads((ROOT / "images" / "desktop" / "jupyter-server-proxy.json").read_text())
    qgis = config["ServerProxy"]["servers"]["qgis"]
    assert qgis["unix_socket"] is True, "the QGIS launcher helper must not open a TCP port"
    assert qgis["launcher_entry"]["title"] == "QGIS"


def test_browser_checks_ship_with_the_package():
    """`vre test` runs the browser checks from the package (package data), never from tests/."""
    assert browser.CHECKS.is_relative_to(Path(browser.__file__).parent)
    checks = {p.name for p in browser.CHECKS.glob("*.py")}
    assert checks == {"conftest.py", "test_base_geo.py", "test_desktop.py", "test_ide.py"}
    for name in ("eodag.mjs", "desktop.mjs", "ide.mjs", "lib.mjs", "package.json", "package-lock.json"):
        assert (runner.HERE / name).is_file(), name
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"*.mjs", "package.json", "package-lock.json", "checks/*.py"} <= set(package_data["vre.verify.browser"])


def test_browser_checks_run_on_the_images_that_add_their_layers(m):
    """`vre test` runs the browser checks where one applies, i.e. where the image adds base-geo, desktop or ide (the
    checks select on the io.eo-vre.layers label). deep-learning inherits base-geo but adds none of them: were it sent
    to the checks, all would skip, and a suite that passed nothing would leave the image unpublishable."""
    applies = {key: browser.needs_browser(target) for key, target in m.targets.items() if key.endswith("debian")
               or key.endswith("debian/cpu")}
    assert applies == {"base-geo/debian": True, "desktop/debian": True, "ide/debian": True,
                       "deep-learning/debian/cpu": False, "vre/debian/cpu": True}, applies
