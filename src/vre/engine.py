"""The Docker engine, through its CLI: which client to call, and small queries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from typing import Any

from vre.errors import USAGE, VreError


class EngineError(VreError):
    """The Docker engine or client is missing, or a docker command failed."""

    exit_code = USAGE


@cache
def client() -> str:
    """The docker client that can drive BuildKit: $VRE_DOCKER, else Debian's (it has BuildKit built in), else PATH's."""
    for candidate in (os.environ.get("VRE_DOCKER"), "/usr/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise EngineError("no docker client found: run `make setup` (installs docker.io) or set VRE_DOCKER")


def env() -> dict[str, str]:
    return {**os.environ, "DOCKER_BUILDKIT": "1"}


def docker(*args: str, check: bool = True, capture: bool = True, input: bytes | None = None,
           timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([client(), *args], env=env(), capture_output=capture, input=input, timeout=timeout)
    if check and result.returncode != 0:
        err = result.stderr.decode(errors="replace").strip() if capture else ""
        raise EngineError(f"docker {' '.join(args[:3])} failed (exit {result.returncode}): {err}")
    return result


def ping() -> None:
    """Fail with a clear message when no engine answers."""
    result = docker("version", "--format", "{{.Server.Version}}", check=False, timeout=20)
    if result.returncode != 0:
        raise EngineError("no Docker engine answers: run `make setup` (installs docker.io and starts dockerd)\n"
                          + result.stderr.decode(errors="replace").strip())


def inspect(ref: str) -> dict[str, Any] | None:
    result = docker("image", "inspect", ref, check=False)
    if result.returncode != 0:
        return None
    found: dict[str, Any] = json.loads(result.stdout)[0]
    return found


def labels(info: dict[str, Any] | None) -> dict[str, str]:
    """An image's labels from its inspect output ({} for none: Docker gives null for an image built without any)."""
    return dict(((info or {}).get("Config") or {}).get("Labels") or {})


def image_id(ref: str) -> str | None:
    info = inspect(ref)
    return str(info["Id"]) if info else None
