"""Build internals without Docker: context staging, hashes, labels, BuildKit log parsing, the stacking check."""

from __future__ import annotations

import subprocess

import pytest

from tests.testkit import mini_repo
from vre import engine, matrix
from vre.build import buildkit, stacking
from vre.build.budget import describe_step, step_sizes
from vre.build.context import INSTALLER_ONLY_FILES, stage_context
from vre.build.hashing import layer_hash, lock_hash
from vre.build.labels import git, labels
from vre.errors import USAGE, VreError
from vre.workspace import Workspace


@pytest.fixture
def repo(tmp_path):
    root = mini_repo(tmp_path / "repo", {
        "t-parent": {"apt.txt": "curl\n", "requirements.in": "attrs\n", "postBuild": "echo parent\n"},
        "t-child": {"apt.txt": "\n", "build.sh": "echo built\n", "requirements.txt": "attrs==1\n"},
    }, parents={"t-child": "t-parent"}, apt_lock=False)
    (root / "images" / "t-child").mkdir(parents=True)
    (root / "images" / "t-child" / "start").write_text("echo hook\n")
    (root / "images" / "t-child" / "README.md").write_text("about the layer, not in it\n")
    return matrix.load(root / "images" / "matrix.yaml")


def files(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_context_holds_the_layer_its_builder_copy_the_compat_suite_and_empty_extras(repo, tmp_path):
    target = repo.targets["t-child/debian"]
    context = stage_context(repo, target, Workspace(tmp_path / "ws"))
    assert context == Workspace(tmp_path / "ws").context("t-child/debian")
    assert files(context / "layers" / "t-child") == {"apt.txt", "build.sh", "requirements.txt", "start"}
    # The builder stage sees the layer without what only the installer reads: a package change keeps build.sh cached.
    assert files(context / "builder" / "t-child") == {"apt.txt", "build.sh", "start"}
    assert "requirements.txt" in INSTALLER_ONLY_FILES
    assert (context / "compat" / "vre_compat" / "__init__.py").is_file()
    assert not any((context / "compat").rglob("__pycache__"))
    assert list((context / "release").iterdir()) == []
    assert [p.name for p in sorted((context / "extra").iterdir())] == ["channel", "wheels"]


def test_apt_files_and_heavy_pins_are_staged_for_steps_of_their_own(repo, tmp_path):
    spec = repo.targets["t-parent/debian"].layers[0].spec_dir
    lock = ("# via nothing\nattrs==23.1.0 \\\n    --hash=sha256:aa\ntorch==2.13.0+cpu \\\n    --hash=sha256:bb \\\n"
            "    --hash=sha256:cc\n    # via -r requirements.in\n"
            "nvidia-nccl-cu13==2.29.7 ; sys_platform == 'linux' \\\n    --hash=sha256:dd\n")
    (spec / "requirements.txt").write_text(lock)
    (spec / "apt.lock").write_text("# vre-input-hash: 0\n")
    (spec / "heavy.txt").write_text("# the heaviest\ntorch\nnvidia-*  # CUDA wheels\n")
    context = stage_context(repo, repo.targets["t-parent/debian"], Workspace(tmp_path / "ws"))
    assert files(context / "apt" / "t-parent") == {"apt.txt", "apt.lock"}
    assert (context / "heavy" / "t-parent" / "requirements.txt").read_text() == (
        "torch==2.13.0+cpu \\\n    --hash=sha256:bb \\\n    --hash=sha256:cc\n"
        "nvidia-nccl-cu13==2.29.7 ; sys_platform == 'linux' \\\n    --hash=sha256:dd\n")
    assert "heavy.txt" not in files(context / "builder" / "t-parent")
    # a layer without heavy.txt or apt files still gets (empty) folders: the Dockerfile copies them for every layer
    child = stage_context(repo, repo.targets["t-child/debian"], Workspace(tmp_path / "ws"))
    assert files(child / "heavy" / "t-child") == set() and (child / "heavy" / "t-child").is_dir()


def test_a_separate_environment_named_in_heavy_txt_is_staged_whole_for_the_heavy_step(repo, tmp_path):
    spec = repo.targets["t-parent/debian"].layers[0].spec_dir
    (spec / "requirements.txt").write_text("torch==2.10.0 \\\n    --hash=sha256:bb\n")
    (spec / "prune.txt").write_text("tensorflow/include\n")
    (spec / "envs" / "tensorflow").mkdir(parents=True)
    env_lock = "# vre-shared: nvidia-nccl-cu12==2.27.5\ntensorflow==2.20.0 \\\n    --hash=sha256:ee\n"
    (spec / "envs" / "tensorflow" / "requirements.txt").write_text(env_lock)
    (spec / "envs" / "light").mkdir()
    (spec / "envs" / "light" / "requirements.txt").write_text("attrs==23.1.0 \\\n    --hash=sha256:aa\n")
    (spec / "heavy.txt").write_text("torch envs/tensorflow\n")
    context = stage_context(repo, repo.targets["t-parent/debian"], Workspace(tmp_path / "ws"))
    heavy = context / "heavy" / "t-parent"
    assert files(heavy) == {"requirements.txt", "prune.txt", "envs/tensorflow/requirements.txt"}
    assert (heavy / "envs" / "tensorflow" / "requirements.txt").read_text() == env_lock
    assert (heavy / "requirements.txt").read_text() == "torch==2.10.0 \\\n    --hash=sha256:bb\n"
    # the environment not named stays with the rest of the layer (the user step), as does the builder's copy
    assert "envs/light/requirements.txt" in files(context / "layers" / "t-parent")
    assert not any(path.startswith("envs/") for path in files(context / "builder" / "t-parent"))


def test_heavy_txt_naming_an_environment_without_a_lock_is_refused(repo, tmp_path):
    spec = repo.targets["t-parent/debian"].layers[0].spec_dir
    (spec / "heavy.txt").write_text("envs/tensorflow\n")
    with pytest.raises(VreError) as err:
        stage_context(repo, repo.targets["t-parent/debian"], Workspace(tmp_path / "ws"))
    assert str(spec / "heavy.txt") in str(err.value) and "envs/tensorflow/requirements.txt" in str(err.value)
    assert err.value.exit_code == USAGE


def test_context_is_staged_afresh_with_the_given_extras(repo, tmp_path):
    target = repo.targets["t-child/debian"]
    workspace = Workspace(tmp_path / "ws")
    stale = stage_context(repo, target, workspace) / "layers" / "t-child" / "left-over"
    stale.write_text("from an earlier build\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "pkg-1-py3-none-any.whl").write_bytes(b"wheel")
    context = stage_context(repo, target, workspace, wheels=wheels)
    assert not stale.exists()
    assert files(context / "extra" / "wheels") == {"pkg-1-py3-none-any.whl"}


def test_layer_hash_follows_every_spec_and_image_file(repo):
    target = repo.targets["t-child/debian"]
    before = layer_hash(target)
    assert layer_hash(target) == before
    (repo.root / "images" / "t-child" / "start").write_text("echo other hook\n")
    assert layer_hash(target) != before


def test_lock_hash_chains_the_ancestors(repo):
    child, parent = repo.targets["t-child/debian"], repo.targets["t-parent/debian"]
    child_before, parent_before = lock_hash(repo, child), lock_hash(repo, parent)
    spec = parent.layers[0].spec_dir / "requirements.in"
    spec.write_text("attrs\npackaging\n")
    assert lock_hash(repo, parent) != parent_before
    assert lock_hash(repo, child) != child_before, "a parent's change changes its children's lock hash"


def test_labels_outside_a_git_repository(repo):
    assert git(repo.root, "rev-parse", "HEAD") == ""
    found = labels(repo, repo.targets["t-child/debian"])
    assert found["org.opencontainers.image.revision"] == "unknown"
    assert found["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"
    assert found["io.eo-vre.layers"] == "t-child"
    assert found["io.eo-vre.lock-hash"] == lock_hash(repo, repo.targets["t-child/debian"])


def test_labels_name_the_commit_its_time_and_a_dirty_tree(repo):
    when = "2026-01-02T03:04:05Z"
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when, "HOME": str(repo.root), "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "one"]):
        subprocess.run(["git", "-C", str(repo.root), *args], check=True, capture_output=True, env=env)
    head = git(repo.root, "rev-parse", "HEAD")
    target = repo.targets["t-child/debian"]
    found = labels(repo, target)
    assert found["org.opencontainers.image.revision"] == head
    assert found["org.opencontainers.image.created"] == when
    (repo.root / "images" / "t-child" / "start").write_text("echo changed\n")
    assert labels(repo, target)["org.opencontainers.image.revision"] == head + "-dirty"


LOG = """\
#1 [internal] load build definition from layer.Dockerfile
#1 transferring dockerfile: 2.1kB done
#2 [internal] load metadata for eo-vre/base-geo:debian-content
#5 [content 1/4] FROM eo-vre/base-geo:debian-content
#5 CACHED
#6 [content 2/4] COPY layers/ /opt/vre/layers/
#6 CACHED
#7 [content 3/4] RUN vre-install user ${VRE_LAYERS}
#7 0.512 installing 12 packages
#8 [image 1/1] COPY compat/ /tmp/vre-compat/
#8 DONE 0.1s
#7 [content 3/4] RUN vre-install user ${VRE_LAYERS}
"""


def test_buildkit_log_gives_steps_and_cached_counts():
    steps = buildkit.parse(LOG.splitlines(keepends=True))
    assert steps.names == {"content 1/4", "content 2/4", "content 3/4", "image 1/1"}
    assert steps.cached == 2


def test_buildkit_step_lines_are_shortened_for_the_progress():
    steps = buildkit.Steps()
    assert steps.read("#1 [internal] load .dockerignore\n") is None
    assert steps.read("#7 0.512 installing 12 packages\n") is None
    shown = steps.read("#9 [content 4/4] RUN " + "x" * 200 + "\n")
    assert shown is not None and shown.startswith("[content 4/4] RUN x") and len(shown) == len("[content 4/4] ") + 90


def test_buildkit_tail_is_the_end_of_the_log(tmp_path):
    log = tmp_path / "build.log"
    log.write_text("".join(f"line {i}\n" for i in range(40)))
    assert buildkit.tail(log, 3) == "line 37\nline 38\nline 39"


def test_stands_on_compares_lower_layers_in_order():
    assert stacking.stands_on(["a", "b", "c"], ["a", "b"])
    assert stacking.stands_on(["a"], [])
    assert not stacking.stands_on(["a", "x", "c"], ["a", "b"])
    assert not stacking.stands_on(["b", "a"], ["a", "b"])
    assert not stacking.stands_on(["a"], ["a", "b"])


def test_stacked_reads_each_stage_and_checks_each_on_the_previous(monkeypatch):
    images = {"content": ["a", "b"], "image": ["a", "b", "c"], "release": ["a", "b", "c", "d"], "other": ["a", "x"]}
    monkeypatch.setattr(engine, "inspect", lambda ref: {"RootFS": {"Layers": images[ref]}} if ref in images else None)
    assert stacking.stacked("content", "image", "release")
    assert not stacking.stacked("content", "other", "release")
    with pytest.raises(engine.EngineError, match="not found"):
        stacking.stacked("content", "missing")


def test_a_step_is_shown_without_buildkits_build_args_shell_and_mounts():
    run = ("RUN |2 VRE_LAYERS=deep-learning VRE_VARIANT=cpu /bin/sh -c vre-install heavy ${VRE_LAYERS} # buildkit")
    assert describe_step(run) == "RUN vre-install heavy ${VRE_LAYERS}"
    assert describe_step("COPY layers/ /opt/vre/layers/ # buildkit") == "COPY layers/ /opt/vre/layers/"


def test_step_sizes_are_the_steps_above_the_base_with_content(monkeypatch):
    histories = {"img": "0\tCOPY release/\n5\tRUN user\n0\tUSER 1000\n7\tRUN apt\n3\tbase top\n9\tbase bottom\n",
                 "base": "3\tbase top\n9\tbase bottom\n"}
    monkeypatch.setattr(engine, "docker", lambda *args: subprocess.CompletedProcess(
        args, 0, histories[args[-1]].encode(), b""))
    assert step_sizes("img", "base") == [(7, "RUN apt"), (5, "RUN user")]
