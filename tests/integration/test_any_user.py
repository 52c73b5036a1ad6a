"""Images run as HPC runtimes run them: a uid that is not 1000 and not in /etc/passwd, the host's HOME mounted, a
read-only root filesystem; and nothing they do writes outside $HOME and /tmp."""

from __future__ import annotations

import re
import uuid


from vre import engine

UID = "54321"  # neither the image's user (1000) nor any uid of its /etc/passwd
HOME = "/home/hpc-user"


def any_user_args(home) -> list[str]:
    home.chmod(0o777)  # written by the container's uid, which has no account here
    return ["--user", f"{UID}:{UID}", "-v", f"{home}:{HOME}", "-e", f"HOME={HOME}"]


def compat(args: list[str], *pytest_args: str) -> str:
    proc = engine.docker("run", *args, "vre-compat", "-v", *pytest_args, check=False, timeout=1800)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, out[-4000:]
    return out


def test_compat_suite_as_any_uid_on_a_read_only_root(base_geo, tmp_path):
    out = compat(["--rm", "--read-only", "--tmpfs", "/tmp:exec", *any_user_args(tmp_path), base_geo])
    # The any-uid tests ran and passed (not deselected), and so did the Lab, kernel and Dask tests.
    for test in ("test_any_user.py::test_start_names_any_uid", "test_any_user.py::test_jupyter_root_is_home",
                 "test_jupyter.py::test_kernel_through_server", "test_user.py::test_identity"):
        assert re.search(rf"{re.escape(test)} PASSED", out), f"{test} did not pass:\n{out[-3000:]}"


def test_nothing_written_outside_home_and_tmp(base_geo, tmp_path):
    """The Lab, kernel, Dask and start tests on a writable root, then `docker diff`: only /tmp and HOME's mount point
    may have changed."""
    name = f"eo-vre-hpc-diff-{uuid.uuid4().hex[:8]}"
    try:
        compat(["--name", name, *any_user_args(tmp_path), base_geo], "-m", "user or jupyter or dask")
        changes = engine.docker("diff", name).stdout.decode().split("\n")
    finally:
        engine.docker("rm", "-f", name, check=False)
    paths = [line.split(" ", 1)[1] for line in changes if line.strip()]
    mount_point = {"/home", HOME}  # made by the engine for the volume
    outside = [p for p in paths if p not in mount_point and p != "/tmp" and not p.startswith("/tmp/")]
    assert not outside, f"written outside $HOME and /tmp: {outside}"
    assert any(p.startswith("/tmp/") for p in paths), "the suite wrote nothing to /tmp: did it run?"
