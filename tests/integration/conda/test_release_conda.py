"""Release files of the conda flavor, from locks the session makes: the SBOM's conda components and `vre diff --locks`
of two revisions of a conda lock (no conda-forge lock is committed; see environments/conda/README.md)."""

from __future__ import annotations

import json
import subprocess

from tests.testkit.conda import conda_repo, env_yml, make_channel, package_is
from conda_lock.lockfile import parse_conda_lock_file
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from typer.testing import CliRunner

from vre.cli import app
from vre.release import sbom
from vre.lock.conda.lock import lock
from vre.release.manifest import Manifest



def commit(root, message: str) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    if not (root / ".git").is_dir():
        git("init", "--quiet")
    git("add", "--all")
    git("commit", "--quiet", "-m", message)
    return git("rev-parse", "HEAD")


def test_conda_lock_sbom_and_release_notes(tmp_path, pool):
    channel = make_channel(pool, tmp_path / "channel", package_is("geotool-1.0", "dragdep-1.0", "other-1.0",
                                                                  "platlib"))
    m = conda_repo(tmp_path / "repo", {"base": {}}, {"base": {"environment.yml": env_yml("geotool", "other",
                                                                                        "platlib")}},
                   [channel.as_uri()])
    target = m.targets["base/conda"]
    lock(m, target, check=False, update=[])
    lock_file = m.root / "environments" / "conda" / "base" / "conda-lock.yml"
    first = commit(m.root, "first lock")

    # The SBOM of an image with this layer: every package of the linux-64 lock, with its purl and hashes.
    image = Manifest(ref="eo-vre/base:conda", image_id="", flavor="conda", layers=["base"], platform="linux/amd64")
    text = sbom.to_json(sbom.build(image, sbom.locked(lock_file.parent.parent, ["base"], "linux/amd64")))
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    components = {c["purl"]: c for c in json.loads(text)["components"]}
    expected = [p for p in parse_conda_lock_file(lock_file).package if p.platform == "linux-64"]
    assert {p.name for p in expected} == {"geotool", "dragdep", "other", "platlib"}
    assert len(components) == len(expected)
    for p in expected:
        subdir = "linux-64" if p.name == "platlib" else "noarch"
        purl = (f"pkg:conda/{p.name}@{p.version}?build={p.build}&channel={channel.as_uri()}&subdir={subdir}"
                "&type=conda")
        assert {(h["alg"], h["content"]) for h in components[purl]["hashes"]} == {
            ("SHA-256", p.hash.sha256), ("MD5", p.hash.md5)}

    # geotool 1.1 appears; updating it drags dragdep 1.0 -> 2.0 along.
    make_channel(pool, channel, package_is("geotool-1.1", "dragdep-2.0"))
    lock(m, target, check=False, update=["geotool"])
    second = commit(m.root, "geotool update")
    builds = {p.name: p.build for p in parse_conda_lock_file(lock_file).package if p.platform == "linux-64"}
    old = {p.name: f"{p.version}={p.build}" for p in expected}
    result = CliRunner().invoke(app, ["diff", "--locks", first, second, "--repo", str(m.root)])
    assert result.exit_code == 0, result.output
    notes = result.stdout
    assert "### conda: conda (2)" in notes
    assert f"| geotool | ⬆️ upgraded | {old['geotool']} | 1.1={builds['geotool']} | base |" in notes
    assert f"| dragdep | ⬆️ upgraded | {old['dragdep']} | 2.0={builds['dragdep']} | base |" in notes
    back = CliRunner().invoke(app, ["diff", "--locks", second, first, "--repo", str(m.root), "--fail-on-downgrade"])
    assert back.exit_code == 1
    assert f"> - `geotool` (conda, conda): 1.1={builds['geotool']} → {old['geotool']}" in back.stdout
