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


def _eodag_panel_from_the_first_page() -> None:
    """EODAG's JupyterLab panel (eodag-labextension 5.3.1, eodag 4.10) shows as a search's first page the first item
    of `results.next_page()`, which in eodag 4 iterates over the pages *after* the first one: a search whose results
    fit in one page (a static STAC catalog, any small search) showed "No result found", a larger one its second page.
    The gateway the panel searches with gets results that iterate from their own first page."""
    try:
        from eodag_labextension import handlers
    except ImportError:  # an image without the panel
        return
    open_gateway = handlers.get_eodag_api

    def from_the_first_page(results):
        class Pages(type(results)):
            def next_page(self, update: bool = True):
                yield self
                yield from super().next_page(update=False)

        results.__class__ = Pages
        return results

    async def get_eodag_api():
        dag = await open_gateway()
        if not getattr(dag, "vre_first_page", False):
            search = dag.search
            dag.search = lambda *args, **kwargs: from_the_first_page(search(*args, **kwargs))
            dag.vre_first_page = True
        return dag

    handlers.get_eodag_api = get_eodag_api


_eodag_panel_from_the_first_page()
