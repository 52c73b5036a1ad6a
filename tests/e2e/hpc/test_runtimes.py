"""A non-root user runs the exported image with Charliecloud's ch-run (directory and SquashFS) and rootless Podman:
JupyterLab answers, a kernel cell runs as that user in the image with the user's HOME, and the compat suite passes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from tests.e2e.hpc.hpckit import WHO_AM_I, as_user, home, hubclient, lab_as, new_token, record

USER = "vrehpc1"


def ch_run(image: Path, *cmd: str) -> list[str]:
    return ["ch-run", "--home", "--set-env", str(image), "--", "start", *cmd]


def check_kernel(lab, user: str) -> dict:
    who = json.loads(lab.execute(WHO_AM_I).strip().splitlines()[-1])
    uid = int(as_user(user, ["id", "-u"]).stdout)
    assert (who["uid"], who["user"], who["home"]) == (uid, user, str(home(user))), who
    assert who["in_image"], f"the kernel does not run in the image: {who}"
    probe = Path(who["probe"])
    assert probe.read_text() == "written from the kernel" and probe.stat().st_uid == uid, \
        "the kernel's file is not in the user's home on the host, owned by the user"
    probe.unlink()
    return who


def compat_summary(out: str) -> str:
    match = re.search(r"^=* ?(\d+ (?:passed|failed).*?) in [\d.]+s", out, re.M)  # -q: no ==== around it
    assert match, out[-2000:]
    return match.group(1)


def fuse_usable(user: str) -> bool:
    return as_user(user, ["test", "-r", "/dev/fuse", "-a", "-w", "/dev/fuse"], check=False).returncode == 0


@pytest.mark.parametrize("fmt", ["charliecloud", "squashfs"])
def test_ch_run_lab_and_kernel(exports, hpc_users, tmp_path, fmt):
    if fmt == "squashfs" and not fuse_usable(USER):
        pytest.skip("/dev/fuse is not usable by unprivileged users here (ch-run mounts SquashFS with FUSE): "
                    "chmod 0666 /dev/fuse, as Debian's udev rule does")
    image = exports(fmt).path
    port, token = hubclient.free_port(), new_token()
    cmd = ch_run(image, "jupyter", "lab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                 "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}")
    with lab_as(USER, cmd, port, token, tmp_path / "lab.log") as (lab, seconds):
        who = check_kernel(lab, USER)
    record(f"ch-run {fmt}: start to Lab ready", {"seconds": round(seconds, 1), "gdal": who["gdal"]})


@pytest.mark.parametrize("fmt", ["charliecloud", "squashfs"])
def test_ch_run_compat_suite(exports, hpc_users, fmt):
    if fmt == "squashfs" and not fuse_usable(USER):
        pytest.skip("/dev/fuse is not usable by unprivileged users here: chmod 0666 /dev/fuse (Debian's udev rule)")
    proc = as_user(USER, ch_run(exports(fmt).path, "vre-compat", "-q", "-rs"), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    record(f"ch-run {fmt}: compat suite", {"summary": compat_summary(out)})


@pytest.fixture(scope="module")
def podman_image(exports, hpc_users) -> str:
    """The docker-archive loaded into the user's rootless Podman storage; removed at the end."""
    archive = exports("podman")
    as_user(USER, ["podman", "load", "-q", "-i", str(archive.path)])
    yield archive.ref
    as_user(USER, ["podman", "rmi", "-f", archive.ref], check=False)


def podman_run(*args: str) -> list[str]:
    # The user's own uid in the container (keep-id maps it; --user overrides the image's USER 1000), the root
    # read-only, the user's HOME mounted at the same path.
    uid, gid = (as_user(USER, ["id", flag]).stdout.strip() for flag in ("-u", "-g"))
    return ["podman", "run", "--rm", "--userns=keep-id", f"--user={uid}:{gid}", "--read-only", "--tmpfs", "/tmp:exec",
            "-v", f"{home(USER)}:{home(USER)}", "-e", f"HOME={home(USER)}", *args]


def test_podman_rootless_lab_and_kernel(podman_image, tmp_path):
    port, token = hubclient.free_port(), new_token()
    name = f"eo-vre-hpc-lab-{os.getpid()}"
    cmd = podman_run("--name", name, "-p", f"127.0.0.1:{port}:8888", podman_image, "jupyter", "lab",
                     f"--IdentityProvider.token={token}")
    with lab_as(USER, cmd, port, token, tmp_path / "lab.log", stop=["podman", "stop", "-t", "10", name]) \
            as (lab, seconds):
        check_kernel(lab, USER)
    record("podman rootless: start to Lab ready", {"seconds": round(seconds, 1)})


def test_podman_rootless_compat_suite(podman_image):
    proc = as_user(USER, podman_run(podman_image, "vre-compat", "-q", "-rs"), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    record("podman rootless: compat suite", {"summary": compat_summary(out)})
