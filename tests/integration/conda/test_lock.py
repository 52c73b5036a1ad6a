"""`vre lock` for conda layers, against channels the session builds: multi-platform locks in conda-lock's format,
variants picked by explicit virtual packages, layered locks, conflicts, stale locks, targeted updates, mirrors and
unreachable channels."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from tests.testkit.conda import (GPU_VIRTUAL, PLATFORMS, closed_port, conda_repo, env_yml, index, make_channel,
                                 package_is)
from conda_lock.lockfile import parse_conda_lock_file
from rattler.exceptions import SolverError
from rattler.explicit_environment import ExplicitEnvironmentSpec
from typer.testing import CliRunner

from vre.cli import app
from vre.lock.conda import CondaError, run
from vre.lock.conda.channels import TIMEOUT_ENV, Network
from vre.lock.conda.lock import lock, stale
from vre.lock.conda.solve import Solver
from vre.lock.conda.units import units_of



def vre(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def lock_all(m, **kwargs):
    return [r for t in m.targets.values() for r in lock(m, t, check=False, update=[], **kwargs)]


def locked(m, folder: str, platform: str = "linux-64") -> dict[str, tuple[str, str]]:
    lockfile = parse_conda_lock_file(m.root / "environments" / "conda" / folder / "conda-lock.yml")
    return {p.name: (p.version, p.build) for p in lockfile.package if p.platform == platform}


def test_multi_platform_lock_in_conda_lock_format(tmp_path, pool):
    channel = pool.as_uri()
    m = conda_repo(tmp_path, {"base": {}}, {"base": {"environment.yml": env_yml(
        "platlib", "libfoo", "vre-config", platforms=PLATFORMS)}}, [channel])
    result = vre("lock", "--matrix", str(m.path))
    assert result.exit_code == 0, result.output
    folder = m.root / "environments" / "conda" / "base"
    lockfile = parse_conda_lock_file(folder / "conda-lock.yml")  # conda-lock's own parser reads it
    assert sorted(lockfile.metadata.platforms) == sorted(PLATFORMS)
    urls = {platform: {e.name: e.url for e in lockfile.package if e.platform == platform} for platform in PLATFORMS}
    for platform in PLATFORMS:
        assert set(urls[platform]) == {"platlib", "libfoo", "vre-config"}
        assert f"/{platform}/platlib-1.0-" in urls[platform]["platlib"]  # one build per platform
        assert "/noarch/libfoo-1.0-" in urls[platform]["libfoo"]
        explicit = folder / f"conda-{platform}.lock"
        spec = ExplicitEnvironmentSpec.from_path(explicit)  # rattler's @EXPLICIT parser reads it too
        assert sorted(e.url.split("#")[0] for e in spec.packages) == sorted(urls[platform].values())
        assert f"# input_hash: {lockfile.metadata.content_hash[platform]}" in explicit.read_text()
    assert all(e.hash.sha256 and e.hash.md5 for e in lockfile.package)
    assert len(set(lockfile.metadata.content_hash.values())) == len(PLATFORMS)
    assert "conda-lock install" in (folder / "conda-lock.yml").read_text()
    assert vre("lock", "--check", "--matrix", str(m.path)).exit_code == 0


def test_variants_pick_builds_through_explicit_virtual_packages(tmp_path, pool, monkeypatch):
    # The host's GPU (there is none here) must never matter: detection is made to fail if anything tries it.
    import rattler

    def no_detection(*args, **kwargs):
        raise AssertionError("virtual packages were detected from the host")

    monkeypatch.setattr(rattler.VirtualPackage, "detect", no_detection)
    # No build string in the specs: only the virtual packages decide (the cuda build has the higher build number).
    m = conda_repo(tmp_path, {"dl": {"variants": ["cpu", "gpu"]}}, {
        "dl-cpu": {"environment.yml": env_yml("torchlike")},
        "dl-gpu": {"environment.yml": env_yml("torchlike"), "virtual-packages.yml": GPU_VIRTUAL},
    }, [pool.as_uri()])
    lock_all(m)
    assert locked(m, "dl-cpu")["torchlike"][1].startswith("cpu_")
    assert locked(m, "dl-gpu")["torchlike"][1].startswith("cuda129_")
    gpu_lock = (m.root / "environments/conda/dl-gpu/conda-lock.yml").read_text()
    assert "vre-virtual-packages:linux-64: __archspec=1=x86_64 __cuda=12.9" in gpu_lock


def test_gpu_variant_must_state_the_matrix_cuda(tmp_path, pool):
    # conda-lock's default (__cuda 11.4) or a forgotten file never slip through: the error names file and field.
    m = conda_repo(tmp_path, {"dl": {"variants": ["gpu"]}}, {
        "dl-gpu": {"environment.yml": env_yml("torchlike"),
                   "virtual-packages.yml": GPU_VIRTUAL.replace('"12.9"', '"11.4"')}}, [pool.as_uri()])
    with pytest.raises(CondaError, match=r"dl-gpu/virtual-packages.yml: subdirs.linux-64.packages.__cuda: 11.4, "
                                         r"but images/matrix.yaml variants.gpu.cuda is 12.9"):
        lock_all(m)
    (m.root / "environments/conda/dl-gpu/virtual-packages.yml").unlink()
    with pytest.raises(CondaError, match=r"__cuda: missing, but images/matrix.yaml variants.gpu.cuda is 12.9"):
        lock_all(m)


def test_child_is_solved_on_its_parents_exact_builds(tmp_path, pool):
    channel = make_channel(pool, tmp_path / "channel", package_is("libfoo-1.0-hb0efe7a_0", "geotool-1.0",
                                                                  "dragdep-1.0", "platlib"))
    m = conda_repo(tmp_path / "repo", {"base": {}, "child": {"parent": "base"}}, {
        "base": {"environment.yml": env_yml("libfoo")},
        "child": {"environment.yml": env_yml("geotool")}}, [channel.as_uri()])
    lock(m, m.targets["base/conda"], check=False, update=[])
    base_lock = m.root / "environments/conda/base/conda-lock.yml"
    before = hashlib.sha256(base_lock.read_bytes()).hexdigest()
    assert locked(m, "base")["libfoo"] == ("1.0", "hb0efe7a_0")
    # A newer build of libfoo appears: a free solve takes it, a child of base must not.
    make_channel(pool, channel, package_is("libfoo-1.0-h2d492c5_1"))
    m2 = conda_repo(tmp_path / "free", {"free": {}}, {"free": {"environment.yml": env_yml("libfoo", "geotool")}},
                    [channel.as_uri()])
    lock_all(m2)
    assert locked(m2, "free")["libfoo"] == ("1.0", "h2d492c5_1")
    lock(m, m.targets["child/conda"], check=False, update=[])
    child = locked(m, "child")
    assert child["libfoo"] == ("1.0", "hb0efe7a_0") and "geotool" in child
    assert set(locked(m, "base")) <= set(child)  # the child's lock is the whole environment
    assert hashlib.sha256(base_lock.read_bytes()).hexdigest() == before
    assert stale(m, m.targets["base/conda"]) == [] and stale(m, m.targets["child/conda"]) == []


def test_conflict_names_the_images_packages_constraints_and_remedies(tmp_path, pool):
    m = conda_repo(tmp_path, {"base": {}, "ml": {"parent": "base"}}, {
        "base": {"environment.yml": env_yml("qgis-like")},
        "ml": {"environment.yml": env_yml("tf-like")}}, [pool.as_uri()])
    result = vre("lock", "--matrix", str(m.path))
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "ml (linux-64) cannot share one environment with base:" in message
    assert ("- qgis-like 3.44 (base) needs libabseil-like 20260107.*; tf-like 2.19 (ml) needs libabseil-like "
            "20250512.*" in message)
    assert "their own environment: envs/NAME/environment.yml" in message
    assert "relax the constraint in environments/conda/ml/environment.yml" in message
    assert "ml conflict" in message  # the table: base locks, ml is a conflict (not missing data)
    assert not (m.root / "environments/conda/ml/conda-lock.yml").exists()
    # The remedy works: tf-like in its own environment, beside the layer.
    spec = m.root / "environments/conda/ml"
    spec.joinpath("environment.yml").write_text(env_yml())
    (spec / "envs" / "tensorflow").mkdir(parents=True)
    (spec / "envs" / "tensorflow" / "environment.yml").write_text(env_yml("tf-like"))
    assert vre("lock", "--matrix", str(m.path)).exit_code == 0
    assert locked(m, "ml/envs/tensorflow")["libabseil-like"][0] == "20250512"
    assert locked(m, "ml")["libabseil-like"][0] == "20260107"


def test_check_names_stale_and_missing_locks(tmp_path, pool):
    m = conda_repo(tmp_path, {"base": {}, "child": {"parent": "base"}}, {
        "base": {"environment.yml": env_yml("libfoo")},
        "child": {"environment.yml": env_yml("platlib")}}, [pool.as_uri()])
    result = vre("lock", "--check", "--matrix", str(m.path))
    assert result.exit_code == 1 and "environments/conda/base/conda-lock.yml does not exist" in result.output
    assert vre("lock", "--matrix", str(m.path)).exit_code == 0
    assert vre("lock", "--check", "--matrix", str(m.path)).exit_code == 0
    spec = m.root / "environments/conda/base/environment.yml"
    spec.write_text("# a comment changes nothing the solve reads\n" + spec.read_text())
    assert vre("lock", "--check", "--matrix", str(m.path)).exit_code == 0
    spec.write_text(env_yml("libfoo", "geotool"))
    result = vre("lock", "--check", "--matrix", str(m.path))
    assert result.exit_code == 1
    assert "environments/conda/base/environment.yml changed since the lock" in result.output
    assert stale(m, m.targets["base/conda"])
    # One solve group: a change to any image's specs may move the shared solution, so every lock of it is stale.
    assert stale(m, m.targets["child/conda"]) == [
        "environments/conda/child/conda-lock.yml: stale (another image of solve group default changed since the lock)"]
    lock(m, m.targets["base/conda"], check=False, update=[])  # relocks the whole group
    assert stale(m, m.targets["child/conda"]) == [] and "geotool" in locked(m, "child")
    (m.root / "environments/conda/child/conda-linux-64.lock").unlink()
    assert "conda-linux-64.lock is missing or out of step" in stale(m, m.targets["child/conda"])[0]


def test_update_moves_the_package_and_what_it_drags_only(tmp_path, pool):
    channel = make_channel(pool, tmp_path / "channel", package_is("geotool-1.0", "dragdep-1.0", "other-1.0"))
    m = conda_repo(tmp_path / "repo", {"base": {}}, {"base": {"environment.yml": env_yml("geotool", "other")}},
                   [channel.as_uri()])
    assert vre("lock", "--matrix", str(m.path)).exit_code == 0
    assert {n: v for n, (v, _) in locked(m, "base").items()} == {"geotool": "1.0", "dragdep": "1.0", "other": "1.0"}
    make_channel(pool, channel, package_is("geotool-1.1", "dragdep-2.0", "other-1.1"))
    assert "fresh" in vre("lock", "--matrix", str(m.path)).output  # newer packages alone relock nothing
    result = vre("lock", "--update", "geotool", "--matrix", str(m.path))
    assert result.exit_code == 0, result.output
    assert {n: v for n, (v, _) in locked(m, "base").items()} == {"geotool": "1.1", "dragdep": "2.0", "other": "1.0"}
    assert "~ geotool 1.0 h1cab0e0_0 -> 1.1 h1b8d16d_0" in result.output
    assert "~ dragdep 1.0 h1cab0e0_0 -> 2.0 h1b8d16d_0" in result.output
    assert "other" not in result.output


def test_update_all_moves_every_package(tmp_path, pool):
    """--update-all (the weekly lock refresh): every package to the newest version allowed, the old lock ignored."""
    channel = make_channel(pool, tmp_path / "channel", package_is("geotool-1.0", "dragdep-1.0", "other-1.0"))
    m = conda_repo(tmp_path / "repo", {"base": {}}, {"base": {"environment.yml": env_yml("geotool", "other")}},
                   [channel.as_uri()])
    assert vre("lock", "--matrix", str(m.path)).exit_code == 0
    make_channel(pool, channel, package_is("geotool-1.1", "dragdep-2.0", "other-1.1"))
    result = vre("lock", "--update-all", "--matrix", str(m.path))
    assert result.exit_code == 0, result.output
    assert {n: v for n, (v, _) in locked(m, "base").items()} == {"geotool": "1.1", "dragdep": "2.0", "other": "1.1"}


def test_mirror_is_transport_only(tmp_path, pool, serve):
    # "conda-forge" fetched from a loopback mirror: the lock records conda-forge's canonical URLs.
    url = serve(pool)
    m = conda_repo(tmp_path, {"base": {}}, {"base": {"environment.yml": env_yml("libfoo")}}, ["conda-forge"])
    result = vre("lock", "--matrix", str(m.path), "--mirror", f"conda-forge={url}")
    assert result.exit_code == 0, result.output
    lockfile = parse_conda_lock_file(m.root / "environments/conda/base/conda-lock.yml")
    urls = [p.url for p in lockfile.package]
    assert len(urls) == 1 and urls[0].startswith("https://conda.anaconda.org/conda-forge/noarch/libfoo-")


def run_guarded(fn, limit: float = 90.0):
    """fn() in a thread; fail if it has not returned after `limit` seconds (a hang), else return what it raised."""
    outcome = {}

    def target():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 (handed to the test)
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still waiting after {limit} s: the channel failure hangs"
    return outcome.get("error")


def test_refused_channel_fails_naming_the_channel_and_a_mirror(tmp_path):
    channel = f"http://127.0.0.1:{closed_port()}/conda-forge"
    m = conda_repo(tmp_path, {"base": {}}, {"base": {"environment.yml": env_yml("libfoo")}}, [channel])
    error = run_guarded(lambda: lock_all(m))
    assert isinstance(error, CondaError)
    assert f"channel {channel} ({channel}) cannot be reached" in str(error)
    assert f"use a mirror: --mirror {channel}=https://MIRROR/" in str(error)


def test_black_holed_mirror_times_out_instead_of_hanging(tmp_path, silent_server, monkeypatch):
    monkeypatch.setenv(TIMEOUT_ENV, "2")
    m = conda_repo(tmp_path, {"base": {}}, {"base": {"environment.yml": env_yml("libfoo")}}, ["conda-forge"])
    started = time.monotonic()
    result = {}
    error = run_guarded(lambda: result.update(r=vre("lock", "--matrix", str(m.path), "--mirror",
                                                      f"conda-forge={silent_server}")))
    assert error is None
    output = " ".join(result["r"].output.split())
    assert result["r"].exit_code == 1
    assert "channel conda-forge (https://conda.anaconda.org/conda-forge) cannot be reached through mirror" in output
    assert "timed out" in output and f"{TIMEOUT_ENV}=SECONDS (now 2)" in output
    print(f"black-holed mirror failed after {time.monotonic() - started:.1f} s")


def test_group_solve_locks_the_migration_split_that_layer_by_layer_cannot(tmp_path, pool):
    """A parent alone floats to the newest shared library (pyarrow-like 2.0 on the new abseil-like); its child's
    package still needs the old one. Layered, the child cannot be solved on the parent's lock; the group picks the
    parent's older build and locks both, the parent's packages at the same builds in the child's lock."""
    m = conda_repo(tmp_path, {"base": {}, "ml": {"parent": "base"}}, {
        "base": {"environment.yml": env_yml("pyarrow-like")},
        "ml": {"environment.yml": env_yml("tf-like")}}, [pool.as_uri()])
    base = units_of(m, m.targets["base/conda"])[0]

    async def layer_by_layer():
        network = Network()
        solver = Solver([pool.as_uri()], network, network.gateway())
        virtual = base.virtual.generic("linux-64")
        alone = await solver.solve_specs(["pyarrow-like"], "linux-64", virtual, [], [])
        try:
            await solver.solve_specs(["pyarrow-like", "libabseil-like", "tf-like"], "linux-64", virtual, alone, [])
        except SolverError:
            return {r.name.normalized: str(r.version) for r in alone}, "conflict"
        return {r.name.normalized: str(r.version) for r in alone}, "solved"

    alone, layered = run(layer_by_layer())
    assert alone == {"pyarrow-like": "2.0", "libabseil-like": "20260107"} and layered == "conflict"
    result = vre("lock", "--matrix", str(m.path))
    assert result.exit_code == 0, result.output
    parent, child = locked(m, "base"), locked(m, "ml")
    assert parent["pyarrow-like"][0] == "1.0" and parent["libabseil-like"][0] == "20250512"
    assert all(child[name] == build for name, build in parent.items()) and "tf-like" in child


