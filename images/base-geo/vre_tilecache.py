"""The kernel's tile server (localtileserver) answers a map's tiles from memory, and makes the tiles a user is likely
to ask for next (one tile around the map's view, the next zoom level in and out) while the map is idle (installed
with vre_viz by base-geo's postBuild; vre_viz.tile_map sets it up, see the README's "Large results through a hub").

Why: on a hub's 2 cores a tile waits for the ones made beside it, for the proxies and for the browser, which shares
the cores to animate and decode; a tile made before it is asked for is answered in the time of the proxies alone.
The kernel knows the map's view (ipyleaflet syncs its bounds and zoom after every move), so it knows which tiles are
next. Prefetching waits until no tile has been asked for QUIET seconds, makes PREFETCH_THREADS tiles at a time
and stops as soon as the map asks for tiles again: it uses the time the map is idle, not the time the user waits.

Tiles are kept by their URL (path and query, the arguments sorted) and the raster file's size and time, so a file
written again is read again; the least recently used go beyond CACHE_BYTES.
"""
from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import urllib.request
from collections import OrderedDict
from urllib.parse import parse_qsl, urlsplit

CACHE_BYTES = 64 << 20  # about 1400 lossy WebP tiles of 512 pixels
QUIET = 0.15  # seconds without a tile request before prefetching starts
# Threads that prefetch: a hub's server has 2 cores, idle while the map is (the encoder releases the GIL); a map's
# request waits for at most the 2 tiles being made when it comes.
PREFETCH_THREADS = 2
PREFETCH_HEADER = "x-vre-prefetch"
SOURCE_HEADER = "x-vre-tile"  # on every tile: "made" for this request, "cache" from memory
_TILE_PATH = re.compile(r"^/api/tiles/\d+/\d+/\d+\.\w+$")
# The tile server is on the loopback: never through a platform's HTTP(S)_PROXY, whatever its NO_PROXY says
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def tile_key(path: str, query: str) -> tuple | None:
    """A tile's identity: its path, its query's arguments sorted, and its raster file's size and time (None when
    the query names no readable local file: such tiles are not kept)."""
    arguments = tuple(sorted(parse_qsl(query, keep_blank_values=True)))
    filename = dict(arguments).get("filename")
    try:
        stat = os.stat(filename) if filename else None
    except OSError:
        return None
    return None if stat is None else (path, arguments, stat.st_size, stat.st_mtime_ns)


class TileCache:
    """Tiles in memory (least recently used out) and the count of the map's tile requests being answered."""

    def __init__(self, max_bytes: int = CACHE_BYTES):
        self.max_bytes = max_bytes
        self._tiles: OrderedDict[tuple, tuple[list, bytes]] = OrderedDict()
        self._bytes = 0
        self.changed = threading.Condition()  # a request started or finished, a view changed, a tile was kept
        self.asked = 0  # the map's requests being answered now (prefetches not counted)
        self.last_asked = 0.0  # time.monotonic() of the last one's start or end
        self.counts = {"cache": 0, "made": 0, "prefetched": 0}

    def get(self, key: tuple) -> tuple[list, bytes] | None:
        with self.changed:
            found = self._tiles.get(key)
            if found is not None:
                self._tiles.move_to_end(key)
            return found

    def __contains__(self, key: tuple) -> bool:
        with self.changed:
            return key in self._tiles

    def put(self, key: tuple, headers: list, body: bytes) -> None:
        with self.changed:
            old = self._tiles.pop(key, None)
            self._bytes -= len(old[1]) if old else 0
            self._tiles[key] = (headers, body)
            self._bytes += len(body)
            while self._bytes > self.max_bytes and self._tiles:
                self._bytes -= len(self._tiles.popitem(last=False)[1][1])

    def clear(self) -> None:
        with self.changed:
            self._tiles.clear()
            self._bytes = 0

    def asking(self, delta: int) -> None:
        with self.changed:
            self.asked += delta
            self.last_asked = time.monotonic()
            self.changed.notify_all()

    def info(self) -> dict:
        with self.changed:
            return {**self.counts, "tiles": len(self._tiles), "bytes": self._bytes}


