"""What a build is asked to do (BuildOptions) and what came of it (BuildResult)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vre.workspace import Workspace

DEFAULT_CA = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass
class BuildOptions:
    ca_bundle: Path | None = DEFAULT_CA  # extra CA for TLS-intercepting proxies; None: no secret
    wheels: Path | None = None  # extra wheel source (find-links) for pip installs
    channel: Path | None = None  # local conda channel for installs from locks that point to it
    no_cache: bool = False
    workspace: Workspace | None = None  # None: the matrix's repository's .vre/
    # Build on this image instead of the parent's local tag, and build no foundation: a CI job whose parent was
    # built by another job (on another runner) and pushed to a registry.
    parent_image: str | None = None


@dataclass
class BuildResult:
    key: str
    ref: str
    image_id: str = ""
    size: int = 0
    seconds: float = 0.0
    steps: int = 0
    cached_steps: int = 0
    status: str = "pending"  # built | failed | interrupted
    log: Path | None = None
    error: str = ""
