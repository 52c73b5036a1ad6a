"""Debian-flavor locks (uv): layered on the parent's pins, stale detection, conflicts, targeted updates."""

from __future__ import annotations

import pytest

from vre import matrix
from vre.build import BuildOptions, build_target
from vre.lock import debian as lock_pip
from vre.progress import Progress
from vre.workspace import Workspace

from tests.testkit import mini_repo


def test_committed_debian_locks_are_fresh(real_matrix):
    for target in real_matrix.targets.values():
        if target.flavor == "debian":
            assert lock_pip.stale(real_matrix, target) == [], target.key


@pytest.fixture
def repo(tmp_path):
    root = mini_repo(tmp_path, {
        "test-parent": {"requirements.in": "six<1.17\npackaging<24\n"},
        "test-child": {"requirements.in": "six\nidna\n"},
    }, parents={"test-child": "test-parent"})
    return root, matrix.load(root / "images" / "matrix.yaml")


def locked(m, key):
    return lock_pip.pins((m.targets[key].layers[0].spec_dir / "requirements.txt").read_text())


def test_child_only_adds_packages_and_keeps_parent_pins(repo):
    _, m = repo
    lock_pip.lock(m, m.targets["test-parent/debian"], check=False, update=[])
    parent = locked(m, "test-parent/debian")
    assert parent["six"].startswith("1.16") and parent["packaging"].startswith("23.")
    reports = lock_pip.lock(m, m.targets["test-child/debian"], check=False, update=[])
    assert reports[0].status == "locked" and any(c.startswith("+ idna ") for c in reports[0].changes)
    child = locked(m, "test-child/debian")
    assert "idna" in child and "six" not in child and "packaging" not in child
    assert "--hash=sha256:" in (m.targets["test-child/debian"].layers[0].spec_dir / "requirements.txt").read_text()


def test_stale_lock_is_found_and_refused_by_builds(repo):
    root, m = repo
    parent = m.targets["test-parent/debian"]
    lock_pip.lock(m, parent, check=False, update=[])
    assert lock_pip.stale(m, parent) == []
    (parent.layers[0].spec_dir / "requirements.in").write_text("six<1.17\npackaging<24\nidna\n")
    assert lock_pip.stale(m, parent) == ["environments/debian/test-parent/requirements.txt: stale"]
    before = (parent.layers[0].spec_dir / "requirements.txt").read_text()
    assert lock_pip.lock(m, parent, check=True, update=[])[0].status == "stale"
    assert (parent.layers[0].spec_dir / "requirements.txt").read_text() == before  # --check writes nothing
    # A parent lock that changed makes the child's lock stale too.
    child = m.targets["test-child/debian"]
    assert lock_pip.stale(m, child) == ["environments/debian/test-child/requirements.txt: missing"]
    result = build_target(m, parent, BuildOptions(workspace=Workspace(root / ".vre")), Progress())
    assert result.status == "failed" and "stale" in result.error and "vre lock" in result.error


def test_conflict_with_parent_names_the_package(repo):
    _, m = repo
    lock_pip.lock(m, m.targets["test-parent/debian"], check=False, update=[])
    child = m.targets["test-child/debian"]
    (child.layers[0].spec_dir / "requirements.in").write_text("six>=1.17\n")
    with pytest.raises(lock_pip.LockError) as err:
        lock_pip.lock(m, child, check=False, update=[])
    msg = str(err.value)
    assert "environments/debian/test-child/requirements.in" in msg and "six" in msg and "test-parent" in msg


@pytest.fixture
def loosened(repo):
    """The parent locked, then its requirements loosened so that both packages could move: (matrix, target, pins)."""
    _, m = repo
    parent = m.targets["test-parent/debian"]
    lock_pip.lock(m, parent, check=False, update=[])
    before = locked(m, "test-parent/debian")
    (parent.layers[0].spec_dir / "requirements.in").write_text("six\npackaging\n")
    return m, parent, before


def test_targeted_update_moves_only_that_package(loosened):
    m, parent, before = loosened
    reports = lock_pip.lock(m, parent, check=False, update=["packaging"])
    after = locked(m, "test-parent/debian")
    assert after["six"] == before["six"]
    assert after["packaging"] != before["packaging"]
    assert reports[0].changes == [f"~ packaging {before['packaging']} -> {after['packaging']}"]


def test_update_all_moves_every_package(loosened):
    m, parent, before = loosened
    lock_pip.lock(m, parent, check=False, update=[], update_all=True)
    after = locked(m, "test-parent/debian")
    assert after["six"] != before["six"] and after["packaging"] != before["packaging"], (before, after)


@pytest.fixture
def side_env(tmp_path):
    """A layer whose separate environment (envs/side) uses one package of the layer's main environment (shared.txt)
    and its own version of a Debian-provided one (shadows.txt)."""
    root = mini_repo(tmp_path, {
        "test-parent": {"requirements.in": "six<1.17\n", "constraints.txt": "packaging==23.2\n"},
        "test-child": {"requirements.in": "idna==3.6\n",
                       "envs/side/requirements.in": "requests==2.31.0\npackaging>=24\n",
                       "envs/side/shared.txt": "# the main environment's\nidna\n",
                       "envs/side/shadows.txt": "packaging\n"},
    }, parents={"test-child": "test-parent"}, apt_lock=False)
    return root, matrix.load(root / "images" / "matrix.yaml")


def test_separate_env_uses_shared_packages_and_shadows_debian_ones(side_env):
    _, m = side_env
    lock_pip.lock(m, m.targets["test-parent/debian"], check=False, update=[])
    child = m.targets["test-child/debian"]
    reports = lock_pip.lock(m, child, check=False, update=[])
    assert [r.layer for r in reports] == ["test-child", "test-child/envs/side"]
    side = child.layers[0].spec_dir / "envs" / "side" / "requirements.txt"
    text = side.read_text()
    # idna: solved at the main environment's pin (requests alone would take the newest 3.x), named, not installed
    assert lock_pip.shared(text) == {"idna": "3.6"}
    assert "idna" not in lock_pip.pins(text)
    # packaging: its own version, the Debian constraint (23.2) lifted for this environment only
    assert int(lock_pip.pins(text)["packaging"].split(".")[0]) >= 24 and lock_pip.pins(text)["requests"] == "2.31.0"
    assert lock_pip.stale(m, child) == []
    # the main environment's pin moves: the separate environment's lock is stale
    (child.layers[0].spec_dir / "requirements.in").write_text("idna==3.7\n")
    lock_pip.lock(m, child, check=False, update=[])
    side.write_text(text)
    assert lock_pip.stale(m, child) == ["environments/debian/test-child/envs/side/requirements.txt: stale"]
    lock_pip.lock(m, child, check=False, update=[])
    assert lock_pip.shared(side.read_text()) == {"idna": "3.7"}


def test_separate_env_without_shadows_keeps_debian_versions(side_env):
    _, m = side_env
    lock_pip.lock(m, m.targets["test-parent/debian"], check=False, update=[])
    child = m.targets["test-child/debian"]
    (child.layers[0].spec_dir / "envs" / "side" / "shadows.txt").unlink()
    with pytest.raises(lock_pip.LockError) as err:
        lock_pip.lock(m, child, check=False, update=[])
    assert "envs/side/requirements.in" in str(err.value) and "packaging" in str(err.value)
