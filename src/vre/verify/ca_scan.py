"""Find the build-time CA bundle in an image: in any file of any layer, in its history, or in its config.

Builds get the CA of a TLS-intercepting proxy as a BuildKit secret; it must never be published. The public CAs
that Debian's ca-certificates package ships are expected in an image, so a certificate of the bundle is only
reported where it is not one of those (found under usr/share/ca-certificates/mozilla/ in the image itself).
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vre import engine

PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)
PUBLIC_DIR = "usr/share/ca-certificates/mozilla/"
CHUNK = 4 << 20


@dataclass(frozen=True)
class Cert:
    der: bytes
    b64_line: bytes  # one 64-character line from the middle of its PEM body: found in PEM files, wrapped or not

    @property
    def der_needle(self) -> bytes:
        middle = len(self.der) // 2
        return self.der[middle:middle + 48]


def certificates(bundle: Path) -> list[Cert]:
    certs = []
    for block in PEM.findall(bundle.read_bytes()):
        body = b"".join(block.split())
        lines = [body[i:i + 64] for i in range(0, len(body) - 63, 64)]
        certs.append(Cert(der=base64.b64decode(body), b64_line=lines[len(lines) // 2]))
    return certs


def _search(stream: IO[bytes], certs: list[Cert]) -> set[int]:
    """Indexes of the certificates found in a file-like object, read in chunks with overlap."""
    found: set[int] = set()
    tail = b""
    while chunk := stream.read(CHUNK):
        data = tail + chunk
        for i, cert in enumerate(certs):
            if i not in found and (cert.b64_line in data or cert.der_needle in data):
                found.add(i)
        tail = data[-80:]
    return found


def _layers(image: str) -> Iterator[tuple[str, tarfile.TarFile]]:
    """Yield (layer name, tarfile) for each layer of `docker save`, streamed."""
    proc = subprocess.Popen([engine.client(), "save", image], stdout=subprocess.PIPE, env=engine.env())
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as outer:
            for member in outer:
                if not member.isfile() or not (member.name.endswith("layer.tar") or member.name.startswith("blobs/")):
                    continue
                try:
                    inner = tarfile.open(fileobj=outer.extractfile(member), mode="r|")
                except tarfile.ReadError:
                    continue  # a blob that is JSON, not a layer
                yield member.name, inner
    finally:
        if proc.stdout:
            proc.stdout.close()
        if proc.wait() != 0:
            raise engine.EngineError(f"docker save {image} failed")


def scan(image: str, bundle: Path) -> list[str]:
    """Places where a certificate of `bundle` that is not a public Debian CA appears in `image`."""
    certs = certificates(bundle)
    hits: list[tuple[int, str]] = []
    public: set[int] = set()
    for layer, tar in _layers(image):
        for member in tar:
            content = tar.extractfile(member) if member.isfile() else None
            if content is None:
                continue
            name = member.name.removeprefix("./")  # a layer imported from a rootfs tar names files ./etc/...
            found = _search(content, certs)
            if name.startswith(PUBLIC_DIR):
                public |= found
            hits += [(i, f"{layer}: /{name}") for i in found]
    history = engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    config = engine.docker("image", "inspect", image).stdout
    for where, text in (("history", history), ("image config", config)):
        hits += [(i, where) for i in _search(io.BytesIO(text), certs)]
    return [f"{where} (certificate #{i + 1} of {bundle})" for i, where in hits if i not in public]

