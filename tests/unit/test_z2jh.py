"""deploy/z2jh/values.yaml, checked offline: each profile's user pod as KubeSpawner makes it is valid against the
Kubernetes API schema and keeps the images' start contract (no cluster runs here)."""

from __future__ import annotations


import pytest
import yaml
from tests.testkit import ROOT

from vre.deploy import z2jh

VALUES = ROOT / "deploy" / "z2jh" / "values.yaml"
PROFILES = {"base-geo": "base-geo:debian", "desktop": "desktop:debian", "ide": "ide:debian",
            "vre-cpu": "vre:debian-cpu", "vre-gpu": "vre:debian-gpu"}


@pytest.fixture(scope="module")
def pods() -> dict[str, z2jh.Pod]:
    return {pod.profile: pod for pod in z2jh.pods(VALUES, user="ada", groups=("team-01", "other"))}


def test_every_profile_valid(pods):
    assert sorted(pods) == sorted(PROFILES)
    for name, pod in pods.items():
        assert pod.errors == [], f"{name}: {pod.errors}"
        assert pod.manifest["spec"]["containers"][0]["image"].endswith("/eo-vre/" + PROFILES[name]), name


def test_start_contract(pods):
    """The image's entrypoint stays (no `command`), jupyterhub-singleuser is the command, jovyan's uid and gid, the
    home on the user's volume, /dev/shm in memory, the team's folder only."""
    for name, pod in pods.items():
        spec = pod.manifest["spec"]
        container = spec["containers"][0]
        assert "command" not in container and container["args"] == ["jupyterhub-singleuser"], name
        assert container["securityContext"]["runAsUser"] == 1000 and spec["securityContext"]["fsGroup"] == 100
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert set(mounts) == {"/home/jovyan", "/dev/shm", "/srv/teams/team-01"}, name
        assert mounts["/srv/teams/team-01"]["subPath"] == "team-01"
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes[mounts["/home/jovyan"]["name"]]["persistentVolumeClaim"]["claimName"] == "claim-ada"
        assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["JUPYTERHUB_DEFAULT_URL"] == "/lab" and env["JUPYTERHUB_USER"] == "ada"


def test_gpu_profile(pods):
    """Only the gpu profile asks for a GPU, on GPU nodes, tolerating their taint."""
    for name, pod in pods.items():
        spec = pod.manifest["spec"]
        limits = spec["containers"][0]["resources"]["limits"]
        if name == "vre-gpu":
            assert limits["nvidia.com/gpu"] == "1"
            assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
            assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
        else:
            assert "nvidia.com/gpu" not in limits and not spec.get("nodeSelector"), name


def test_invalid_values_caught(tmp_path):
    """The schema check is real: a node selector value that is not a string makes the pod invalid."""
    values = yaml.safe_load(VALUES.read_text())
    values["singleuser"]["profileList"][4]["kubespawner_override"]["node_selector"] = {"gpu": 1}
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    errors = {pod.profile: pod.errors for pod in z2jh.pods(path)}
    assert errors["vre-gpu"] and "nodeSelector" in errors["vre-gpu"][0], errors
    assert not any(errors[name] for name in errors if name != "vre-gpu")


def test_unknown_key_named(tmp_path):
    values = yaml.safe_load(VALUES.read_text())
    values["singleuser"]["lifecycleHooks"] = {}
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(z2jh.Z2jhError, match=r"values.yaml: singleuser.lifecycleHooks: not rendered offline"):
        z2jh.pods(path)
