"""Installing from locks, as images do (images/foundation/vre-conda-install.py) and as `vre env` does on a laptop:
no solve, sha256-checked, additive over a parent's environment, local channels remapped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from tests.testkit.conda import ROOT, conda_repo, env_yml, make_channel, package_is
from conda_lock.lockfile import parse_conda_lock_file
from typer.testing import CliRunner

from vre.cli import app
from vre.lock.conda.env import installer
from vre.lock.conda.lock import LockOptions, lock
from vre.lock.conda.recipechannel import RECIPES_CHANNEL_ENV



@pytest.fixture(scope="module")
def inst():
    """The images' installer module, loaded from the repository as `vre env` loads it."""
    return installer(ROOT)


def conda_meta(prefix) -> dict[str, tuple[str, str]]:
    records = (json.loads(p.read_text()) for p in (prefix / "conda-meta").glob("*.json"))
    return {r["name"]: (r["version"], r["build"]) for r in records}


def lock_of(m, folder, platform="linux-64") -> dict[str, tuple[str, str]]:
    lockfile = parse_conda_lock_file(m.root / "environments/conda" / folder / "conda-lock.yml")
    return {p.name: (p.version, p.build) for p in lockfile.package if p.platform == platform}


@pytest.fixture
def layered(tmp_path, pool):
    """base (python, vre-compat and vre-config) and child (+ geotool), locked against a copy of the pool."""
    channel = make_channel(pool, tmp_path / "channel")
    m = conda_repo(tmp_path / "repo", {"base": {}, "child": {"parent": "base"}}, {
        "base": {"environment.yml": env_yml("python", "vre-compat", "vre-config", "activated")},
        "child": {"environment.yml": env_yml("geotool")}}, [channel.as_uri()])
    for target in m.targets.values():
        lock(m, target, check=False, update=[])
    return m, channel


def test_vre_env_makes_the_locked_environment(tmp_path, layered):
    m, _ = layered
    prefix = tmp_path / "env"
    result = CliRunner().invoke(app, ["env", "base", "--matrix", str(m.path), "--prefix", str(prefix)])
    assert result.exit_code == 0, result.output
    assert conda_meta(prefix) == lock_of(m, "base")
    # vre-compat's entry point and module, vre-config's files: the recipes' packages work once installed.
    assert (prefix / "bin" / "vre-compat").is_file()
    subprocess.run([prefix / "bin" / "python", "-c", "import vre_compat"], check=True)
    assert json.loads((prefix / "etc/jupyter/jupyter_server_config.d/vre-config.json").read_text())[
        "ServerApp"]["port"] == 8888
    hook = prefix / "etc/vre/start.d/10-test.sh"
    hook.write_text('export FROM_HOOK="$HOME/x"\n')
    out = subprocess.run([prefix / "bin/vre-start", "sh", "-c", "echo $FROM_HOOK"], capture_output=True, text=True,
                         env={**os.environ, "HOME": str(tmp_path)}, check=True).stdout
    assert out.strip() == f"{tmp_path}/x"


def test_a_child_lock_only_adds_to_its_parents_environment(tmp_path, layered, inst):
    m, _ = layered
    prefix = tmp_path / "env"
    conda = m.root / "environments/conda"
    inst.install(conda / "base/conda-lock.yml", prefix)
    inst.install(conda / "child/conda-lock.yml", prefix)
    assert conda_meta(prefix) == lock_of(m, "child")
    # A lock not solved on top of what is installed is refused whole, naming what would go or change.
    other = tmp_path / "other"
    inst.install(conda / "child/conda-lock.yml", other)
    with pytest.raises(inst.InstallError,
                       match=r"would remove dragdep 2.0 \(h1b8d16d_0\); remove geotool 1.1 .*a layer only adds"):
        inst.install(conda / "base/conda-lock.yml", other)
    assert conda_meta(other) == lock_of(m, "child")


