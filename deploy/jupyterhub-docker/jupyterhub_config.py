"""JupyterHub with DockerSpawner for eo-vre images on one Docker host (a hackathon, a group's server).

Everything that belongs to one deployment (images, users and teams, limits, addresses) is in a YAML (or JSON) file
named by $VRE_HUB_SETTINGS (hub.yaml beside this file is an example); this file is what any such deployment needs:

- user servers run the image as built (entrypoint `tini -g -- start`, the layers' start hooks), command
  `jupyterhub-singleuser`, on one Docker network whose bridge forwards nothing between containers (Docker's
  `enable_icc=false`): the hub and its proxy, on the host, reach every server; no server reaches another one;
- a memory limit (the kernel that allocates past it is killed, not the server, not the machine) and a CPU limit per
  server, /dev/shm sized for Ray's object store (Docker's default is 64 MB);
- a named volume per user for /home/jovyan and, per team, a host folder mounted into its members' servers only;
- jupyterhub-idle-culler as a hub service (stops servers idle longer than `idle_culler.timeout`).
"""

import json
import os
import stat
import sys
from pathlib import Path

import docker
import yaml

SETTINGS = Path(os.environ.get("VRE_HUB_SETTINGS", Path(__file__).with_name("hub.yaml")))
USERS_GID = 100  # the images' NB_GID ("users"): servers run as uid 1000, gid 100
HOME = "/home/jovyan"
TEAMS_MOUNT = "/srv/teams"
ICC = "com.docker.network.bridge.enable_icc"


def setting(settings: dict, path: str, kind: type | tuple[type, ...], default=...):
    """settings["a"]["b"] for path "a.b", checked; a clear error naming the file and the field otherwise."""
    expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
    value = settings
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            if default is not ...:
                return default
            sys.exit(f"{SETTINGS}: {path}: missing (expected a {expected})")
        value = value[part]
    if not isinstance(value, kind) or isinstance(value, bool):
        sys.exit(f"{SETTINGS}: {path}: expected a {expected}, got {value!r}")
    return value


def user_network(client: docker.DockerClient, name: str) -> str:
    """The servers' network, created with inter-container traffic off; its gateway (the host, where the hub listens)."""
    try:
        network = client.networks.get(name)
    except docker.errors.NotFound:
        network = client.networks.create(name, driver="bridge", options={ICC: "false"})
    if network.attrs["Driver"] != "bridge" or network.attrs["Options"].get(ICC) != "false":
        sys.exit(f"{SETTINGS}: network: Docker network {name} exists without {ICC}=false: servers on it could reach "
                 f"each other (remove it, or name another one)")
    return network.attrs["IPAM"]["Config"][0]["Gateway"]


settings = (yaml.safe_load if SETTINGS.suffix in (".yaml", ".yml") else json.loads)(SETTINGS.read_text())
runtime = Path(setting(settings, "runtime_dir", str))
prefix = setting(settings, "prefix", str)
images = setting(settings, "images", dict)
teams = setting(settings, "teams", dict, {})
teams_root = Path(setting(settings, "teams_root", str, "/srv/teams"))
network = setting(settings, "network", str)

c = get_config()  # noqa: F821 (provided by JupyterHub's config loader)
c.JupyterHub.db_url = f"sqlite:///{runtime / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(runtime / "jupyterhub_cookie_secret")

# Who logs in: the deployment's authenticator (e.g. an OAuthenticator), or the dummy one with a shared password
# (a hackathon on a closed network, the tests).
auth = setting(settings, "auth", dict)
c.JupyterHub.authenticator_class = setting(settings, "auth.class", str)
if "password" in auth:
    c.DummyAuthenticator.password = setting(settings, "auth.password", str)
members = {user for team in teams.values() for user in team}
c.Authenticator.allowed_users = set(setting(settings, "users", list, [])) | members
c.Authenticator.admin_users = set(setting(settings, "admins", list, []))
# Teams are hub groups: a server mounts the folder of each team its user belongs to, and no other.
c.JupyterHub.load_groups = {team: {"users": sorted(users)} for team, users in teams.items()}

