"""Fixtures of the HPC tests: test users, the image exported for rootless runtimes, a one-machine Slurm (munged,
slurmctld, slurmd) and a JupyterHub with batchspawner's SlurmSpawner (deploy/slurm/)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.hpc.hpckit import HERE, OPT_IN, USERS, as_user, hubclient, record
from tests.testkit import ROOT
from vre import engine
from vre.build import DEFAULT_CA
from vre.publish import export

DEPLOY = ROOT / "deploy" / "slurm"
SITE_IMAGE = "eo-vre-test/hpc-site:slurm"


def pytest_collection_modifyitems(items):
    # Everything here needs root (users, daemons) and the opt-in; skip before any fixture builds an image.
    reason = ("HPC runtimes (ch-run, rootless Podman) and the Slurm-backed hub take ~10 minutes: set VRE_TEST_HPC=1"
              if not OPT_IN else "the HPC tests make Unix users and start Slurm: run them as root"
              if os.geteuid() != 0 else None)
    if reason:
        for item in items:
            if Path(item.fspath).parent == HERE:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def hpc_users() -> tuple[str, ...]:
    """Unix users with subordinate uid/gid ranges (rootless Podman) and Podman's overlay storage (the default of
    Debian's Podman 4.3 without a storage.conf is vfs: a full copy of the image per layer)."""
    for user in USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", user], check=True)
        for table in ("/etc/subuid", "/etc/subgid"):
            if not any(line.startswith(f"{user}:") for line in Path(table).read_text().splitlines()):
                pytest.fail(f"{user} has no range in {table}: useradd adds one when SUB_UID_COUNT is set "
                            f"(login.defs); add one with usermod --add-subuids/--add-subgids")
        as_user(user, ["mkdir", "-p", ".config/containers"])
        as_user(user, ["sh", "-c", "printf '[storage]\\ndriver = \"overlay\"\\n' > .config/containers/storage.conf"])
    return USERS


