"""Any uid, read-only root: the image as HPC runtimes (Apptainer, Charliecloud, rootless Podman) run it.

The suite passes as uid 1000 too; these tests prove what `start` and the Jupyter config do for a uid the image does
not know, whichever uid runs them.
"""
import os
import sys

import pytest

from vre_compat.helpers import run, run_ok, which

pytestmark = [pytest.mark.base_geo, pytest.mark.user]


def known_uids() -> set[int]:
    """The uids of the image's own /etc/passwd (or the one a runtime put there), without nss_wrapper's."""
    with open("/etc/passwd") as passwd:
        return {int(line.split(":")[2]) for line in passwd if line.count(":") >= 6}


def start(*cmd: str, uid_env: dict | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NSS_WRAPPER") and k != "LD_PRELOAD"}
    return run_ok([which("start"), *cmd], env={**env, **(uid_env or {})}).stdout.strip()


def test_start_names_any_uid():
    """A uid that /etc/passwd does not know gets a name and HOME from `start` (whoami, getpass, git, ssh need it)."""
    name = start("whoami")
    entry = start(sys.executable, "-c", "import os, pwd; e = pwd.getpwuid(os.getuid()); print(e.pw_name, e.pw_dir)")
    assert entry.split()[0] == name, f"whoami says {name}, getpwuid says {entry}"
    if os.getuid() not in known_uids():
        assert entry.split()[1] == os.environ["HOME"], f"start's passwd entry {entry}, HOME={os.environ['HOME']}"


def test_start_moves_an_unwritable_home_to_tmp(tmp_path):
    unwritable = tmp_path / "ro"
    unwritable.mkdir(mode=0o555)
    home = start("sh", "-c", 'echo "$HOME"', uid_env={"HOME": str(unwritable), "TMPDIR": str(tmp_path)})
    assert home == f"{tmp_path}/home-{os.getuid()}", home
    assert os.access(home, os.W_OK)


def test_start_drops_a_missing_runtime_dir():
    proc = run([which("start"), "sh", "-c", 'echo "${XDG_RUNTIME_DIR-unset}"'],
               env={**os.environ, "XDG_RUNTIME_DIR": f"/run/user/{os.getuid()}/nonexistent"})
    assert proc.returncode == 0 and proc.stdout.strip() == "unset", proc.stdout + proc.stderr


def test_jupyter_root_is_home():
    code = ("from jupyter_server.serverapp import ServerApp; app = ServerApp(); app.load_config_file(); "
            "print(app.config.ServerApp.root_dir)")
    root = run_ok([sys.executable, "-c", code]).stdout.strip().splitlines()[-1]
    assert root == os.environ["HOME"], f"Jupyter serves {root}, not the user's HOME={os.environ['HOME']}"