def test_local_channel_is_remapped_and_checked(tmp_path, layered, inst):
    m, channel = layered
    lock_path = m.root / "environments/conda/base/conda-lock.yml"
    moved = tmp_path / "moved"
    shutil.move(channel, moved)  # as in an image: the channel is elsewhere than the lock says
    with pytest.raises(inst.InstallError, match=r"comes from a local channel .* does not exist"):
        inst.install(lock_path, tmp_path / "a")
    inst.install(lock_path, tmp_path / "b", pairs=[f"{channel.as_uri()}={moved}"])
    assert conda_meta(tmp_path / "b") == lock_of(m, "base")
    victim = next(moved.glob("noarch/vre-config-*.conda"))
    victim.write_bytes(victim.read_bytes() + b"tampered")
    with pytest.raises(inst.InstallError, match=r"vre-config-.*sha256 [0-9a-f]{64}, but the lock expects"):
        inst.install(lock_path, tmp_path / "c", pairs=[f"{channel.as_uri()}={moved}"])


def test_activation_variables_missing_from_the_environment_are_reported(tmp_path, layered, inst, monkeypatch):
    m, _ = layered
    prefix = tmp_path / "env"
    inst.install(m.root / "environments/conda/base/conda-lock.yml", prefix)
    monkeypatch.delenv("VRE_TEST_DATA", raising=False)
    assert inst.activation_gaps(prefix) == [f"VRE_TEST_DATA={prefix}/share/activated"]
    monkeypatch.setenv("VRE_TEST_DATA", f"{prefix}/share/activated")  # as the image's ENV would
    assert inst.activation_gaps(prefix) == []


def test_installer_needs_the_platform_in_the_lock(tmp_path, pool, inst):
    channel = make_channel(pool, tmp_path / "channel", package_is("platlib"))
    m = conda_repo(tmp_path / "repo", {"base": {}}, {"base": {"environment.yml": env_yml(
        "platlib", platforms=("linux-64", "osx-arm64"))}}, [channel.as_uri()])
    lock(m, m.targets["base/conda"], check=False, update=[])
    with pytest.raises(inst.InstallError, match=r"metadata.platforms has no linux-aarch64 \(it locks linux-64, "
                                                r"osx-arm64\)"):
        inst.install(m.root / "environments/conda/base/conda-lock.yml", tmp_path / "env", "linux-aarch64")


def test_our_recipes_channel_is_named_by_its_published_url_and_installed_from_a_local_copy(tmp_path, pool,
                                                                                           monkeypatch):
    """A lock never holds a path of the machine that made it: packages of the local channel of our recipes are
    recorded at the URL that channel is published at (VRE_CONDA_RECIPES_CHANNEL), and installed from a local copy
    of it (`vre env --channel`, the images' /tmp/vre-extra/channel)."""
    monkeypatch.setenv(RECIPES_CHANNEL_ENV, "https://prefix.dev/eo-vre-test")
    forge = make_channel(pool, tmp_path / "forge", package_is("libfoo"))
    ours = make_channel(pool, tmp_path / "ours", package_is("vre-config"))
    m = conda_repo(tmp_path / "repo", {"base": {}}, {"base": {"environment.yml": env_yml("libfoo", "vre-config")}},
                   [forge.as_uri()])
    lock(m, m.targets["base/conda"], check=False, update=[], options=LockOptions(local_channel=ours))
    text = (m.root / "environments/conda/base/conda-lock.yml").read_text()
    assert str(ours) not in text and str(tmp_path / "repo") not in text
    url = next(p.url for p in parse_conda_lock_file(m.root / "environments/conda/base/conda-lock.yml").package
               if p.name == "vre-config")
    assert url.startswith("https://prefix.dev/eo-vre-test/noarch/vre-config-0.1.0-")
    result = CliRunner().invoke(app, ["env", "base", "--matrix", str(m.path), "--prefix", str(tmp_path / "env"),
                                      "--channel", str(ours)])
    assert result.exit_code == 0, result.output
    assert conda_meta(tmp_path / "env") == lock_of(m, "base")
