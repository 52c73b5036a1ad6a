"""ci/github/: the workflows `vre ci render` makes from the matrix, as committed, their job graph, actionlint; and
every Dockerfile of images/ through hadolint."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from vre.ci import workflows as ci
from vre.cli import app
from vre.matrix import Matrix, MatrixError, load

from tests.testkit import ROOT

COMMITTED = ROOT / ci.OUTPUT
DIGEST = "debian@sha256:" + "0" * 64


def rendered(m: Matrix) -> dict[str, dict]:
    return {name: yaml.safe_load(text) for name, text in ci.render(m).items()}


def scripts(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def tool(name: str) -> str:
    """A linter's binary, installed by the `test` extra; missing, the test fails (it never passes unchecked)."""
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} not found: pip install -e '.[test]'")
    return path


def test_committed_workflows_are_what_the_matrix_renders(real_matrix):
    assert ci.differences(real_matrix, COMMITTED) == [], "run `vre ci render` and commit ci/github/"


def test_every_target_builds_per_platform_on_a_native_runner_after_its_parent(real_matrix):
    jobs = rendered(real_matrix)["images.yml"]["jobs"]
    expected = set()
    for target in real_matrix.targets.values():
        for platform in target.platforms:
            key = ci.build_id(target, platform)
            expected.add(key)
            job = jobs[key]
            assert job["runs-on"] == {"linux/amd64": "ubuntu-24.04", "linux/arm64": "ubuntu-24.04-arm"}[platform]
            parent = real_matrix.targets[target.parent] if target.parent else None
            assert job["needs"] == [ci.build_id(parent, platform) if parent else ci.CHECK_JOB]
            if parent:  # declared after its parent, and built on the parent's per-run image
                assert list(jobs).index(job["needs"][0]) < list(jobs).index(key)
                assert "--parent-image" in next(s for s in scripts(job) if s.startswith("vre build"))
            build, test = (i for i, s in enumerate(scripts(job)) if s.startswith(("vre build", "vre test")))
            assert build < test, f"{key}: the compat suite runs right after the build"
    assert {k for k in jobs if k.startswith("build-")} == expected
    assert "qemu" not in ci.render(real_matrix)["images.yml"].lower()


def test_only_the_default_branch_and_version_tags_publish(real_matrix):
    workflow = rendered(real_matrix)["images.yml"]
    assert ci.PUBLISH.startswith("github.event_name != 'pull_request' && (")
    assert "refs/heads/main" in ci.PUBLISH and "refs/tags/v" in ci.PUBLISH
    for target in real_matrix.targets.values():
        job = workflow["jobs"][ci.job_id("publish", target.key)]
        assert job["if"] == ci.PUBLISH
        assert set(job["needs"]) == {ci.build_id(target, p) for p in target.platforms}
        join = scripts(job)[-1]
        assert f"/{target.repository}:$1" in join and join.count("-$GITHUB_RUN_ID-") == len(target.platforms)
        # vre.tags names them, as `vre publish` does: immutable ones first, the moving ones last
        assert join.index("--immutable") < join.index("--moving")
    for key, job in workflow["jobs"].items():  # everything else pushes to the per-run staging package only
        for line in (line for s in scripts(job) for line in s.splitlines() if line.startswith("docker push")):
            assert f"/{real_matrix.spec.name}-ci/" in line, key


def test_least_privilege_concurrency_pinned_actions_and_triggers(real_matrix):
    workflows = rendered(real_matrix)
    for name, workflow in workflows.items():
        if name.endswith(".yaml"):
            continue  # actionlint's settings
        assert workflow["permissions"] == {}, name
        assert "concurrency" in workflow, name
        for key, job in workflow["jobs"].items():
            assert job["permissions"] and "write-all" not in str(job["permissions"]), key
            if job["permissions"].get("packages") == "write":
                assert key.startswith(("build-", "publish-")), key
            for step in job["steps"]:
                if "uses" in step:
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    on = workflows["images.yml"]["on"]
    assert on["push"] == {"branches": ["main"], "tags": ["v*"]} and "pull_request" in on
    minute, hour, day, month, weekday = on["schedule"][0]["cron"].split()
    assert (day, month) == ("*", "*") and weekday != "*", "a weekly rebuild"


def test_pull_requests_fail_on_stale_locks_and_stale_workflows(real_matrix):
    jobs = rendered(real_matrix)["images.yml"]["jobs"]
    assert {"vre lock --check", "vre ci render --check"} <= set(scripts(jobs[ci.CHECK_JOB]))
    roots = [t for t in real_matrix.targets.values() if not t.parent]
    assert all(jobs[ci.build_id(t, p)]["needs"] == [ci.CHECK_JOB] for t in roots for p in t.platforms)


