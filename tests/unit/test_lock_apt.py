"""The Debian lock (src/vre/lock_apt.py) against a local apt repository made here: no network, no Docker.

The repository holds real .deb files (dpkg-deb) indexed by dpkg-scanpackages, served to apt as a file: source, so
resolution, hashes and the failure modes (a parent's package moved, a version gone, an architecture without a
package) are apt's own.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from vre import matrix
from vre.lock import apt as lock_apt
from vre.lock.debian import LockError
from vre.release.packages import layer_locks

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("apt-get", "dpkg-deb", "dpkg-scanpackages")),
                                reason="needs apt-get, dpkg-deb and dpkg-scanpackages (Debian's apt, dpkg-dev)")

ARCHS = ("amd64", "arm64")


class Repo:
    """A one-suite apt repository (dists/bookworm/main) whose packages can be added and removed."""

    def __init__(self, root: Path):
        self.root = root
        self.pool = root / "pool"
        self.pool.mkdir(parents=True)

    def add(self, name: str, version: str, arch: str = "all", depends: str = "", priority: str = "optional") -> Path:
        tree = self.root / "src" / f"{name}_{version}_{arch}"
        (tree / "DEBIAN").mkdir(parents=True)
        control = f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: eo-vre tests <t@example>\n" \
                  f"Priority: {priority}\nDescription: fixture\n"
        (tree / "DEBIAN" / "control").write_text(control + (f"Depends: {depends}\n" if depends else ""))
        deb = self.pool / f"{name}_{version}_{arch}.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)], check=True,
                       capture_output=True)
        self.index()
        return deb

    def remove(self, name: str, version: str) -> None:
        for deb in self.pool.glob(f"{name}_{version}_*.deb"):
            deb.unlink()
        self.index()

    def index(self) -> None:
        release = ["Suite: bookworm", "Codename: bookworm", "Architectures: amd64 arm64", "Components: main", "SHA256:"]
        for arch in ARCHS:
            scan = ["dpkg-scanpackages", "--multiversion", "--arch", arch, "pool"]
            packages = subprocess.run(scan, cwd=self.root, check=True, capture_output=True, text=True).stdout
            rel = f"main/binary-{arch}/Packages"
            path = self.root / "dists" / "bookworm" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(packages)
            release.append(f" {hashlib.sha256(packages.encode()).hexdigest()} {len(packages.encode())} {rel}")
        (self.root / "dists" / "bookworm" / "Release").write_text("\n".join(release) + "\n")


@pytest.fixture
def repo(tmp_path) -> Repo:
    repo = Repo(tmp_path / "mirror")
    repo.add("base-req", "1.0", priority="required")
    repo.add("apt", "1.0", priority="important")
    repo.add("vre-lib", "1.0")
    repo.add("vre-tool", "1.0", depends="vre-lib (>= 1.0)")
    repo.add("vre-geo", "1.0", arch="amd64", depends="vre-lib")  # not built for arm64
    repo.add("vre-extra", "1.0")
    return repo


@pytest.fixture
def project(tmp_path, repo) -> Path:
    """A repository whose flavor bootstraps from the local mirror: foundation (vre-tool), geo, child of geo."""
    root = tmp_path / "project"
    boot = {"suite": "bookworm", "mirror": f"[trusted=yes] file:{repo.root}", "source_date_epoch": 0}
    spec = {"name": "t", "flavors": {"debian": {"base": {"bootstrap": boot}}}, "variants": {},
            "platforms": ["linux/amd64"],
            "images": {"geo": {"flavors": ["debian"]}, "child": {"parent": "geo", "flavors": ["debian"]}}}
    (root / "images" / "foundation").mkdir(parents=True)
    (root / "images" / "matrix.yaml").write_text(yaml.safe_dump(spec))
    (root / "images" / "foundation" / "apt.txt").write_text("vre-tool\n")
    for name, packages in (("geo", "vre-geo  # amd64 only\n"), ("child", "vre-extra\n")):
        (root / "environments" / "debian" / name).mkdir(parents=True)
        (root / "environments" / "debian" / name / "apt.txt").write_text(packages)
    return root


def load(root: Path) -> matrix.Matrix:
    return matrix.load(root / "images" / "matrix.yaml")


def lock_all(m: matrix.Matrix, **kw) -> list:
    reports = lock_apt.lock(m, None, check=False, update=kw.get("update", []), update_all=kw.get("update_all", False))
    for target in m.targets.values():
        reports += lock_apt.lock(m, target, check=False, update=kw.get("update", []))
    return reports


def pins(path: Path) -> dict[tuple[str, str], str]:
    return {(p.arch, p.name): p.version for p in lock_apt.read(path)[1]}


def test_foundation_lock_holds_the_bootstrap_set_and_apt_txt_with_the_files_sha256(project, repo):
    m = load(project)
    lock_all(m)
    lock = project / "images" / "foundation" / "apt.lock"
    found = lock_apt.read(lock)[1]
    for arch in ARCHS:
        assert {p.name for p in found if p.arch == arch} == {"base-req", "apt", "vre-tool", "vre-lib"}
    for pin in found:
        deb = repo.pool / f"{pin.name}_{pin.version}_all.deb"
        assert pin.sha256 == hashlib.sha256(deb.read_bytes()).hexdigest()


def test_a_layer_locks_only_what_it_adds_and_records_an_architecture_it_cannot_have(project):
    m = load(project)
    lock_all(m)
    geo = project / "environments" / "debian" / "geo" / "apt.lock"
    assert pins(geo) == {("amd64", "vre-geo"): "1.0"}  # vre-lib is the foundation's, fixed below
    why = lock_apt.unavailable(geo)
    assert list(why) == ["arm64"] and "vre-geo" in why["arm64"]
    child = lock_apt.unavailable(project / "environments" / "debian" / "child" / "apt.lock")
    assert child == {"arm64": "geo is unavailable for arm64"}


def test_a_layer_that_would_move_a_parent_package_is_refused_naming_it(project, repo):
    m = load(project)
    lock_all(m)
    repo.add("vre-lib", "2.0")
    repo.add("vre-new", "1.0", depends="vre-lib (>= 2.0)")
    (project / "environments" / "debian" / "child" / "apt.txt").write_text("vre-new\n")
    with pytest.raises(LockError) as err:
        lock_apt.lock(m, m.targets["child/debian"], check=False, update=[])
    assert "environments/debian/child/apt.txt" in str(err.value)
    assert "vre-lib 1.0 -> 2.0" in str(err.value)


def test_relock_keeps_versions_and_update_moves_only_the_package_named(project, repo):
    m = load(project)
    lock_all(m)
    lock = project / "images" / "foundation" / "apt.lock"
    repo.add("vre-lib", "1.1")
    repo.add("vre-tool", "1.1", depends="vre-lib (>= 1.0)")
    (project / "images" / "foundation" / "apt.txt").write_text("vre-tool\nvre-extra\n")
    assert lock_apt.stale(m, m.targets["geo/debian"])[0] == "images/foundation/apt.lock: stale"
    report = lock_apt.lock(m, None, check=False, update=[])[0]
    assert pins(lock)[("amd64", "vre-lib")] == "1.0" and pins(lock)[("amd64", "vre-tool")] == "1.0"
    assert "+ vre-extra 1.0 (amd64)" in report.changes
    report = lock_apt.lock(m, None, check=False, update=["vre-lib"])[0]
    assert pins(lock)[("amd64", "vre-lib")] == "1.1" and pins(lock)[("amd64", "vre-tool")] == "1.0"
    assert report.changes == ["~ vre-lib 1.0 -> 1.1 (amd64)", "~ vre-lib 1.0 -> 1.1 (arm64)"]
    lock_apt.lock(m, None, check=False, update=[], update_all=True)
    assert pins(lock)[("arm64", "vre-tool")] == "1.1"


def test_an_omitted_dependency_is_locked_as_a_stand_in_and_a_child_may_install_the_real_one(project, repo):
    repo.add("vre-compiler", "3.0")
    repo.add("vre-sci", "1.0", depends="vre-compiler, vre-lib")
    geo_dir, child_dir = (project / "environments" / "debian" / name for name in ("geo", "child"))
    (geo_dir / "apt.txt").write_text("vre-sci\n!vre-compiler  # a build tool vre-sci declares\n")
    (child_dir / "apt.txt").write_text("vre-compiler\n")
    m = load(project)
    reports = lock_all(m)
    assert pins(geo_dir / "apt.lock") == {(a, "vre-sci"): "1.0" for a in ARCHS}
    assert [(p.arch, p.name, p.version) for p in lock_apt.omitted(geo_dir / "apt.lock")] == [
        ("amd64", "vre-compiler", "3.0"), ("arm64", "vre-compiler", "3.0")]
    assert "+ omitted vre-compiler 3.0 (amd64)" in next(r for r in reports if r.target == "geo").changes
    assert pins(child_dir / "apt.lock") == {(a, "vre-compiler"): "3.0" for a in ARCHS}
    # the release side counts the stand-in as the image's package, as dpkg in the image will
    assert ("vre-omitted-vre-compiler", "3.0") in [(p.name, p.version) for p in layer_locks(geo_dir, "geo")["apt"]]
    # a relock keeps the stand-in's version; omitting a package the sources lack is an error naming the file
    repo.add("vre-compiler", "3.1")
    (geo_dir / "apt.txt").write_text("vre-sci\n!vre-compiler\n# edited\n!vre-nowhere\n")
    with pytest.raises(LockError, match=r"environments/debian/geo/apt.txt \(amd64\).*vre-nowhere"):
        lock_apt.lock(m, m.targets["geo/debian"], check=False, update=[])
    (geo_dir / "apt.txt").write_text("vre-sci\n!vre-compiler\nvre-extra\n")
    lock_apt.lock(m, m.targets["geo/debian"], check=False, update=[])
    assert {p.version for p in lock_apt.omitted(geo_dir / "apt.lock")} == {"3.0"}


def test_a_locked_version_gone_from_the_mirror_fails_the_relock_with_the_remedy(project, repo):
    m = load(project)
    lock_all(m)
    repo.add("vre-lib", "1.1")
    repo.remove("vre-lib", "1.0")
    (project / "images" / "foundation" / "apt.txt").write_text("vre-tool\nvre-extra\n")
    with pytest.raises(LockError) as err:
        lock_apt.lock(m, None, check=False, update=[])
    assert "vre-lib" in str(err.value) and "vre lock --update NAME" in str(err.value)
    lock_apt.lock(m, None, check=False, update=["vre-lib"])
    assert pins(project / "images" / "foundation" / "apt.lock")[("amd64", "vre-lib")] == "1.1"


def test_check_reports_missing_then_fresh_then_stale_after_an_edit(project):
    m = load(project)
    geo = m.targets["geo/debian"]
    assert lock_apt.stale(m, geo) == ["images/foundation/apt.lock: missing",
                                      "environments/debian/geo/apt.lock: missing"]
    lock_all(m)
    assert lock_apt.stale(m, geo) == []
    (project / "environments" / "debian" / "geo" / "apt.txt").write_text("vre-geo\n# a comment does not count\n")
    assert lock_apt.stale(m, geo) == []
    (project / "environments" / "debian" / "geo" / "apt.txt").write_text("vre-geo\nvre-extra\n")
    assert lock_apt.stale(m, geo) == ["environments/debian/geo/apt.lock: stale"]
    lock_apt.lock(m, geo, check=False, update=[])  # a relocked parent makes its child stale
    assert lock_apt.stale(m, m.targets["child/debian"]) == ["environments/debian/child/apt.lock: stale"]


def test_a_malformed_lock_line_is_named(tmp_path):
    lock = tmp_path / "apt.lock"
    lock.write_text(textwrap.dedent("""\
        # vre-input-hash: 0000000000000000000000000000000000000000000000000000000000000000
        amd64 jq 1.6-2.1
    """))
    with pytest.raises(LockError, match=r"apt.lock:2: expected '<arch> <name> <version> <sha256>'"):
        lock_apt.read(lock)


def test_release_notes_and_sboms_read_a_layers_apt_lock_for_their_platform(tmp_path):
    (tmp_path / "apt.txt").write_text("jq\n")
    (tmp_path / "apt.lock").write_text("# vre-input-hash: " + "0" * 64 + "\n"
                                       f"amd64 jq 1.6-2.1 {'a' * 64}\namd64 libjq1 1.6-2.1 {'b' * 64}\n"
                                       f"arm64 jq 1.6-2.1 {'c' * 64}\n")
    amd64 = layer_locks(tmp_path, "geo", "linux-64")["apt"]
    assert [(p.name, p.version, p.hashes) for p in amd64] == [("jq", "1.6-2.1", (("SHA-256", "a" * 64),)),
                                                              ("libjq1", "1.6-2.1", (("SHA-256", "b" * 64),))]
    assert [p.name for p in layer_locks(tmp_path, "geo", "linux-aarch64")["apt"]] == ["jq"]


def test_an_arch_qualifier_leaves_a_package_out_there_and_the_lock_says_so(project):
    # vre-geo has no arm64 build (the fixture mirror, as Debian's OTB): `[amd64]` locks arm64 without it.
    geo = project / "environments" / "debian" / "geo"
    (geo / "apt.txt").write_text("vre-geo [amd64]  # amd64 only\nvre-extra\n")
    m = load(project)
    lock_all(m)
    assert pins(geo / "apt.lock") == {("amd64", "vre-geo"): "1.0", ("amd64", "vre-extra"): "1.0",
                                      ("arm64", "vre-extra"): "1.0"}
    assert lock_apt.unavailable(geo / "apt.lock") == {}
    assert lock_apt.left_out_of(geo / "apt.lock") == {"arm64": ["vre-geo"]}
    assert lock_apt.unavailable(project / "environments" / "debian" / "child" / "apt.lock") == {}
    (geo / "apt.txt").write_text("vre-geo [!arm64]  # the same, said the other way\nvre-extra\n")
    assert lock_apt.stale(m, m.targets["geo/debian"]) == ["environments/debian/geo/apt.lock: stale"]


@pytest.mark.parametrize("text, arch, expected", [
    ("a b\nc [amd64] d\n", "arm64", ["a", "b", "d"]),
    ("c [amd64 arm64]\n", "arm64", ["c"]),
    ("c [!arm64] # c [arm64]\n", "arm64", []),
    ("c [!arm64]\n", "amd64", ["c"]),
    ("c/bookworm-backports [amd64]\n", None, ["c/bookworm-backports"]),
    ("!c [amd64] d\n", "amd64", ["d"]),
])
def test_apt_txt_entries_by_arch(tmp_path, text, arch, expected):
    (tmp_path / "apt.txt").write_text(text)
    assert lock_apt.wanted(tmp_path / "apt.txt", arch) == expected


def test_an_omission_takes_an_arch_qualifier_too(tmp_path):
    (tmp_path / "apt.txt").write_text("!c [amd64]\n!e\nd\n")
    assert lock_apt.omitted_names(tmp_path / "apt.txt", "amd64") == ["c", "e"]
    assert lock_apt.omitted_names(tmp_path / "apt.txt", "arm64") == ["e"]
    assert lock_apt.left_out(tmp_path / "apt.txt", "arm64") == []  # left out means wanted elsewhere, not omitted


@pytest.mark.parametrize("text", ["c [i386]\n", "c [!amd64 arm64]\n", "c []\n", "c [amd64\n", "c ]\n"])
def test_a_bad_arch_qualifier_is_named_with_its_line(tmp_path, text):
    (tmp_path / "apt.txt").write_text("ok\n" + text)
    with pytest.raises(LockError, match=r"apt.txt:2: .*(arch|\[)"):
        lock_apt.wanted(tmp_path / "apt.txt")
