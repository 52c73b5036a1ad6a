"""Every package a conda spec names exists: on conda-forge (its registry of names, committed as test data) or as a
recipe of recipes/. A spec naming anything else fails here, naming the file and the package."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.testkit.conda import ROOT

from vre.lock.conda.diagnose import name_of
from vre.lock.conda.spec import PLATFORMS, load_env

NAMES = Path(__file__).resolve().parent / "data" / "conda-forge-names.txt"


def known_names(root: Path) -> set[str]:
    lines = NAMES.read_text().splitlines()
    assert lines[0].startswith("# conda-forge package names"), f"{NAMES}: expected its provenance header first"
    return {line.strip() for line in lines[1:] if line.strip()} | {p.parent.name for p in
                                                                   (root / "recipes").glob("*/recipe.yaml")}


def unknown(root: Path) -> list[str]:
    """"FILE: NAME" for each spec naming a package neither conda-forge nor recipes/ provides."""
    known = known_names(root)
    found = []
    for path in sorted((root / "environments" / "conda").rglob("environment.yml")):
        env = load_env(path)
        for name in sorted({name_of(s) for p in PLATFORMS for s in env.dependencies(p)}):
            if name not in known:
                found.append(f"{path.relative_to(root)}: {name}")
    return found


def test_every_spec_names_a_package_conda_forge_or_our_recipes_provide():
    found = unknown(ROOT)
    assert not found, "not a conda-forge name nor a recipe of recipes/:\n" + "\n".join(found)


@pytest.mark.parametrize("spec", ["base-geo/environment.yml", "deep-learning-cpu/envs/tensorflow/environment.yml"])
def test_a_name_conda_forge_lacks_fails_naming_file_and_package(tmp_path, spec):
    for folder in ("environments", "recipes"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    path = tmp_path / "environments" / "conda" / spec
    path.write_text(path.read_text().rstrip() + "\n  - not-on-conda-forge-xyz >=1\n")
    assert f"environments/conda/{spec}: not-on-conda-forge-xyz" in unknown(tmp_path)
