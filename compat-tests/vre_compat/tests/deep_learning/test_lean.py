"""The heavy wheels' shared objects without the static symbol tables PyPI's builds keep (README "Size budgets and
waste"): the installer strips what a step installed where the image has binutils, as deep-learning has."""
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

pytestmark = [pytest.mark.deep_learning, pytest.mark.lean]
HEAVY = ("torch/lib/libtorch_cpu.so", "tensorflow/libtensorflow_cc.so.2")  # 85 and 154 MB of symbols as on PyPI


@pytest.mark.skipif(shutil.which("readelf") is None, reason="no binutils in this image: the installer strips nothing")
def test_heavy_shared_objects_keep_their_dynamic_symbols_only():
    site = Path(sysconfig.get_paths()["purelib"])
    found = [site / name for name in HEAVY if (site / name).is_file()]
    if not found:
        pytest.skip(f"none of {HEAVY} in {site}")
    for path in found:
        sections = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True,
                                  check=True).stdout
        assert ".dynsym" in sections, f"{path}: no dynamic symbols"
        assert ".symtab" not in sections, f"{path} keeps its static symbol table: not stripped"
