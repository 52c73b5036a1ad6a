# Shared by every eo-vre image: listen where a hub or `docker run -p 8888:8888` expects it.
import os

c = get_config()  # noqa: F821 (provided by Jupyter's config loader)
c.ServerApp.ip = "0.0.0.0"
c.ServerApp.port = 8888
c.ServerApp.open_browser = False
# The user's home: /home/jovyan in Docker, the host's home under HPC runtimes (any uid, read-only root).
c.ServerApp.root_dir = os.environ.get("HOME", "/home/jovyan")