@pytest.fixture(scope="session")
def shared_dir():
    """A folder every test user can read (pytest's tmp folders are root's own)."""
    path = Path(tempfile.mkdtemp(prefix="eo-vre-hpc-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def exports(base_geo, shared_dir):
    """base-geo exported for each runtime, once (`vre export`'s code path)."""
    done: dict[str, export.Exported] = {}

    def get(fmt: str) -> export.Exported:
        if fmt not in done:
            done[fmt] = export.export(base_geo, fmt, shared_dir / f"base-geo{export.SUFFIX[fmt]}")
            record_export(fmt, done[fmt])
        return done[fmt]

    return get


def record_export(what: str, result: export.Exported) -> None:
    record(f"export {what}", {"ref": result.ref, "bytes": result.size, "seconds": round(result.seconds, 1)})


# Each daemon's pid file (slurm.conf names Slurm's; munged's is its default).
PID_FILES = {"munged": Path("/run/munge/munged.pid"), "slurmctld": Path("/run/slurmctld.pid"),
             "slurmd": Path("/run/slurmd.pid")}


def _pid(daemon: str) -> int | None:
    """The daemon's pid, if its pid file names a live process."""
    try:
        pid = int(PID_FILES[daemon].read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


@pytest.fixture(scope="session")
def slurm():
    """munged, slurmctld and slurmd on localhost (deploy/slurm/slurm.conf, installed by scripts/setup.sh as
    /etc/slurm/slurm.conf); the daemons this fixture starts, it stops."""
    for tool in ("munged", "slurmctld", "slurmd", "sbatch", "ch-run"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            pytest.fail(f"{tool} not found: run scripts/setup.sh (installs slurm-wlm, munge, charliecloud-runtime)")
    conf = Path("/etc/slurm/slurm.conf")
    if not conf.is_file() or conf.read_text() != (DEPLOY / "slurm.conf").read_text():
        pytest.fail(f"{conf} is not deploy/slurm/slurm.conf: run scripts/setup.sh")
    started = []
    if _pid("munged") is None:
        subprocess.run(["install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", "/run/munge"], check=True)
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
        started.append("munged")
    for daemon, args in (("slurmctld", []), ("slurmd", ["-N", "localhost"])):
        if _pid(daemon) is None:
            subprocess.run([f"/usr/sbin/{daemon}", *args], check=True)
            started.append(daemon)
    deadline = time.monotonic() + 120
    while True:
        state = subprocess.run(["sinfo", "-h", "-n", "localhost", "-o", "%t"], capture_output=True, text=True)
        if state.returncode == 0 and state.stdout.strip() in ("idle", "mix", "alloc"):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"the Slurm node is not up: {state.stdout} {state.stderr}\n"
                        f"{Path('/var/log/slurm/slurmctld.log').read_text()[-2000:]}")
        time.sleep(1)
    yield
    for daemon in reversed(started):  # only the daemons this fixture started, by their pid
        pid = _pid(daemon)
        if pid:
            os.kill(pid, 15)


@pytest.fixture(scope="session")
def site_image(base_geo) -> str:
    """base-geo with the site's HPC layer (deploy/slurm/Containerfile: Slurm client, batchspawner, dask-jobqueue)."""
    secret = ["--secret", f"id=vre-ca,src={DEFAULT_CA}"] if DEFAULT_CA.is_file() else []
    engine.docker("build", "-q", "-f", str(DEPLOY / "Containerfile"), "-t", SITE_IMAGE,
                  "--build-arg", f"BASE_IMAGE={base_geo}", *secret, str(DEPLOY), timeout=1800)
    yield SITE_IMAGE
    engine.docker("image", "rm", "-f", SITE_IMAGE, check=False)


@pytest.fixture(scope="session")
def site_export(site_image, shared_dir) -> export.Exported:
    result = export.export(site_image, "charliecloud", shared_dir / "hpc-site")
    record_export("charliecloud (site image)", result)
    return result


@pytest.fixture(scope="session")
def slurm_hub(slurm, hpc_users, site_export, proxy_command, tmp_path_factory):
    """deploy/slurm/jupyterhub_config.py as a site runs it (PAM logins, SlurmSpawner, ch-run), plus what the tests
    need: a service token, the proxy's command and ports."""
    runtime = tmp_path_factory.mktemp("slurm-hub")
    password, token = uuid.uuid4().hex, uuid.uuid4().hex
    for user in hpc_users:
        subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True)
    public_port, api_port, proxy_port = (hubclient.free_port() for _ in range(3))
    config = runtime / "jupyterhub_config.py"
    config.write_text(
        f"c = get_config()\nload_subconfig({str(DEPLOY / 'jupyterhub_config.py')!r})\n"
        f"c.Authenticator.allowed_users = {set(hpc_users)!r}\n"
        f"c.JupyterHub.services = [{{'name': 'hub-test', 'api_token': {token!r}}}]\n"
        "c.JupyterHub.load_roles = [{'name': 'hub-test', 'services': ['hub-test'], "
        "'scopes': ['admin:users', 'admin:servers', 'access:servers']}]\n"
        f"c.ConfigurableHTTPProxy.command = [{proxy_command!r}]\n"
        f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{proxy_port}'\n")
    env = {**os.environ, "VRE_HPC_IMAGE": str(site_export.path), "VRE_HUB_PORT": str(public_port),
           "VRE_HUB_API_PORT": str(api_port)}
    log = runtime / "hub.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=runtime, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    hub = hubclient.Hub(f"http://127.0.0.1:{public_port}", token, password, {}, "", log, proc)
    try:
        hub.wait_up()
        for user in hpc_users:
            hub.api("POST", f"/users/{user}")
        yield hub
    finally:
        for user in hpc_users:
            try:
                hub.api("DELETE", f"/users/{user}/server")
            except Exception:  # noqa: BLE001 (the hub may be gone already: its jobs are cancelled below)
                pass
        for user in hpc_users:  # the jobs the hub could not stop
            subprocess.run(["scancel", "-u", user], check=False)
        os.killpg(proc.pid, 15)
        proc.wait(60)
        print(f"\nhub log: {log}")
