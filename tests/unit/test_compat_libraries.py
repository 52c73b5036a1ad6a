"""The compat suite's library counter (vre_compat.libraries, behind test_one_copy_of_each_cuda_library): SONAMEs read
from ELF files, copies counted per library whatever their name or version, links and hard links not counted."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from tests.testkit import ROOT

_spec = importlib.util.spec_from_file_location("vre_compat_libraries", ROOT / "compat-tests/vre_compat/libraries.py")
assert _spec and _spec.loader
libraries = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(libraries)


def _libc() -> Path:
    """The C library this process maps (any Linux host has one, whatever its architecture)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        path = line.split()[-1]
        if os.path.basename(path).startswith(("libc.so", "libc-")):
            return Path(path)
    pytest.skip("no libc mapped (not Linux/glibc)")


def test_soname_of_a_library_and_none_for_anything_else(tmp_path):
    assert libraries.soname(_libc()) == "libc.so.6"
    (tmp_path / "text.so").write_text("not ELF")
    assert libraries.soname(tmp_path / "text.so") is None
    assert libraries.soname(Path(os.path.realpath("/bin/sh"))) is None  # an executable: no SONAME
    assert libraries.family("libcudart.so.12") == libraries.family("libcudart.so.13") == "libcudart"


def test_copies_counts_files_by_soname_not_links(tmp_path):
    libc = _libc()
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "deep").mkdir(parents=True)
    first = tmp_path / "a" / "libc.so.6"
    shutil.copy(libc, first)
    assert libraries.copies(tmp_path, ("libc",)) == {"libc": [str(first)]}
    os.link(first, tmp_path / "a" / "libc-hardlink.so")  # same file: no copy
    (tmp_path / "a" / "libc.so").symlink_to(first)  # a link: no copy
    assert libraries.copies(tmp_path, ("libc",)) == {"libc": [str(first)]}
    second = tmp_path / "b" / "deep" / "renamed.so.99"  # another name, the same SONAME: a second copy
    shutil.copy(libc, second)
    assert libraries.copies(tmp_path, ("libc",)) == {"libc": sorted([str(first), str(second)])}
    assert libraries.copies(tmp_path, ("libcudart",)) == {}
