"""A real OCI registry on loopback for the publish tests: Debian's docker-registry (distribution 2.8) with its config,
storage and log in a tmp folder, plus a TCP proxy in front of it that can answer 503 like an overloaded registry.

Docker treats 127.0.0.0/8 registries as insecure (plain HTTP allowed), so no TLS is needed.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

BINARY = "/usr/bin/docker-registry"
MANIFEST_TYPES = ", ".join(("application/vnd.docker.distribution.manifest.v2+json",
                            "application/vnd.oci.image.manifest.v1+json",
                            "application/vnd.docker.distribution.manifest.list.v2+json",
                            "application/vnd.oci.image.index.v1+json"))
HTTP_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Registry:
    """docker-registry serving `root/storage` on 127.0.0.1:`port`; with `htpasswd`, every request needs basic auth."""

    root: Path
    port: int = field(default_factory=free_port)
    htpasswd: Path | None = None
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self, timeout: float = 60) -> Registry:
        config = {"version": 0.1, "log": {"level": "info"},
                  "storage": {"filesystem": {"rootdirectory": str(self.root / "storage")}},
                  "http": {"addr": self.host}}
        if self.htpasswd:
            config["auth"] = {"htpasswd": {"realm": "eo-vre-test", "path": str(self.htpasswd)}}
        (self.root / "config.yml").write_text(yaml.safe_dump(config))
        log = (self.root / "registry.log").open("a")
        self.proc = subprocess.Popen([BINARY, "serve", str(self.root / "config.yml")], stdout=log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.url}/v2/", timeout=5).status_code in (200, 401):
                    return self
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start on {self.host}: "
                                   + (self.root / "registry.log").read_text()[-2000:])
            time.sleep(0.2)

    def stop(self) -> None:
        """Kill the process (no graceful shutdown: a registry that dies); the storage stays."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def tags(self, name: str) -> list[str]:
        """The tags of repository `name`, from the registry's HTTP API (none for an unknown repository)."""
        response = requests.get(f"{self.url}/v2/{name}/tags/list", timeout=30)
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return sorted(response.json().get("tags") or [])

    def digest(self, name: str, tag: str) -> str | None:
        """The manifest digest a tag names, None if the tag does not exist."""
        response = requests.head(f"{self.url}/v2/{name}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES},
                                 timeout=30)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.headers["Docker-Content-Digest"]


def start_registry(root: Path, htpasswd: Path | None = None) -> Registry:
    root.mkdir(parents=True, exist_ok=True)
    return Registry(root=root, htpasswd=htpasswd).start()


def remove(registry: Registry) -> None:
    registry.stop()
    shutil.rmtree(registry.root, ignore_errors=True)


class FlakyProxy:
    """Forwards every TCP connection to a registry; `fail_next(n)` makes it answer the next n HTTP requests itself
    with 503 Service Unavailable (then close), as an overloaded registry or its load balancer would."""

    def __init__(self, upstream: Registry):
        self.upstream = upstream
        self.failed = 0  # 503s answered so far
        self._fail = 0
        self._request = re.compile(b"")
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def fail_next(self, count: int, request: str = "") -> None:
        """Answer 503 to the next `count` HTTP requests whose request line matches the regex `request`."""
        with self._lock:
            self._fail, self._request = count, re.compile(request.encode())

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            client.settimeout(60)
            try:
                head = client.recv(65536)
            except OSError:
                return
            with self._lock:
                line = head.split(b"\r\n", 1)[0]
                fail = head.startswith(HTTP_METHODS) and self._fail > 0 and self._request.search(line) is not None
                if fail:
                    self._fail -= 1
                    self.failed += 1
            if fail:
                client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream.port), timeout=10)
            except OSError:  # the registry is down: the client sees its connection dropped
                return
            with upstream:
                upstream.settimeout(None)
                client.settimeout(None)
                upstream.sendall(head)
                back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
                back.start()
                _pipe(client, upstream)
                back.join()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes until `source` closes, then close `sink`'s sending side."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
