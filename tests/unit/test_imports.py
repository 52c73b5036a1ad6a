"""Imports go one way: no cycle in src/vre, and the product never reaches into the tests tree."""

from __future__ import annotations

import ast
import importlib
import os
import sys

import pytest

from tests.testkit import ROOT
from tests.testkit.imports import cycles, graph

SRC = ROOT / "src"


def test_no_import_cycle_in_the_package():
    found = cycles(graph(SRC, "vre"))
    assert found == [], "modules that import one another: " + "; ".join(" <-> ".join(group) for group in found)


def test_the_check_finds_a_cycle_through_function_level_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "cli").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cli" / "__init__.py").write_text("from pkg.cli import main\n")
    (package / "cli" / "main.py").write_text("from pkg.cli import extra\n")
    (package / "cli" / "extra.py").write_text("def run():\n    from pkg.cli.main import app\n")
    (package / "other.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import cli\n")
    assert cycles(graph(tmp_path, "pkg")) == [["pkg.cli.extra", "pkg.cli.main"]]


def test_the_package_never_imports_the_tests():
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] in ("tests", "testkit")], f"{path} imports {names}"


def test_the_image_probe_does_nothing_when_imported(monkeypatch):
    def walk(*args, **kwargs):
        raise AssertionError("image_probe walked the filesystem on import")

    monkeypatch.setattr(os, "walk", walk)
    sys.modules.pop("vre.release.image_probe", None)
    module = importlib.import_module("vre.release.image_probe")
    with pytest.raises(AssertionError, match="walked"):
        module.npm()
