"""Builds install exactly the apt locks: a version the mirror no longer has, or a file whose hash differs, fails the
build naming the package (and tags nothing); a built image holds exactly its locks' Debian packages."""

from __future__ import annotations

import json
import re

import pytest

from vre import engine, matrix
from vre.build import BuildOptions, build
from vre.lock import apt as lock_apt
from vre.progress import Progress
from vre.workspace import Workspace

from tests.testkit import ROOT, mini_repo


@pytest.mark.parametrize("tamper,expected", [
    ("version", r"the apt sources no longer have jq=1\.6-2\.1\+vre\.gone.*vre lock --update NAME"),
    ("sha256", r"jq .*: jq_.*\.deb does not have the sha256 of .*apt\.lock"),
])
def test_a_lock_the_mirror_cannot_satisfy_fails_the_build_naming_the_package(docker_engine, tmp_path, tamper,
                                                                              expected):
    name = f"test-apt-{tamper}"
    root = mini_repo(tmp_path, {name: {"apt.txt": "jq\n"}})
    lock = root / "environments" / "debian" / name / "apt.lock"
    text = lock.read_text()
    jq = next(p for p in lock_apt.read(lock)[1] if p.name == "jq" and p.arch == "amd64")
    bad = (jq.line().replace(f" {jq.version} ", " 1.6-2.1+vre.gone ") if tamper == "version"
           else jq.line().replace(jq.sha256, "0" * 64))
    lock.write_text(text.replace(jq.line(), bad))
    m = matrix.load(root / "images" / "matrix.yaml")
    target = m.targets[f"{name}/debian"]
    results: list = []
    assert not build(m, [target], BuildOptions(workspace=Workspace.of(root)), Progress(), results)
    assert re.search(expected, results[-1].error.replace("\n", " ")), results[-1].error
    assert engine.image_id(target.ref) is None


def test_the_image_holds_exactly_the_debian_packages_of_its_locks(base_geo, real_matrix):
    manifest = json.loads(engine.docker("run", "--rm", "--entrypoint", "cat", base_geo,
                                        "/opt/vre/manifest.json").stdout)
    arch = engine.docker("run", "--rm", "--entrypoint", "dpkg", base_geo,
                         "--print-architecture").stdout.decode().strip()
    locks = [ROOT / "images" / "foundation" / "apt.lock", ROOT / "environments" / "debian" / "base-geo" / "apt.lock"]
    locked = {p.name: p.version for lock in locks for p in lock_apt.read(lock)[1] if p.arch == arch}
    locked |= {lock_apt.STAND_IN + p.name: p.version
               for lock in locks for p in lock_apt.omitted(lock) if p.arch == arch}
    assert manifest["apt"] == locked
