"""`vre export`: its errors name what is wrong and leave nothing behind; what it writes for ch-run."""

from __future__ import annotations

import os
import shutil

import pytest
from typer.testing import CliRunner

from vre.cli import app
from vre.publish import export


def test_ch_environment_keeps_the_image_env_but_not_home():
    env = ["PATH=/srv/venv/bin:/usr/bin", "HOME=/home/jovyan", "GDAL_DATA=/usr/share/gdal", "VRE_VARIANT="]
    assert export.ch_environment(env) == "PATH=/srv/venv/bin:/usr/bin\nGDAL_DATA=/usr/share/gdal\nVRE_VARIANT=\n"


def test_default_output_names():
    assert str(export.default_output("eo-vre/base-geo:debian", "squashfs")) == "eo-vre-base-geo-debian.sqfs"
    assert str(export.default_output("eo-vre/base-geo:debian", "charliecloud")) == "eo-vre-base-geo-debian"


def test_unknown_format_is_refused(tmp_path):
    result = CliRunner().invoke(app, ["export", "eo-vre/base-geo:debian", "--to", "tarball",
                                          "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown export format 'tarball'" in result.output
    assert "charliecloud, squashfs, podman, sif" in result.output
    assert not any(tmp_path.iterdir())


def test_missing_image_is_named(docker_engine, tmp_path):
    result = CliRunner().invoke(app, ["export", "eo-vre-test/no-such-image:x", "--to", "podman",
                                          "-o", str(tmp_path / "x.tar")])
    assert result.exit_code == 2 and "no image eo-vre-test/no-such-image:x" in result.output, result.output
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(shutil.which("apptainer") is not None, reason="apptainer is installed here")
def test_sif_needs_apptainer(base_geo, tmp_path):
    result = CliRunner().invoke(app, ["export", base_geo, "--to", "sif", "-o", str(tmp_path / "x.sif")])
    assert result.exit_code == 2 and "`apptainer` not found" in result.output, result.output
    assert not any(tmp_path.iterdir())


def test_existing_output_is_kept(base_geo, tmp_path):
    out = tmp_path / "image.tar"
    out.write_text("mine")
    result = CliRunner().invoke(app, ["export", base_geo, "--to", "podman", "-o", str(out)])
    assert result.exit_code == 2 and "exists" in result.output
    assert out.read_text() == "mine"


def test_failed_export_leaves_nothing(base_geo, tmp_path, monkeypatch):
    """Unpacking failing midway (here: a tar that exits 1) publishes no folder and leaves no staging folder."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "tar").write_text("#!/bin/sh\necho 'tar: No space left on device' >&2\nexit 1\n")
    (fake / "tar").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    out_dir = tmp_path / "out"
    result = CliRunner().invoke(app, ["export", base_geo, "--to", "charliecloud", "-o", str(out_dir / "img")])
    assert result.exit_code == 1 and "tar: No space left on device" in result.output, result.output  # work failed
    assert list(out_dir.iterdir()) == []
