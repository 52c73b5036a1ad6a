"""Helpers of the conda-flavor tests: channels made from the session's package pool, throwaway repositories."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from rattler.index import index_fs

from tests.testkit import ROOT, scaffold

from vre import matrix
from vre.lock.conda import run

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PLATFORMS = ("linux-64", "linux-aarch64", "osx-64", "osx-arm64")
GPU_VIRTUAL = """\
subdirs:
  linux-64:
    packages: {__unix: "0", __linux: "5.10", __glibc: "2.28", __archspec: "1 x86_64", __cuda: "12.9"}
"""


def index(channel: Path) -> Path:
    (channel / "noarch").mkdir(parents=True, exist_ok=True)  # every channel has a noarch subdir
    run(index_fs(channel, force=True))
    return channel


def make_channel(pool: Path, dest: Path, keep: Callable[[str], bool] = lambda name: True) -> Path:
    """A channel at dest holding the pool's package files whose name passes `keep` (added to if it exists)."""
    for package in pool.glob("*/*.conda"):
        if keep(package.name):
            target = dest / package.parent.name / package.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(package, target)
    return index(dest)


def package_is(*prefixes: str) -> Callable[[str], bool]:
    """keep= for make_channel: package files starting with one of these name-version(-build) prefixes."""
    return lambda file_name: file_name.startswith(prefixes)


def conda_repo(root: Path, images: dict[str, dict], specs: dict[str, dict[str, str]], channels: list[str],
               platforms: tuple[str, ...] = ("linux/amd64",)) -> matrix.Matrix:
    """A throwaway conda-flavor repository (see tests.testkit.scaffold) with these images and spec folders' files."""
    scaffold(root, "conda", images, specs, flavor_fields={"channels": channels}, platforms=list(platforms))
    shutil.copy(ROOT / "environments" / "conda" / "virtual-packages.yml",
                root / "environments" / "conda" / "virtual-packages.yml")
    return matrix.load(root / "images" / "matrix.yaml")


def env_yml(*deps: str, platforms: tuple[str, ...] | None = None) -> str:
    lines = [f"platforms: [{', '.join(platforms)}]"] if platforms else []
    return "\n".join([*lines, "dependencies:", *(f"  - {d}" for d in deps)]) + "\n"


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
