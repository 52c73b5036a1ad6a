"""A real conda image built by the factory: a parent and a child layer, each installed from its lock (made here
against a local channel the factory hands to the build), with the locked packages and versions inside."""

from __future__ import annotations

import json

import pytest
from tests.testkit.conda import conda_repo, env_yml, make_channel
from conda_lock.lockfile import parse_conda_lock_file

from vre import engine
from vre.build import BuildOptions, build
from vre.progress import Progress
from vre.workspace import Workspace
from vre.lock.conda.lock import lock

ACTIVATION = {"PROJ_DATA": "/srv/conda/envs/notebook/share/proj", "GDAL_DATA": "/srv/conda/envs/notebook/share/gdal",
              "OTB_APPLICATION_PATH": "/srv/conda/envs/notebook/lib/otb/applications",
              "QGIS_PREFIX_PATH": "/srv/conda/envs/notebook"}


def run(ref: str, *command: str) -> str:
    return engine.docker("run", "--rm", ref, *command).stdout.decode()


def locked(m, folder: str) -> dict[str, str]:
    lockfile = parse_conda_lock_file(m.root / "environments" / "conda" / folder / "conda-lock.yml")
    return {p.name: f"{p.version}={p.build}" for p in lockfile.package if p.platform == "linux-64"}


@pytest.mark.build
def test_factory_image_holds_exactly_its_locks(tmp_path, pool, docker_engine):
    channel = make_channel(pool, tmp_path / "channel")
    # Not "base": eo-vre/base is the repository of the bootstrapped base images.
    m = conda_repo(tmp_path / "repo", {"parent": {}, "child": {"parent": "parent"}}, {
        "parent": {"environment.yml": env_yml("python", "pip", "setuptools", "wheel", "vre-config", "libfoo",
                                            "platlib", "activated")},
        "child": {"environment.yml": env_yml("geotool")}}, [channel.as_uri()])
    targets = [m.targets["parent/conda"], m.targets["child/conda"]]
    for target in targets:
        lock(m, target, check=False, update=[])
    results = []
    ok = build(m, targets, BuildOptions(channel=channel, workspace=Workspace(tmp_path / ".vre")), Progress(), results)
    assert ok, f"{results[-1].key}: {results[-1].error}"
    refs = {r.key: r.ref for r in results}

    for key, folder in (("parent/conda", "parent"), ("child/conda", "child")):
        manifest = json.loads(run(refs[key], "cat", "/opt/vre/manifest.json"))
        assert manifest["conda"] == locked(m, folder), f"{key}: the image's conda packages are not its lock's"
        assert manifest["flavor"] == "conda"
    assert set(locked(m, "parent").items()) < set(locked(m, "child").items())  # the child kept its parent's builds
    # The compat suite went in with the environment's pip; activation variables hold in a plain `docker run`.
    child = refs["child/conda"]
    assert "import ok" in run(child, "python", "-c", "import vre_compat; print('import ok')")
    env = dict(line.split("=", 1) for line in run(child, "env").splitlines() if "=" in line)
    assert {k: env.get(k) for k in ACTIVATION} == ACTIVATION
    assert env["PATH"].startswith("/srv/conda/envs/notebook/bin:")
    assert run(child, "cat", "/srv/conda/envs/notebook/share/platlib/platform").strip() == "linux-64"
    # The fixture's activation script sets a variable the image's ENV lacks: the build log says so.
    log = next(r.log for r in results if r.key == "parent/conda").read_text()
    assert "activation sets VRE_TEST_DATA=/srv/conda/envs/notebook/share/activated" in log
