"""recipes/: every recipe renders for every platform and passes lint (otb included, though unbuilt here); `vre
recipes build` fails fast on an unreachable channel. Building vre-config and vre-compat is what the session's pool
fixture does (with their tests), and test_install.py installs and runs them."""

from __future__ import annotations

import shutil
import textwrap
import tomllib

from tests.testkit.conda import ROOT, closed_port
from typer.testing import CliRunner

from vre.cli import app
from vre.lock.conda import recipes



def test_every_recipe_renders_for_every_platform_and_passes_lint():
    result = CliRunner().invoke(app, ["recipes", "check", "--matrix", str(ROOT / "images" / "matrix.yaml")])
    assert result.exit_code == 0, result.output
    count = len(list((ROOT / "recipes").glob("*/recipe.yaml")))
    assert f"{count} recipes rendered for every platform, 0 problems" in result.output
    otb = {v.variant["target_platform"]: v for p in ("linux-64", "osx-arm64")
           for v in recipes.render(recipes.find(ROOT, ["otb"])[0], p)}
    assert set(otb) == {"linux-64", "osx-arm64"}
    assert "unbuilt" in (ROOT / "recipes" / "otb" / "README.md").read_text().lower()


def test_lint_names_what_is_missing(tmp_path):
    shutil.copytree(ROOT / "compat-tests", tmp_path / "compat-tests",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    folder = tmp_path / "recipes" / "sloppy"
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(textwrap.dedent("""\
        package: {name: sloppy, version: "0.9"}
        source:
          - url: https://example.invalid/sloppy-0.9.tar.gz
          - git: https://example.invalid/sloppy.git
          - path: ../../compat-tests/
        build: {noarch: generic}
        about: {summary: no license}
        """))
    problems = recipes.check(recipes.find(tmp_path))
    pyproject = tmp_path / "compat-tests" / "pyproject.toml"
    version = tomllib.loads(pyproject.read_text())["project"]["version"]
    where = f"{folder / 'recipe.yaml'} (noarch)"
    assert problems == [
        f"{where}: about.license: missing",
        f"{where}: tests: missing (expected at least one test of the built package)",
        f"{where}: source[0]: url without sha256 (expected the archive's checksum)",
        f"{where}: source[1]: git without tag or rev (expected a fixed revision)",
        f"{where}: package.version: 0.9, but {pyproject} has project.version {version} (expected the same)",
    ]


def test_build_fails_fast_when_its_channel_is_unreachable(tmp_path):
    channel = f"http://127.0.0.1:{closed_port()}/conda-forge"
    result = CliRunner().invoke(app, ["recipes", "build", "vre-config", "--matrix", str(ROOT / "images/matrix.yaml"),
                                      "--output", str(tmp_path / "out"), "--channel", channel])
    assert result.exit_code == 1
    assert f"channel {channel} ({channel}) cannot be reached" in " ".join(result.output.split())
