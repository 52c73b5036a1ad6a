"""Conda-flavor fixtures: a pool of packages built once per session with rattler-build, and loopback servers.

The pool holds the fixture recipes of tests/testkit/fixtures/recipes (small packages that mimic conda-forge's real
problems) and the repository's own recipes vre-config and vre-compat. Helpers are in tests/testkit/conda.py.
"""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.testkit.conda import FIXTURES, PLATFORMS, ROOT, index

from vre.lock.conda import recipes
from vre.lock.conda.channels import Network


@pytest.fixture(autouse=True)
def rattler_cache(tmp_path, monkeypatch) -> None:
    """A repodata and package cache per test: what one test fetched (e.g. through a mirror) never feeds another."""
    monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path / "rattler-cache"))


@pytest.fixture(scope="session")
def pool(tmp_path_factory) -> Path:
    """A channel with every fixture package (platlib for four platforms) plus vre-config and vre-compat."""
    out = index(tmp_path_factory.mktemp("pool") / "channel")
    own = [out.resolve().as_uri()]
    for recipe in recipes.find(FIXTURES):
        for platform in PLATFORMS if recipe.name == "platlib" else (None,):
            recipes.build([recipe], out, own, Network(), platform=platform)
    recipes.build(recipes.find(ROOT, ["vre-config", "vre-compat"]), out, own, Network())
    return out


@pytest.fixture
def serve() -> Iterator[Callable[[Path], str]]:
    """serve(dir) -> http://127.0.0.1:PORT: a loopback HTTP server for the test's duration."""
    servers = []

    def start(directory: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@pytest.fixture
def silent_server() -> Iterator[str]:
    """http://127.0.0.1:PORT of a server that accepts connections and never answers (a black-holed mirror).

    It holds connections until the test ends, and stops by itself after 120 s at the latest."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.5)
    stop = threading.Event()
    held = []

    def accept() -> None:
        for _ in range(240):
            if stop.is_set():
                break
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()

