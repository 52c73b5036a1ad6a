"""`vre recipes publish`: upload the packages of a local channel to the channel locks name (VRE_CONDA_RECIPES_CHANNEL).

Locks record our recipes' packages at that channel's URL, so it must serve them wherever a lock is installed.
prefix.dev and anaconda.org channels take uploads through rattler-build (API key from PREFIX_API_KEY or
ANACONDA_API_KEY); a static channel (S3, GitHub Pages, any web server) is the local channel folder copied as is.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import rattler_build

from vre.lock.conda import CondaError
from vre.lock.conda.recipechannel import RECIPES_CHANNEL_ENV, published

KEYS = {"prefix.dev": "PREFIX_API_KEY", "conda.anaconda.org": "ANACONDA_API_KEY"}


def packages(channel: Path) -> list[Path]:
    found = sorted(channel.glob("*/*.conda"))
    if not found:
        raise CondaError(f"{channel}: no packages (expected a channel built by `vre recipes build --output "
                         f"{channel}`)")
    return found


def publish(channel: Path) -> tuple[str, list[Path]]:
    """Upload every package of the local channel; return the channel URL and the files uploaded."""
    url = published()
    parts = urlsplit(url)
    name = parts.path.strip("/")
    files = packages(channel)
    key_env = KEYS.get(parts.hostname or "")
    if key_env is None:
        raise CondaError(f"{RECIPES_CHANNEL_ENV}={url}: not a prefix.dev or anaconda.org channel; publish a static "
                         f"channel by copying {channel} as is to where {url} is served (S3, GitHub Pages, a web "
                         "server), subdir folders and repodata.json included")
    api_key = os.environ.get(key_env)
    if not api_key:
        raise CondaError(f"{key_env}: not set (expected the API key that may upload to {url})")
    paths = [str(f) for f in files]
    try:
        if parts.hostname == "prefix.dev":
            rattler_build.upload_package_to_prefix(paths, "https://prefix.dev", name, api_key=api_key,
                                                   skip_existing=True)
        else:
            rattler_build.upload_package_to_anaconda(paths, name, api_key=api_key)
    except rattler_build.UploadError as e:
        raise CondaError(f"uploading to {url} failed: {e}") from None
    return url, files
