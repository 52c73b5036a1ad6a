"""`vre test`: the compat suite runs inside the image, passes on base-geo, and fails on a broken image."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner
from tests.testkit import ROOT, build_or_fail, heavy, needs_all_images

from vre import cli, engine, matrix
from vre.verify.compat import run_compat
from vre.workspace import Workspace


def test_vre_test_passes_on_base_geo(base_geo):
    result = CliRunner().invoke(cli.app, ["test", "base-geo", "--flavor", "debian"])
    assert result.exit_code == 0, result.output
    assert re.search(r"base-geo\s*│\s*debian\s*│.*tests passed", result.output)


def test_compat_suite_runs_with_plain_docker_run(base_geo):
    proc = engine.docker("run", "--rm", base_geo, "vre-compat", "-q", "-k", "gdal", check=False)
    assert proc.returncode == 0, proc.stdout.decode()[-3000:]


def test_removing_otb_fails_the_otb_tests(base_geo, tmp_path):
    """A deliberately broken image (OTB's applications removed) must fail, naming OTB."""
    broken = "eo-vre-test/broken-otb:latest"
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {base_geo}\nUSER root\nRUN rm -rf /usr/lib/*/otb/applications /usr/bin/otbcli*\n"
                          "USER 1000\n")
    engine.docker("build", "-q", "-t", broken, str(tmp_path))
    try:
        result = run_compat(broken, Workspace(tmp_path), pytest_args=["-m", "otb"])
        assert result.exit_code != 0 and result.failed > 0
        log = result.log.read_text()
        assert re.search(r"FAILED .*otb", log, re.I), log[-3000:]
    finally:
        engine.docker("image", "rm", "-f", broken, check=False)


_REAL = matrix.load(ROOT / "images" / "matrix.yaml")
DEBIAN = [pytest.param(key, marks=[needs_all_images] if heavy(t, _REAL) else [])
          for key, t in _REAL.targets.items() if t.flavor == "debian"]


@pytest.mark.parametrize("key", DEBIAN)
def test_every_debian_image_passes_its_compat_suite(docker_engine, real_matrix, key):
    """Each image runs its own layer's tests and its ancestors' (the suite selects by /opt/vre/layers.txt)."""
    ref = build_or_fail(real_matrix, [key], ROOT / ".vre")[key]
    result = run_compat(ref, Workspace.of(ROOT))
    assert result.ok, f"{key}: {result.failed} failed, {result.passed} passed; log {result.log}"
    layers = engine.docker("run", "--rm", ref, "cat", "/opt/vre/layers.txt").stdout.decode().split()
    assert layers == [layer.name for layer in real_matrix.image_layers(key)]