services, roles = [], []
token = setting(settings, "admin_token", str, None)
if token:  # automation (the tests, the benchmark, a platform's scripts): start, stop and reach any server
    services.append({"name": "vre-admin", "api_token": token})
    roles.append({"name": "vre-admin", "services": ["vre-admin"],
                  "scopes": ["admin:users", "admin:servers", "access:servers", "read:groups"]})
culler = setting(settings, "idle_culler", dict, None)
if culler:
    services.append({"name": "idle-culler", "command": [
        sys.executable, "-m", "jupyterhub_idle_culler",
        f"--timeout={setting(settings, 'idle_culler.timeout', int)}",
        f"--cull-every={setting(settings, 'idle_culler.every', int)}"]})
    roles.append({"name": "idle-culler", "services": ["idle-culler"],
                  "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]})
c.JupyterHub.services = services
c.JupyterHub.load_roles = roles

# The public side: configurable-http-proxy, started and stopped by the hub.
c.JupyterHub.ip = setting(settings, "public.ip", str)
c.JupyterHub.port = setting(settings, "public.port", int)
c.ConfigurableHTTPProxy.command = setting(settings, "proxy.command", list, ["configurable-http-proxy"])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{setting(settings, 'proxy.api_port', int)}"
c.ConfigurableHTTPProxy.pid_file = str(runtime / "proxy.pid")
c.JupyterHub.hub_port = setting(settings, "hub_port", int)

c.JupyterHub.spawner_class = "docker"
c.DockerSpawner.allowed_images = images
c.DockerSpawner.image = images[setting(settings, "default_image", str, next(iter(images)))]
c.DockerSpawner.pull_policy = setting(settings, "pull_policy", str, "never")  # "never": images from the factory
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.DockerSpawner.prefix = prefix
c.DockerSpawner.remove = True
c.DockerSpawner.network_name = network
c.DockerSpawner.use_internal_ip = True  # the proxy reaches each server at its address on the network
c.DockerSpawner.volumes = {f"{prefix}-home-{{username}}": HOME}
c.DockerSpawner.mem_limit = setting(settings, "limits.memory", str)
c.DockerSpawner.cpu_limit = float(setting(settings, "limits.cpu", (int, float)))
c.DockerSpawner.extra_host_config = {
    "memswap_limit": setting(settings, "limits.memory", str),  # no swap beyond the limit: the OOM killer acts
    "shm_size": setting(settings, "limits.shm", str),
}
c.Spawner.default_url = "/lab"
# A loaded machine may take minutes to start a large image; the hub must wait rather than give up.
c.Spawner.start_timeout = setting(settings, "start_timeout", int, 600)
c.Spawner.http_timeout = setting(settings, "start_timeout", int, 600)
c.JupyterHub.concurrent_spawn_limit = setting(settings, "concurrent_spawn_limit", int, 100)


def team_folder(team: str) -> Path:
    """The team's host folder, prepared once: group `users`, group-writable, setgid (what members create inside
    keeps the group, whatever its author's uid)."""
    path = teams_root / team
    path.mkdir(mode=0o2775, parents=True, exist_ok=True)
    if path.stat().st_gid != USERS_GID or not path.stat().st_mode & stat.S_ISGID:
        os.chown(path, 0, USERS_GID)
        path.chmod(0o2775)
    return path


def mount_teams(spawner) -> None:
    """Each team folder of the user's groups at /srv/teams/<team>; other teams' folders are not in the container."""
    mounts = {str(team_folder(group.name)): {"bind": f"{TEAMS_MOUNT}/{group.name}", "mode": "rw"}
              for group in spawner.user.groups if group.name in teams}
    spawner.volumes = {**spawner.volumes, **mounts}  # a new dict: the configured one is shared by every spawner


c.Spawner.pre_spawn_hook = mount_teams

# Last, once every setting is checked (a bad one changes nothing on the engine): the network, and the hub API on its
# gateway, the one host address the servers reach (the host is not a container: the no-forwarding rule does not stand
# between them).
gateway = user_network(docker.from_env(), network)
c.JupyterHub.hub_ip = gateway
c.JupyterHub.hub_connect_ip = gateway