def test_shared_images_lock_once_for_both_variants(tmp_path, pool):
    """base (no variant) is solved in the cpu group and pinned in the gpu group: its lock is a subset of both
    variants' locks at the same builds, while each variant picks its own torchlike build."""
    m = conda_repo(tmp_path, {"base": {}, "dl": {"parent": "base", "variants": ["cpu", "gpu"]}}, {
        "base": {"environment.yml": env_yml("libfoo", "geotool")},
        "dl-cpu": {"environment.yml": env_yml("torchlike")},
        "dl-gpu": {"environment.yml": env_yml("torchlike"), "virtual-packages.yml": GPU_VIRTUAL},
    }, [pool.as_uri()])
    result = vre("lock", "--matrix", str(m.path))
    assert result.exit_code == 0, result.output
    parent = locked(m, "base")
    for variant, build in (("dl-cpu", "cpu_"), ("dl-gpu", "cuda129_")):
        child = locked(m, variant)
        assert {n: child[n] for n in parent} == parent
        assert child["torchlike"][1].startswith(build)
    assert vre("lock", "--check", "--matrix", str(m.path)).exit_code == 0


def test_every_platform_is_reported_and_one_failing_hides_no_other(tmp_path, pool):
    channel = make_channel(pool, tmp_path / "channel", package_is("platlib", "libfoo"))
    for package in (channel / "osx-arm64").glob("platlib-*.conda"):
        package.unlink()  # the channel lacks platlib for osx-arm64
    index(channel)
    m = conda_repo(tmp_path / "repo", {"base": {}}, {"base": {"environment.yml": env_yml(
        "platlib", "libfoo", platforms=("linux-64", "osx-arm64"))}}, [channel.as_uri()])
    result = vre("lock", "--matrix", str(m.path))
    assert result.exit_code == 1
    assert "base (osx-arm64): the channels hold no record that satisfies\n  - platlib -> no record of platlib" \
        in result.output
    table = result.output[result.output.index("\n lock ") + 1:]
    assert table.split("\n")[0].split() == ["lock", "linux-64", "osx-arm64"]
    assert table.split("\n")[1].split() == ["base", "locked", "missing", "data"]
    assert "platlib" in locked(m, "base", "linux-64")  # the failing platform did not stop the other
    assert vre("lock", "--check", "--matrix", str(m.path)).exit_code == 1  # a lock short of a platform is stale
    limited = vre("lock", "--platform", "linux-64", "--matrix", str(m.path))
    assert limited.exit_code == 0, limited.output
    assert limited.output[limited.output.index("\n lock ") + 1:].split("\n")[0].split() == ["lock", "linux-64"]