class CachingMiddleware:
    """ASGI middleware before localtileserver's app: tiles answered from the cache, a tile asked for while it is
    being made waits for it (the map and the prefetcher never make one tile twice), and the map's requests counted
    so that prefetching gives way to them. Other requests pass through untouched."""

    def __init__(self, app, cache: TileCache):
        self.app = app
        self.cache = cache
        self._making: dict[tuple, asyncio.Future] = {}  # only touched on the server's event loop

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or not _TILE_PATH.match(scope["path"]):
            return await self.app(scope, receive, send)
        prefetch = any(name.decode("latin-1").lower() == PREFETCH_HEADER for name, _ in scope["headers"])
        if not prefetch:
            self.cache.asking(+1)
        try:
            await self._answer(scope, receive, send, prefetch)
        finally:
            if not prefetch:
                self.cache.asking(-1)

    async def _answer(self, scope, receive, send, prefetch: bool) -> None:
        key = tile_key(scope["path"], scope["query_string"].decode("latin-1"))
        # Cache-Control: no-cache asks for the tile made again (then kept), as HTTP means it
        fresh = any(name.lower() == b"cache-control" and b"no-cache" in value.lower()
                    for name, value in scope["headers"])
        while key is not None and not fresh:
            found = self.cache.get(key)
            if found is not None:
                if not prefetch:
                    self.cache.counts["cache"] += 1
                headers, body = found
                await send({"type": "http.response.start", "status": 200,
                            "headers": [*headers, (SOURCE_HEADER.encode(), b"cache")]})
                await send({"type": "http.response.body", "body": body})
                return
            making = self._making.get(key)
            if making is None:
                break
            await asyncio.shield(making)  # made by another request: then from the cache (or made here if it failed)
        done = asyncio.get_running_loop().create_future()
        if key is not None:
            self._making.setdefault(key, done)  # a no-cache request beside another's making leaves it in charge
        response: dict = {"status": 0, "headers": [], "body": []}

        async def keep(message) -> None:
            if message["type"] == "http.response.start":
                response["status"], response["headers"] = message["status"], list(message.get("headers", []))
                message = {**message, "headers": [*response["headers"], (SOURCE_HEADER.encode(), b"made")]}
            elif message["type"] == "http.response.body":
                response["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, keep)
            if key is not None and response["status"] == 200:
                kept = [(name, value) for name, value in response["headers"] if name.lower() != b"content-length"]
                body = b"".join(response["body"])
                self.cache.put(key, [*kept, (b"content-length", str(len(body)).encode())], body)
                self.cache.counts["prefetched" if prefetch else "made"] += 1
        finally:
            if key is not None and self._making.get(key) is done:
                del self._making[key]
            done.set_result(None)


def install(app, cache: TileCache) -> None:
    """Put the cache before a Starlette/FastAPI app, whether or not the app has started serving (Starlette builds
    its middleware stack on the first request; localtileserver's app may already be serving another map)."""
    if isinstance(app.middleware_stack, CachingMiddleware):
        return
    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    app.middleware_stack = CachingMiddleware(app.middleware_stack, cache)


def view_tiles(view, zoom: float, zoom_offset: int, raster, min_zoom: int = 0, max_zoom: int = 22) -> list:
    """The tiles (z, x, y) to make next for a map showing `view` (south, west, north, east) at map zoom `zoom`,
    of a layer of tiles at zoom + zoom_offset, over a raster with bounds `raster` (south, north, west, east):
    the view and the ring of tiles around it first (a pan), nearest the centre first, then the view one zoom level
    in (the map zooms on its centre) and one out. Only tiles over the raster."""
    import morecantile

    grid = morecantile.tms.get("WebMercatorQuad")
    south, west, north, east = view
    r_south, r_north, r_west, r_east = raster
    level = round(zoom) + zoom_offset
    lat, lon = (south + north) / 2, (west + east) / 2
    half_lat, half_lon = (north - south) / 2, (east - west) / 2

    def tiles(z: int, scale: float, ring: int) -> list:
        if not min_zoom + zoom_offset <= z <= max_zoom + zoom_offset or z < 0:
            return []
        s, n = max(lat - half_lat * scale, r_south), min(lat + half_lat * scale, r_north)
        w, e = max(lon - half_lon * scale, r_west), min(lon + half_lon * scale, r_east)
        if s >= n or w >= e:
            return []
        nw, se = grid.tile(w, n, z), grid.tile(e, s, z)
        inside = grid.tile(r_west, r_north, z), grid.tile(r_east, r_south, z)
        x0, x1 = max(nw.x - ring, inside[0].x), min(se.x + ring, inside[1].x)
        y0, y1 = max(nw.y - ring, inside[0].y), min(se.y + ring, inside[1].y)
        centre = grid.tile(lon, lat, z)
        # the view's own tiles too: the map has asked for them (then they are kept, and skipped) unless it had not
        # synced its view yet
        found = [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
        return sorted(found, key=lambda t: (t[1] - centre.x) ** 2 + (t[2] - centre.y) ** 2)

    return tiles(level, 1.0, 1) + tiles(level + 1, 0.5, 0) + tiles(level - 1, 2.0, 0)


class Prefetcher:
    """Threads that make the tiles of the newest plan (a list of tile URLs of the tile server itself), only while
    the map asks for none (TileCache.asked == 0 for QUIET seconds); a new plan replaces the old."""

    def __init__(self, cache: TileCache, threads: int = PREFETCH_THREADS):
        self.cache = cache
        self._plan: list[str] = []
        self._busy = 0  # tiles being made
        for number in range(threads):
            threading.Thread(target=self._run, name=f"vre-tile-prefetch-{number}", daemon=True).start()

    def plan(self, urls: list[str]) -> None:
        with self.cache.changed:
            self._plan = list(urls)
            self.cache.changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once the plan is done (or abandoned), False if `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        with self.cache.changed:
            while self._plan or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cache.changed.wait(left)
            return True

    def _next(self) -> str:
        """The next URL to make, once the map has been quiet for QUIET seconds."""
        with self.cache.changed:
            while True:
                quiet = time.monotonic() - self.cache.last_asked
                if self._plan and self.cache.asked == 0 and quiet >= QUIET:
                    self._busy += 1
                    return self._plan.pop(0)
                self.cache.changed.wait(QUIET - quiet if self._plan and self.cache.asked == 0 else None)

    def _run(self) -> None:
        while True:
            url = self._next()
            try:
                parts = urlsplit(url)
                key = tile_key(parts.path, parts.query)
                if key is not None and key not in self.cache:
                    request = urllib.request.Request(url, headers={PREFETCH_HEADER: "1"})
                    with _LOOPBACK.open(request, timeout=60) as answer:
                        answer.read()
            except OSError:
                pass  # a tile that cannot be made now is made (or fails) when the map asks for it
            finally:
                with self.cache.changed:
                    self._busy -= 1
                    self.cache.changed.notify_all()
