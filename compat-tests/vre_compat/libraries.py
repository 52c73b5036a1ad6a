"""Copies of shared libraries in an image's filesystem, told apart by their ELF SONAME (the images have no binutils;
standard library only, so that the factory's own tests can import it too)."""
from __future__ import annotations

import os
import stat
import struct
from collections import defaultdict
from pathlib import Path

ET_DYN, SHT_DYNAMIC, DT_NULL, DT_SONAME = 3, 6, 0, 14


def soname(path: str | Path) -> str | None:
    """The DT_SONAME of an ELF shared object; None for anything else (no ELF, an executable, no SONAME)."""
    try:
        with open(path, "rb") as f:
            ident = f.read(16)
            if len(ident) < 16 or ident[:4] != b"\x7fELF":
                return None
            wide, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
            header = f.read(48 if wide else 36)
            fields = struct.unpack(order + ("HHIQQQIHHHHHH" if wide else "HHIIIIIHHHHHH"), header)
            e_type, e_shoff, e_shentsize, e_shnum = fields[0], fields[5], fields[10], fields[11]
            if e_type != ET_DYN or not e_shoff:
                return None
            section = order + ("IIQQQQIIQQ" if wide else "IIIIIIIIII")
            sections = []  # (type, offset, size, link) of each section header
            for index in range(e_shnum):
                f.seek(e_shoff + index * e_shentsize)
                _, kind, _, _, offset, size, link, *_ = struct.unpack(section, f.read(struct.calcsize(section)))
                sections.append((kind, offset, size, link))
            entry = order + ("qQ" if wide else "iI")
            for kind, offset, size, link in sections:
                if kind != SHT_DYNAMIC:
                    continue
                f.seek(offset)
                dynamic = f.read(size)
                whole = len(dynamic) - len(dynamic) % struct.calcsize(entry)
                for tag, value in struct.iter_unpack(entry, dynamic[:whole]):
                    if tag == DT_NULL:
                        break
                    if tag == DT_SONAME:
                        f.seek(sections[link][1] + value)
                        return f.read(512).split(b"\0", 1)[0].decode("utf-8", "replace")
    except (OSError, struct.error, IndexError):
        return None
    return None


def family(name: str) -> str:
    """A library whatever its version: libcudart for libcudart.so.12 and libcudart.so.13."""
    return name.split(".so", 1)[0]


def copies(root: str | Path, prefixes: tuple[str, ...]) -> dict[str, list[str]]:
    """Library family -> the distinct files (a hard link is no copy) on `root`'s filesystem (other mounts left out)
    whose SONAME belongs to a family starting with one of `prefixes`."""
    device = os.stat(root).st_dev
    found: dict[str, dict[tuple[int, int], str]] = defaultdict(dict)
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if _same_device(os.path.join(folder, d), device)]
        for name in files:
            if ".so" not in name:
                continue
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue  # links to a library are no copies
            library = soname(path)
            if library and family(library).startswith(prefixes):
                found[family(library)].setdefault((info.st_dev, info.st_ino), path)
    return {lib: sorted(paths.values()) for lib, paths in sorted(found.items())}


def _same_device(path: str, device: int) -> bool:
    try:
        return not os.path.islink(path) and os.lstat(path).st_dev == device
    except OSError:
        return False
