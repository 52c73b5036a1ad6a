"""ci/github/conda-locks.yml (rendered by vre.ci.workflows) and `vre recipes publish`: recipes built per platform and
published, the groups locked against the published channel and checked, a pull request, a micromamba install."""

from __future__ import annotations

import pytest
import rattler_build
import yaml
from tests.testkit.conda import ROOT

from vre import matrix
from vre.ci import workflows as ci
from vre.lock.conda import CondaError, recipepublish
from vre.lock.conda.recipechannel import RECIPES_CHANNEL_ENV


def workflow() -> dict:
    return yaml.safe_load(ci.render(matrix.load(ROOT / "images" / "matrix.yaml"))["conda-locks.yml"])


def runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_recipes_are_published_before_the_groups_are_locked_checked_and_installed():
    jobs = workflow()["jobs"]
    recipes = {k for k in jobs if k.startswith("recipes-")}
    assert recipes == {f"recipes-{p}" for p in ("linux-64", "linux-aarch64", "osx-64", "osx-arm64")}
    for name in recipes:
        assert "vre recipes build" in runs(jobs[name]) and "vre recipes publish" in runs(jobs[name])
    lock = jobs["lock"]
    assert set(lock["needs"]) == recipes
    text = runs(lock)
    assert "vre lock --flavor conda --published" in text and "vre lock --check --flavor conda" in text
    assert "gh pr create" in text and "git add --all -- environments/conda" in text
    smoke = {k: j for k, j in jobs.items() if k.startswith("smoke-")}
    assert {j["runs-on"] for j in smoke.values()} == {"ubuntu-24.04", "macos-15"}
    for job in smoke.values():
        assert job["needs"] == "lock"
        assert "micromamba\" create --yes" in runs(job) and "deep-learning-cpu/conda-lock.yml" in runs(job)


def test_publish_uploads_to_the_channel_the_locks_name(tmp_path, monkeypatch):
    (tmp_path / "noarch").mkdir()
    package = tmp_path / "noarch" / "pyotb-2.2.1-pyh4616a5c_0.conda"
    package.write_bytes(b"")
    calls = []
    monkeypatch.setattr(rattler_build, "upload_package_to_prefix", lambda files, url, channel, **kw: calls.append(
        (files, url, channel, kw["api_key"])))
    monkeypatch.setenv(RECIPES_CHANNEL_ENV, "https://prefix.dev/eo-vre-team")
    monkeypatch.delenv("PREFIX_API_KEY", raising=False)
    with pytest.raises(CondaError, match="PREFIX_API_KEY: not set"):
        recipepublish.publish(tmp_path)
    monkeypatch.setenv("PREFIX_API_KEY", "k")
    assert recipepublish.publish(tmp_path) == ("https://prefix.dev/eo-vre-team", [package])
    assert calls == [([str(package)], "https://prefix.dev", "eo-vre-team", "k")]
    monkeypatch.setenv(RECIPES_CHANNEL_ENV, "https://static.example.org/eo-vre")
    with pytest.raises(CondaError, match="not a prefix.dev or anaconda.org channel; publish a static channel"):
        recipepublish.publish(tmp_path)
