"""The generic layer installer (images/foundation/vre-install) applied through a real build of a tiny layer."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from vre import engine, matrix
from vre.build.hashing import layer_hash
from vre.workspace import Workspace

from tests.testkit import build_or_fail, mini_repo

SIX = ("six==1.16.0 \\\n    --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254\n")
IDNA = ("idna==3.10 \\\n    --hash=sha256:946d195a0d259cbba61165e88e65941f16e9b36ea6ddb97f00452bae8b1287d3\n")
ATTRS = ("attrs==24.2.0 \\\n    --hash=sha256:81921eb96de3191c8258c199618104dd27ac608d9366f5e35d011eae1867ede2\n")


@pytest.fixture(scope="module")
def tiny(docker_engine, tmp_path_factory):
    root = mini_repo(tmp_path_factory.mktemp("repo"), {
        "test-tiny": {
            "apt.txt": "# a comment, then one package\njq  # trailing comment\n",
            "requirements.txt": SIX,
            # postBuild runs as the user, after pip: it can import what pip installed
            "postBuild": "#!/bin/bash\nset -e\npython -c 'import six; print(six.__version__)' > $HOME/.postbuild\n"
                         "id -u >> $HOME/.postbuild\n",
            "start": "export VRE_TINY_STARTED=yes\n",
        },
    })
    m = matrix.load(root / "images" / "matrix.yaml")
    ref = build_or_fail(m, ["test-tiny/debian"], root / ".vre")["test-tiny/debian"]
    return m, ref


def sh(ref: str, script: str) -> str:
    return engine.docker("run", "--rm", ref, "bash", "-c", script).stdout.decode()


def test_apt_packages_installed_as_root_and_lists_cleaned(tiny):
    _, ref = tiny
    out = sh(ref, "jq --version; ls /var/lib/apt/lists | grep -v -e '^lock$' -e '^partial$' | wc -l")
    assert out.splitlines()[0].startswith("jq-")
    assert out.splitlines()[1] == "0"


def test_pip_lock_installed_into_the_venv_as_user(tiny):
    _, ref = tiny
    out = sh(ref, "python -c 'import six, sys; print(six.__file__)'; stat -c %u $NB_PYTHON_PREFIX; "
                  "ls -A $HOME/.cache 2>/dev/null | wc -l")
    path, owner, cache = out.split()
    assert path.startswith("/srv/venv/lib/python3.11/site-packages/six")
    assert owner == "1000"
    assert cache == "0"


def test_postbuild_runs_as_user_after_pip(tiny):
    _, ref = tiny
    assert sh(ref, "cat $HOME/.postbuild").split() == ["1.16.0", "1000"]


def test_start_hook_runs_before_the_command(tiny):
    _, ref = tiny
    out = engine.docker("run", "--rm", ref, "bash", "-c", "echo $VRE_TINY_STARTED").stdout.decode()
    assert out.strip() == "yes"


def test_layer_files_and_manifest_embedded(tiny):
    m, ref = tiny
    target = m.targets["test-tiny/debian"]
    out = sh(ref, "cat /opt/vre/layers.txt; cat /opt/vre/layers/test-tiny/requirements.txt")
    assert out.startswith("test-tiny\n")
    assert SIX in out
    manifest = sh(ref, "cat /opt/vre/manifest.json")
    assert '"jq"' in manifest and '"six": "1.16.0"' in manifest
    labels = engine.inspect(ref)["Config"]["Labels"]
    assert labels["io.eo-vre.layers"] == "test-tiny"
    assert len(layer_hash(target)) == 64


def test_a_bad_hash_fails_the_build(docker_engine, tmp_path):
    root = mini_repo(tmp_path, {"test-badhash": {"requirements.txt": SIX.replace("8abb", "0000")}})
    m = matrix.load(root / "images" / "matrix.yaml")
    from vre.build import BuildOptions, build
    from vre.progress import Progress

    results = []
    options = BuildOptions(workspace=Workspace(root / ".vre"))
    assert not build(m, [m.targets["test-badhash/debian"]], options, Progress(), results)
    assert results[-1].status == "failed"
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in results[-1].log.read_text()
    assert engine.image_id("eo-vre/test-badhash:debian") is None


def test_a_python_package_change_does_not_rerun_build_sh(docker_engine, tmp_path):
    """build.sh runs in the builder stage, which sees the layer without its Python specs, locks and postBuild: a lock
    change reuses its output from the cache; a change to build.sh itself runs it again."""
    # A script no earlier run has built: the cache holds no result of it.
    build_sh = f"#!/bin/sh\n# {uuid.uuid4()}\nmkdir -p $1/opt && date +%s%N > $1/opt/built-at\n"
    root = mini_repo(tmp_path, {"test-builder": {"build.sh": build_sh, "requirements.txt": SIX,
                                                  "postBuild": "#!/bin/bash\necho one > $HOME/.postbuild\n"}})
    spec = root / "environments" / "debian" / "test-builder"

    def build_and_read() -> tuple[str, str]:
        m = matrix.load(root / "images" / "matrix.yaml")
        ref = build_or_fail(m, ["test-builder/debian"], root / ".vre")["test-builder/debian"]
        out = sh(ref, "cat /opt/built-at; cat $HOME/.postbuild; "
                      "grep -c . /opt/vre/layers/test-builder/requirements.txt")
        built_at, postbuild, lines = out.split()
        return built_at, f"{postbuild} {lines}"

    first, installed = build_and_read()
    (spec / "requirements.txt").write_text("# one line more in the lock\n" + SIX)
    (spec / "postBuild").write_text("#!/bin/bash\necho two > $HOME/.postbuild\n")
    again, reinstalled = build_and_read()
    assert (installed, reinstalled) == ("one 2", "two 3")  # the content stage did take the new lock and postBuild
    assert again == first, "build.sh ran again for a change in the layer's Python lock and postBuild only"

    (spec / "build.sh").write_text(build_sh + "# changed\n")
    rebuilt, _ = build_and_read()
    assert rebuilt != first, "a change to build.sh itself must run it again"


def test_the_build_output_names_each_step_once(docker_engine, tmp_path):
    """A layer build is several `docker build` calls over the same, cached steps: the user sees each step once."""
    root = mini_repo(tmp_path, {"test-output": {"apt.txt": "\n", "postBuild": f"echo {uuid.uuid4()}\n"}})
    proc = subprocess.run(["vre", "build", "test-output", "--matrix", str(root / "images" / "matrix.yaml")], cwd=root,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = [line.split(" test-output/debian ", 1)[1] for line in proc.stdout.splitlines()
             if " test-output/debian [" in line]
    last_content = [s for s in steps if re.match(r"\[content (\d+)/\1\]", s)]  # the content stage's last step
    assert last_content and any("COPY release/" in s for s in steps), steps
    assert len(steps) == len(set(steps)), "\n".join(steps)


def test_separate_environments_heavy_in_the_heavy_step_light_in_the_last(docker_engine, tmp_path):
    """envs/NAME/requirements.txt becomes the venv /srv/venv-NAME. One that heavy.txt names (TensorFlow's in the gpu
    variant) is made in the heavy step: a change to the layer's light environment makes that one again and leaves the
    heavy one, and what users pull of it, as it was."""
    name = f"test-envs-{uuid.uuid4().hex[:8]}"  # no earlier run's build cache
    root = mini_repo(tmp_path, {name: {"requirements.txt": SIX, "heavy.txt": "six envs/heavy\n",
                                       "envs/heavy/requirements.txt": IDNA, "envs/light/requirements.txt": ATTRS}})
    refs = (f"eo-vre/{name}:debian", f"eo-vre/{name}:debian-content")

    def build() -> dict[str, str]:
        m = matrix.load(root / "images" / "matrix.yaml")
        ref = build_or_fail(m, [f"{name}/debian"], root / ".vre")[f"{name}/debian"]
        out = sh(ref, "for env in heavy light; do /srv/venv-$env/bin/python -c 'import sys; print(sys.argv[1], "
                      "__import__(sys.argv[1]).__file__)' $([ $env = heavy ] && echo idna || echo attrs);"
                      " echo $env-made $(stat -c %Y.%y /srv/venv-$env/pyvenv.cfg | tr ' ' _); done")
        return dict(line.split(" ", 1) for line in out.splitlines())

    try:
        first = build()
        assert first["idna"].startswith("/srv/venv-heavy/lib/") and first["attrs"].startswith("/srv/venv-light/lib/")
        light = root / "environments" / "debian" / name / "envs" / "light" / "requirements.txt"
        light.write_text("# one line more in the light environment's lock\n" + ATTRS)
        again = build()
        assert again["light-made"] != first["light-made"], "the light environment's change did not make it again"
        assert again["heavy-made"] == first["heavy-made"], \
            "the heavy step ran again for a change to a light environment: users would pull it again"
    finally:
        engine.docker("image", "rm", "-f", *refs, check=False)
