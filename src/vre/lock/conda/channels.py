"""Reaching conda channels: mirrors, a short timeout, and a clear message when a channel cannot be reached.

A mirror is transport only: records keep their canonical URLs (https://conda.anaconda.org/conda-forge/...), so a
lock made through a mirror is the same lock, and installs verify every package by its sha256.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rattler import Channel, Client, Gateway, Subdir
from rattler.exceptions import GatewayError
from rattler.networking.middleware import AuthenticationMiddleware, MirrorMiddleware, RetryMiddleware

from vre.lock.conda import CondaError

# Long enough for a repodata shard over a slow link, short enough that a black-holed channel fails in seconds.
DEFAULT_TIMEOUT = 20
TIMEOUT_ENV = "VRE_CONDA_TIMEOUT"
MIRRORS_ENV = "VRE_CONDA_MIRRORS"  # "conda-forge=https://mirror/conda-forge other=https://..."
URL_IN_ERROR = re.compile(r"url \((?P<url>[a-z+]+://[^)\s]+)\)|channel '(?P<channel>[a-z+]+://[^']+)'")


@dataclass(frozen=True)
class Network:
    timeout: int = DEFAULT_TIMEOUT
    mirrors: dict[str, str] = field(default_factory=dict)  # channel base URL (no trailing /) -> mirror URL
    cache_dir: Path | None = None  # None: $RATTLER_CACHE_DIR, else rattler's (~/.cache/rattler/cache)

    @classmethod
    def from_env(cls, mirrors: list[str] | None = None, timeout: int | None = None,
                 cache_dir: Path | None = None) -> Network:
        """Settings from VRE_CONDA_MIRRORS / VRE_CONDA_TIMEOUT, overridden by the command line."""
        pairs = os.environ.get(MIRRORS_ENV, "").split() + list(mirrors or [])
        parsed = {}
        for pair in pairs:
            name, sep, url = pair.partition("=")
            if not sep or not name or "://" not in url:
                raise CondaError(f"mirror {pair!r}: expected CHANNEL=URL, e.g. conda-forge=https://mirror.example/"
                                 f"conda-forge (from --mirror or {MIRRORS_ENV})")
            parsed[base_url(name)] = url.rstrip("/")
        if timeout is None:
            raw = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT))
            if not raw.isdigit() or int(raw) == 0:
                raise CondaError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
            timeout = int(raw)
        return cls(timeout=timeout, mirrors=parsed, cache_dir=cache_dir)

    def gateway(self) -> Gateway:
        # One retry: a dropped connection is retried once, an unreachable channel is not waited for twice over.
        middlewares: list[Any] = [RetryMiddleware(1)]  # the middlewares' union type, as Client takes it
        if self.mirrors:
            middlewares.append(MirrorMiddleware({k: [v] for k, v in self.mirrors.items()}))
        middlewares.append(AuthenticationMiddleware())
        # py-rattler's Gateway ignores RATTLER_CACHE_DIR (rattler's own tools honour it): pass it on.
        cache = self.cache_dir or (Path(os.environ["RATTLER_CACHE_DIR"]) if os.environ.get("RATTLER_CACHE_DIR")
                                   else None)
        return Gateway(cache_dir=cache, client=Client(middlewares, timeout=self.timeout))


def base_url(channel: str) -> str:
    return Channel(channel).base_url.rstrip("/")


def unreachable(error: Exception, channels: list[str], network: Network) -> CondaError:
    """Turn rattler's fetch error into a message naming the channel and how to point eo-vre elsewhere."""
    text = str(error)
    match = URL_IN_ERROR.search(text)
    url = (match["url"] or match["channel"]) if match else ""
    name = next((c for c in channels if url.startswith(base_url(c)) or url.startswith(
        network.mirrors.get(base_url(c), "\0"))), None)
    cause = " / ".join(line.removeprefix("Caused by: ").strip() for line in text.splitlines() if line.strip())
    if name is None:
        return CondaError(f"cannot fetch repodata from the channels {', '.join(channels)}: {cause}")
    if base_url(name).startswith("file://"):
        return CondaError(f"local channel {name} cannot be read: {cause}\n"
                          "  build it first: vre recipes build --output DIR (then pass --channel DIR)")
    via = f" through mirror {network.mirrors[base_url(name)]}" if base_url(name) in network.mirrors else ""
    return CondaError(
        f"channel {name} ({base_url(name)}) cannot be reached{via}: {cause}\n"
        f"  use a mirror: --mirror {name}=https://MIRROR/{name} (or {MIRRORS_ENV}='{name}=https://MIRROR/{name}')\n"
        f"  behind a proxy: set HTTPS_PROXY; on a slow link: {TIMEOUT_ENV}=SECONDS (now {network.timeout})")


async def reach(channels: list[str], network: Network, platform: str) -> None:
    """Fail fast, naming the channel, when one of `channels` cannot be read (before a long build starts)."""
    gateway = network.gateway()
    for channel in channels:
        try:
            await gateway.query([Channel(channel)], [Subdir(platform), Subdir("noarch")], ["python"], recursive=False)
        except GatewayError as e:
            raise unreachable(e, channels, network) from None