def test_shared_images_take_the_choice_every_variant_accepts(tmp_path, pool):
    """Solved first, the cpu group floats base's libabseil-like to the newest; the gpu variant's tf-like needs the
    older one. Pinning base as the cpu group chose would fail the gpu group: it is solved freely and the cpu group
    again on its choice, so base's lock suits both variants."""
    m = conda_repo(tmp_path, {"base": {}, "dl": {"parent": "base", "variants": ["cpu", "gpu"]}}, {
        "base": {"environment.yml": env_yml("libabseil-like")},
        "dl-cpu": {"environment.yml": env_yml("torchlike")},
        "dl-gpu": {"environment.yml": env_yml("torchlike", "tf-like"), "virtual-packages.yml": GPU_VIRTUAL},
    }, [pool.as_uri()])
    result = vre("lock", "--matrix", str(m.path))
    assert result.exit_code == 0, result.output
    parent = locked(m, "base")
    assert parent["libabseil-like"][0] == "20250512"
    for variant in ("dl-cpu", "dl-gpu"):
        child = locked(m, variant)
        assert {n: child[n] for n in parent} == parent


def test_a_root_image_that_cannot_solve_names_the_fewest_specs_that_fail_together(tmp_path, pool):
    m = conda_repo(tmp_path, {"base": {}}, {"base": {"environment.yml": env_yml("libfoo", "qgis-like", "tf-like")}},
                   [pool.as_uri()])
    result = vre("lock", "--matrix", str(m.path))
    assert result.exit_code == 1
    assert "base (linux-64): its specs qgis-like, tf-like have no solution together:" in result.output
    assert result.output[result.output.index("\n lock ") + 1:].split("\n")[1].split() == ["base", "conflict"]
