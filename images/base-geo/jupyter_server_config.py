# base-geo: Dask dashboards of a scheduler outside the user server, through jupyter-server-proxy
# (/proxy/<host>:8787/status). The proxy only goes to allowlisted hosts (default: loopback); an open allowlist would
# make every user server a general proxy. A platform names its scheduler with dask's own DASK_SCHEDULER_ADDRESS
# (e.g. tcp://dask-scheduler:8786) and any other host in VRE_PROXY_HOSTS (space-separated).
import os

c = get_config()  # noqa: F821 (provided by Jupyter's config loader)
_hosts = ["localhost", "127.0.0.1", *os.environ.get("VRE_PROXY_HOSTS", "").split()]
_scheduler = os.environ.get("DASK_SCHEDULER_ADDRESS", "")
if _scheduler:
    _hosts.append(_scheduler.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]"))
c.ServerProxy.host_allowlist = _hosts