def test_gpu_images_are_tested_on_self_hosted_gpu_runners(real_matrix):
    jobs = rendered(real_matrix)["images.yml"]["jobs"]
    gpu = [t for t in real_matrix.targets.values() if t.variant and real_matrix.spec.variants[t.variant].cuda]
    assert gpu, "the matrix has gpu images"
    assert {k for k in jobs if k.startswith("gpu-test-")} == {ci.job_id("gpu-test", t.key) for t in gpu}
    for target in gpu:
        job = jobs[ci.job_id("gpu-test", target.key)]
        assert job["runs-on"] == ["self-hosted", "gpu"]
        assert set(job["needs"]) == {ci.build_id(target, p) for p in target.platforms}
        assert scripts(job)[-1] == f"vre test {target.image} --flavor {target.flavor} --variant {target.variant} --gpu"


def test_lock_refresh_runs_per_flavor_and_proposes_the_lock_diff(real_matrix):
    workflow = rendered(real_matrix)["lock-refresh.yml"]
    assert set(workflow["on"]) == {"schedule", "workflow_dispatch"}
    flavors = {t.flavor for t in real_matrix.targets.values()} - {"conda"}  # conda: conda-locks.yml
    assert set(workflow["jobs"]) == {f"lock-refresh-{f}" for f in flavors}
    for flavor in flavors:
        job = workflow["jobs"][f"lock-refresh-{flavor}"]
        assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
        text = "\n".join(scripts(job))
        assert f"vre lock --flavor {flavor} " in text and f"git add --all -- environments/{flavor}" in text
        assert "vre diff --locks origin/main HEAD" in text and "gh pr create" in text


def small_matrix(tmp: Path, images: dict) -> Path:
    for name in images:
        (tmp / "environments" / "debian" / name).mkdir(parents=True)
        (tmp / "environments" / "debian" / name / "apt.txt").write_text("jq\n")
    spec = {"name": "t", "flavors": {"debian": {"base": {"reference": DIGEST}}}, "variants": {"cpu": {}},
            "platforms": ["linux/amd64", "linux/arm64"], "images": images}
    path = tmp / "images" / "matrix.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_render_follows_the_matrix(tmp_path):
    m = load(small_matrix(tmp_path, {"a": {"flavors": ["debian"]},
                                     "b": {"parent": "a", "flavors": ["debian"], "platforms": ["linux/arm64"]}}))
    jobs = rendered(m)["images.yml"]["jobs"]
    assert [k for k in jobs if k != ci.CHECK_JOB] == ["build-a-debian-amd64", "build-a-debian-arm64",
                                                      "publish-a-debian", "build-b-debian-arm64", "publish-b-debian"]
    assert jobs["build-b-debian-arm64"]["needs"] == ["build-a-debian-arm64"]
    # A digest-pinned base is pulled by `vre build`: no bootstrap tooling; no conda channel for debian.
    assert not any("mmdebstrap" in s or "recipes" in s for s in scripts(jobs["build-a-debian-amd64"]))
    assert ci.render(m) == ci.render(load(m.path)), "rendering is deterministic"


def test_a_child_on_a_platform_its_parent_lacks_is_refused(tmp_path):
    m = load(small_matrix(tmp_path, {"a": {"flavors": ["debian"], "platforms": ["linux/amd64"]},
                                     "b": {"parent": "a", "flavors": ["debian"], "platforms": ["linux/arm64"]}}))
    with pytest.raises(MatrixError, match=r"images\.b\.platforms: linux/arm64 but parent 'a'"):
        ci.render(m)


def test_render_writes_the_folder_and_check_names_what_differs(tmp_path):
    app.callback()(lambda: None)  # keeps `ci` a subcommand, as in `vre`
    runner = CliRunner()
    args = ["ci", "render", "--matrix", str(ROOT / "images" / "matrix.yaml"), "--output", str(tmp_path)]
    (tmp_path / "old.yml").write_text("jobs: {}\n")
    assert runner.invoke(app, args).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ci.FILES)
    assert runner.invoke(app, [*args, "--check"]).exit_code == 0
    (tmp_path / "images.yml").write_text("edited by hand\n")
    (tmp_path / "stray.yml").write_text("jobs: {}\n")
    result = runner.invoke(app, [*args, "--check"])
    assert result.exit_code == 1
    assert "images.yml" in result.output and "stray.yml" in result.output and "lock-refresh" not in result.output


def test_workflows_pass_actionlint(real_matrix, tmp_path):
    tool("shellcheck")  # actionlint checks the `run:` scripts with it, and silently skips them without it
    ci.write(real_matrix, tmp_path)
    workflows = sorted(str(p) for p in tmp_path.glob("*.yml"))
    result = subprocess.run([tool("actionlint"), "-no-color", "-config-file", str(tmp_path / "actionlint.yaml"),
                             *workflows], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


DOCKERFILES = sorted({*ROOT.glob("images/**/Dockerfile"), *ROOT.glob("images/**/*.Dockerfile"),
                      *ROOT.glob("src/vre/**/*.Dockerfile"), *ROOT.glob("templates/**/Dockerfile")})


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfiles_pass_hadolint(dockerfile):
    result = subprocess.run([tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
