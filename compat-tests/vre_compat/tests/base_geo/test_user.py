"""The hub contract: who runs, where HOME and Python are, what `start` does, what /opt/vre says."""
import json
import os
import pwd
import sys
import tempfile

import pytest

from vre_compat.helpers import VRE_DIR, json_line, read_layers, run, which

pytestmark = [pytest.mark.base_geo, pytest.mark.user]


def env(name):
    value = os.environ.get(name)
    assert value, f"{name} is not set"
    return value


def test_identity():
    """Docker and hubs run the image as its user (jovyan, 1000:100); HPC runtimes as the host's user, any uid."""
    assert (env("NB_UID"), env("NB_GID")) == ("1000", "100"), "the image convention is uid 1000, gid 100"
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        pytest.fail(f"uid {os.getuid()} has no name: `start` should have given it one (nss_wrapper)")
    if os.getuid() == int(env("NB_UID")):
        assert os.getgid() == int(env("NB_GID")), f"running as gid {os.getgid()}, NB_GID={env('NB_GID')}"
        assert name == env("NB_USER")


def test_home_writable():
    home = env("HOME")
    with tempfile.NamedTemporaryFile(dir=home, prefix=".vre-compat-") as probe:  # removed on close
        probe.write(b"ok")


def test_python_prefix_and_flavor():
    assert os.path.realpath(sys.prefix) == os.path.realpath(env("NB_PYTHON_PREFIX")), \
        f"tests run in {sys.prefix}, NB_PYTHON_PREFIX={env('NB_PYTHON_PREFIX')}"
    assert env("VRE_FLAVOR") in ("debian", "conda")
    assert os.environ.get("VRE_VARIANT") in ("cpu", "gpu", ""), \
        f"VRE_VARIANT={os.environ.get('VRE_VARIANT')!r}: expected cpu, gpu or empty (image without variants)"


def test_start_passes_arguments():
    argv = ["a b", "c", "", "*", "$HOME"]  # spaces, empty, glob, and $ must reach the command untouched
    proc = run([which("start"), sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", *argv])
    assert proc.returncode == 0, f"start exited {proc.returncode}: {proc.stderr}"
    assert json_line(proc.stdout) == argv


def test_start_propagates_exit_code():
    code = run([which("start"), "sh", "-c", "exit 3"]).returncode
    assert code == 3, f"`start sh -c 'exit 3'` returned {code}: start must end with exec \"$@\""


def test_vre_metadata():
    vre = VRE_DIR  # always the image's, even when VRE_LAYERS_FILE points elsewhere
    layers = read_layers(vre / "layers.txt")
    empty = [name for name in layers
             if not (vre / "layers" / name).is_dir() or not any((vre / "layers" / name).iterdir())]
    assert not empty, f"no spec/lock files in {vre}/layers/ for {empty}"
    manifest = json.loads((vre / "manifest.json").read_text())
    assert manifest.get("layers") == layers, f"manifest.json layers {manifest.get('layers')} != {layers}"
