"""Conventions every image keeps (hub contract, labels, embedded files), checked on the real base-geo image."""

from __future__ import annotations

import json

from vre import engine
from vre.build.hashing import lock_hash

from tests.testkit import ROOT


def run(ref: str, *cmd: str) -> str:
    return engine.docker("run", "--rm", ref, *cmd).stdout.decode()


def test_user_jovyan_uid_1000_gid_100(base_geo):
    assert run(base_geo, "id").startswith("uid=1000(jovyan) gid=100(users)")
    assert run(base_geo, "bash", "-c", "echo $HOME; touch $HOME/x && echo writable").split() == [
        "/home/jovyan", "writable"]


def test_entrypoint_start_and_jupyterlab_default(base_geo):
    config = engine.inspect(base_geo)["Config"]
    assert config["Entrypoint"] == ["tini", "-g", "--", "start"]
    assert config["Cmd"] == ["jupyter", "lab"]
    assert config["User"] == "1000"
    assert run(base_geo, "tail", "-n", "1", "/usr/local/bin/start").strip() == 'exec "$@"'
    assert run(base_geo, "printf", "%s|", "a b", "c") == "a b|c|"
    assert engine.docker("run", "--rm", base_geo, "sh", "-c", "exit 3", check=False).returncode == 3


def test_hub_and_lab_commands_present(base_geo):
    out = run(base_geo, "bash", "-c", "command -v jupyterhub-singleuser jupyter-lab; jupyter lab --version")
    lines = out.split()
    assert lines[0].endswith("/jupyterhub-singleuser") and lines[1].endswith("/jupyter-lab")
    assert lines[2].startswith("4.")


def test_oci_labels(base_geo, real_matrix):
    labels = engine.inspect(base_geo)["Config"]["Labels"]
    for key in ("source", "revision", "created", "title", "description"):
        assert labels[f"org.opencontainers.image.{key}"], key
    assert labels["io.eo-vre.lock-hash"] == lock_hash(real_matrix, real_matrix.targets["base-geo/debian"])
    assert labels["io.eo-vre.flavor"] == "debian" and labels["io.eo-vre.layers"] == "base-geo"


def test_spec_lock_and_manifest_embedded(base_geo):
    spec = ROOT / "environments" / "debian" / "base-geo"
    for name in ("apt.txt", "requirements.in", "requirements.txt", "constraints.txt"):
        assert run(base_geo, "cat", f"/opt/vre/layers/base-geo/{name}") == (spec / name).read_text(), name
    manifest = json.loads(run(base_geo, "cat", "/opt/vre/manifest.json"))
    assert manifest["layers"] == ["base-geo"] and manifest["flavor"] == "debian"
    assert "gdal-bin" in manifest["apt"] and "otb-bin" in manifest["apt"]
    assert manifest["pip"]["jupyterlab"].startswith("4.")
    assert manifest["pip"]["gdal"] == "3.6.2"  # Debian's GDAL, seen through the venv
