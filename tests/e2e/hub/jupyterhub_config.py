"""JupyterHub configuration of the hub contract tests: what a platform running eo-vre images with DockerSpawner sets.

The fixture (conftest.py) writes what belongs to one test run (ports, network, images, users, the team folder, the
service token) to the JSON file named by $VRE_HUB_SETTINGS; everything here is what any such deployment needs.
"""

import json
import os
from pathlib import Path

settings = json.loads(Path(os.environ["VRE_HUB_SETTINGS"]).read_text())
runtime = Path(settings["runtime_dir"])
c = get_config()  # noqa: F821 (provided by JupyterHub's config loader)

# Fixed users with one password: the contract is about spawning, not about authentication.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = settings["password"]
c.Authenticator.allowed_users = set(settings["users"])

# The tests' own client: a service allowed to start, stop and reach every user's server.
c.JupyterHub.services = [{"name": "hub-test", "api_token": settings["token"]}]
c.JupyterHub.load_roles = [{"name": "hub-test", "services": ["hub-test"],
                            "scopes": ["admin:users", "admin:servers", "access:servers"]}]

# The public side: configurable-http-proxy (npm) on loopback, started and stopped by the hub.
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = settings["public_port"]
c.ConfigurableHTTPProxy.command = [settings["proxy_command"]]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings['proxy_api_port']}"
c.ConfigurableHTTPProxy.pid_file = str(runtime / "proxy.pid")

# The hub API listens on the Docker network's gateway: the one host address the user containers can reach.
c.JupyterHub.hub_ip = settings["gateway"]
c.JupyterHub.hub_port = settings["hub_port"]
c.JupyterHub.hub_connect_ip = settings["gateway"]

c.JupyterHub.db_url = f"sqlite:///{runtime / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(runtime / "jupyterhub_cookie_secret")

# User servers: the image as built (entrypoint `tini -g -- start`, which runs the layers' start hooks), with
# jupyterhub-singleuser as the command; the image is chosen per user from the allowed ones (user_options "image").
c.JupyterHub.spawner_class = "docker"
c.DockerSpawner.allowed_images = settings["images"]
c.DockerSpawner.image = next(iter(settings["images"].values()))
c.DockerSpawner.pull_policy = "never"  # images come from the factory, never from a registry
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.DockerSpawner.prefix = settings["prefix"]
c.DockerSpawner.remove = True
# A user-defined network: the proxy reaches each container at its address on it (no published ports).
c.DockerSpawner.network_name = settings["network"]
c.DockerSpawner.use_internal_ip = True
# The team's shared folder, in every server of the team (a host folder: NFS or similar on a real platform).
c.DockerSpawner.volumes = {settings["team_dir"]: settings["team_mount"]}
c.Spawner.default_url = "/lab"
# A loaded machine may take minutes to start a large image; the hub must wait rather than give up.
c.Spawner.start_timeout = 600
c.Spawner.http_timeout = 300
