"""`vre extend` on the conda flavor, against local channels (conda-forge is not reachable here): the extension's
environment.yml solved on top of the base image's conda lock (every base package pinned to its build), the conflicts
refused naming both packages, and an extension built on a real conda image made by the factory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.testkit import ALL_IMAGES
from tests.testkit.conda import conda_repo, env_yml, make_channel
from vre import engine
from vre.build import BuildOptions, build
from vre.extend import ExtendError, conda
from vre.extend import folder as folder_mod
from vre.extend.baseimage import BaseImage
from vre.extend.build import ExtendOptions, extend
from vre.lock.conda import lockfile
from vre.lock.conda.lock import lock as lock_matrix
from vre.progress import Progress
from vre.workspace import Workspace


def base_of(tmp_path: Path, channel: Path, *deps: str) -> BaseImage:
    """A conda base as an image describes itself (/opt/vre/layers/<layer>/ with its lock), without building it."""
    m = conda_repo(tmp_path / "repo", {"geo": {}}, {"geo": {"environment.yml": env_yml(*deps)}}, [channel.as_uri()])
    lock_matrix(m, m.targets["geo/conda"], check=False, update=[])
    vre_dir = tmp_path / "vre"
    shutil.copytree(m.root / "environments" / "conda" / "geo", vre_dir / "layers" / "geo")
    return BaseImage(ref="eo-vre-test/geo:conda", image_id="sha256:" + "0" * 64, flavor="conda", layers=["geo"],
                     vre_dir=vre_dir, apt={}, pip={}, conda={}, labels={"io.eo-vre.image": "geo"})


def extension(tmp_path: Path, *deps: str) -> folder_mod.Folder:
    path = tmp_path / "my-ext"
    path.mkdir()
    (path / "environment.yml").write_text(env_yml(*deps))
    return folder_mod.load(path, "conda", ["geo"])


def builds(path: Path) -> dict[str, str]:
    return lockfile.pins(lockfile.read(path), "linux-64")


def test_the_extension_is_solved_on_the_base_lock_and_kept_while_nothing_changes(tmp_path, pool):
    base = base_of(tmp_path, pool, "dragdep <2", "libfoo")
    folder = extension(tmp_path, "geotool")
    changes = conda.lock(folder, base, tmp_path / "solve")
    assert any(c.startswith("+ geotool 1.0") for c in changes), changes
    locked, parent = builds(folder.path / "conda-lock.yml"), builds(base.layer_dir("geo") / "conda-lock.yml")
    assert set(parent.items()) < set(locked.items()), "a base package moved or went missing in the extension's lock"
    assert locked["geotool"].startswith("1.0 ")  # the version that keeps the base's dragdep 1.0
    assert (folder.path / "conda-linux-64.lock").is_file()
    assert conda.lock(folder, base, tmp_path / "again") == []  # inputs unchanged: the lock is kept


def test_a_dependency_that_needs_another_base_version_is_refused_naming_both(tmp_path, pool):
    base = base_of(tmp_path, pool, "dragdep <2")
    folder = extension(tmp_path, "geotool >=1.1")
    with pytest.raises(ExtendError) as refused:
        conda.lock(folder, base, tmp_path / "solve")
    message = " ".join(str(refused.value).split())
    assert "geotool 1.1 needs dragdep >=2, but geo locked dragdep 1.0" in message
    assert not (folder.path / "conda-lock.yml").exists()


def test_a_spec_for_another_version_of_a_base_package_is_refused_naming_both(tmp_path, pool):
    base = base_of(tmp_path, pool, "dragdep <2")
    folder = extension(tmp_path, "dragdep >=2")
    with pytest.raises(ExtendError) as refused:
        conda.lock(folder, base, tmp_path / "solve")
    message = " ".join(str(refused.value).split())
    assert "my-ext/environment.yml asks for dragdep >=2, but geo locked dragdep 1.0" in message


@pytest.mark.build
@pytest.mark.skipif(not ALL_IMAGES, reason="a conda image and its extension built from a local channel (~2.5 min on a "
                                           "2-core machine): set VRE_TEST_ALL=1")
def test_an_extension_of_a_conda_image_installs_only_what_it_adds(tmp_path, pool, docker_engine):
    channel = make_channel(pool, tmp_path / "channel")
    m = conda_repo(tmp_path / "repo", {"parent": {}}, {
        "parent": {"environment.yml": env_yml("python", "pip", "setuptools", "wheel", "vre-config", "libfoo",
                                            "dragdep <2", "activated")}}, [channel.as_uri()])
    target = m.targets["parent/conda"]
    lock_matrix(m, target, check=False, update=[])
    results = []
    workspace = Workspace(tmp_path / ".vre")
    assert build(m, [target], BuildOptions(channel=channel, workspace=workspace), Progress(), results), \
        results[-1].error
    base = results[-1].ref
    path = tmp_path / "geo-extra"
    path.mkdir()
    (path / "environment.yml").write_text(env_yml("geotool"))
    (path / "apt.txt").write_text("jq\n")
    tag = f"{base.split('/')[0]}-test/geo-extra:conda"
    # The fixture layers have no compat tests (the suite selects none): built and described, not tested here.
    result = extend(base, path, ExtendOptions(tag=tag, channel=channel, test=False, workspace=workspace))
    try:
        manifest = json.loads(engine.docker("run", "--rm", tag, "cat", "/opt/vre/manifest.json").stdout)
        parent = json.loads(engine.docker("run", "--rm", base, "cat", "/opt/vre/manifest.json").stdout)
        assert set(parent["conda"].items()) < set(manifest["conda"].items())
        assert manifest["conda"]["geotool"].startswith("1.0=") and "jq" in manifest["apt"]
        assert manifest["layers"] == ["parent", "geo-extra"]
        notes = (result.release / "release-notes.md").read_text()
        assert "| geotool | ➕ added |" in notes and "downgraded" not in notes and "removed" not in notes
    finally:
        engine.docker("rmi", tag, check=False)
