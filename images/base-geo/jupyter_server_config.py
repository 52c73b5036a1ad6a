# base-geo: Dask dashboards of a scheduler outside the user server, through jupyter-server-proxy
# (/proxy/<host>:8787/status). The proxy only goes to allowlisted hosts (default: loopback); an open allowlist would
# make every user server a general proxy. A platform names its scheduler with dask's own DASK_SCHEDULER_ADDRESS
# (e.g. tcp://dask-scheduler:8786) and any other host in VRE_PROXY_HOSTS (space-separated).
import asyncio
import functools
import inspect
import os

c = get_config()  # noqa: F821 (provided by Jupyter's config loader)
_hosts = ["localhost", "127.0.0.1", *os.environ.get("VRE_PROXY_HOSTS", "").split()]
_scheduler = os.environ.get("DASK_SCHEDULER_ADDRESS", "")
if _scheduler:
    _hosts.append(_scheduler.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]"))
c.ServerProxy.host_allowlist = _hosts


try:
    from eodag_labextension import handlers as _eodag_panel
except ImportError:  # an image without the panel
    _eodag_panel = None


def _eodag_panel_from_the_first_page(handlers) -> None:
    """EODAG's JupyterLab panel (eodag-labextension 5.3.1, eodag 4.10) shows as a search's first page the first item
    of `results.next_page()`, which in eodag 4 iterates over the pages *after* the first one: a search whose results
    fit in one page (a static STAC catalog, any small search) showed "No result found", a larger one its second page.
    The gateway the panel searches with gets results that iterate from their own first page."""
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


def _eodag_panel_one_request_at_a_time(handlers) -> None:
    """The panel's requests share one gateway, which is not thread-safe: its handlers run EODAG's calls (search,
    queryables, collections) in executor threads, and a search or queryables call rewrites provider configs in place
    while another request iterates over them on the event loop ("dictionary changed size during iteration": a 400
    and an error dialog when JupyterLab's first requests overlap). So the handlers take turns; they wait on an asyncio
    lock, which leaves the event loop free during a long search."""
    turn = asyncio.Lock()

    def in_turn(method):
        @functools.wraps(method)
        async def taking_turns(*args, **kwargs):
            async with turn:
                return await method(*args, **kwargs)

        return taking_turns

    for handler in vars(handlers).values():
        if isinstance(handler, type) and handler.__module__ == handlers.__name__:
            for name in ("get", "post"):
                method = vars(handler).get(name)
                if inspect.iscoroutinefunction(method):
                    setattr(handler, name, in_turn(method))


if _eodag_panel is not None:
    _eodag_panel_from_the_first_page(_eodag_panel)
    _eodag_panel_one_request_at_a_time(_eodag_panel)
