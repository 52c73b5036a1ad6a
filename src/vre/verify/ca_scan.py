"""Find the build-time CA bundle in an image: in any file of any layer, in its history, or in its config.

Builds get the CA of a TLS-intercepting proxy as a BuildKit secret; it must never be published. The public CAs
that Debian's ca-certificates package ships are expected in an image, so a certificate of the bundle is only
reported where it is not one of those (found under usr/share/ca-certificates/mozilla/ in the image itself).
"""

from __future__ import annotations

import base64
import io
import os
import re
import stat
import subprocess
import tarfile
from collections.abc import Iterable, Iterator
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


def _files_in_dirs(image: str) -> Iterator[tuple[str, str, IO[bytes]]] | None:
    """Each regular file of each layer, read where the local overlay2 driver keeps it; None where it cannot be.

    This needs no disk: `docker save` writes the whole image to the daemon's disk before it streams it (seen in a CI
    run: "no space left on device" for a 1.7 GB image).
    """
    info = engine.inspect(image)
    driver = (info or {}).get("GraphDriver") or {}
    if info is None or driver.get("Name") != "overlay2":
        return None  # no such image: `docker save` says so
    data = driver.get("Data") or {}
    top_down = [data.get("UpperDir", ""), *data.get("LowerDir", "").split(":")]
    dirs = [Path(d) for d in reversed(top_down) if d]
    diff_ids = info["RootFS"]["Layers"]
    if len(dirs) != len(diff_ids) or not all(os.access(d, os.R_OK | os.X_OK) for d in dirs):
        return None  # another daemon's disk (a remote engine), or no permission to read it
    return _walk(zip(diff_ids, dirs))


def _walk(layers: Iterable[tuple[str, Path]]) -> Iterator[tuple[str, str, IO[bytes]]]:
    seen: set[tuple[int, int]] = set()  # a hard link's content is read once, as `docker save` has it once
    for layer, root in layers:
        for parent, _, names in os.walk(root):
            for name in names:
                path = os.path.join(parent, name)
                info = os.lstat(path)
                # not symbolic links, nor the whiteouts (devices) that mark deleted files
                if stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    with open(path, "rb") as content:
                        yield layer, os.path.relpath(path, root), content


def _files_in_save(image: str) -> Iterator[tuple[str, str, IO[bytes]]]:
    """Each regular file of each layer of `docker save`, streamed."""
    proc = subprocess.Popen([engine.client(), "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=engine.env())
    unreadable: tarfile.ReadError | None = None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as outer:
            for member in outer:
                if not member.isfile() or not (member.name.endswith("layer.tar") or member.name.startswith("blobs/")):
                    continue
                try:
                    inner = tarfile.open(fileobj=outer.extractfile(member), mode="r|")
                except tarfile.ReadError:
                    continue  # a blob that is JSON, not a layer
                for file in inner:
                    whiteout = os.path.basename(file.name).startswith(".wh.")  # marks a deletion, holds nothing
                    content = inner.extractfile(file) if file.isfile() and not whiteout else None
                    if content is not None:
                        # a layer imported from a rootfs tar names its files ./etc/...
                        yield member.name, file.name.removeprefix("./"), content
    except tarfile.ReadError as e:
        unreadable = e  # a daemon that failed wrote nothing or stopped midway: its message says why
    finally:
        if proc.stdout:
            proc.stdout.close()
        _, err = proc.communicate()
        if proc.returncode != 0 or unreadable:
            why = err.decode(errors="replace").strip() or f"its output is not a whole tar ({unreadable})"
            raise engine.EngineError(f"docker save {image} failed: {why}")


def files(image: str, via_save: bool = False) -> Iterator[tuple[str, str, IO[bytes]]]:
    """(layer, path, content) of each regular file of each layer, deleted or overwritten ones included."""
    in_dirs = None if via_save else _files_in_dirs(image)
    return in_dirs if in_dirs is not None else _files_in_save(image)


def scan(image: str, bundle: Path, via_save: bool = False) -> list[str]:
    """Places where a certificate of `bundle` that is not a public Debian CA appears in `image`."""
    certs = certificates(bundle)
    hits: list[tuple[int, str]] = []
    public: set[int] = set()
    for layer, name, content in files(image, via_save):
        found = _search(content, certs)
        if name.startswith(PUBLIC_DIR):
            public |= found
        hits += [(i, f"{layer}: /{name}") for i in found]
    history = engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    config = engine.docker("image", "inspect", image).stdout
    for where, text in (("history", history), ("image config", config)):
        hits += [(i, where) for i in _search(io.BytesIO(text), certs)]
    return [f"{where} (certificate #{i + 1} of {bundle})" for i, where in hits if i not in public]

