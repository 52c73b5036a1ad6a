"""images/matrix.yaml: parsing, expansion into targets, ordering, and every bad input refused before a build."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from vre import cli
from vre.build import run as build_mod
from vre.matrix import MatrixError, load

from tests.testkit import ROOT


def write(tmp: Path, spec: dict, specs=(("debian", "a"), ("debian", "b"), ("debian", "c-cpu"), ("debian", "c-gpu"))):
    for flavor, name in specs:
        d = tmp / "environments" / flavor / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "apt.txt").write_text("jq\n")
    path = tmp / "images" / "matrix.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def good() -> dict:
    boot = {"suite": "bookworm", "source_date_epoch": 1}
    return {
        "name": "t",
        "flavors": {"debian": {"base": {"bootstrap": boot}}},
        "variants": {"cpu": {}, "gpu": {"cuda": "12.9"}},
        "platforms": ["linux/amd64"],
        "images": {
            "c": {"parent": "a", "flavors": ["debian"], "variants": ["cpu", "gpu"]},
            "a": {"flavors": ["debian"]},
            "b": {"parent": "a", "flavors": ["debian"]},
        },
    }


def test_real_matrix_loads_and_lists_base_geo_first():
    m = load(ROOT / "images" / "matrix.yaml")
    keys = list(m.targets)
    assert keys[0].startswith("base-geo/")
    assert "base-geo/debian" in keys
    for target in m.targets.values():
        if target.parent:
            assert keys.index(target.parent) < keys.index(target.key)


def test_targets_expand_variants_and_order_parents_first(tmp_path):
    m = load(write(tmp_path, good()))
    assert list(m.targets) == ["a/debian", "c/debian/cpu", "c/debian/gpu", "b/debian"]
    assert m.targets["c/debian/gpu"].parent == "a/debian"
    assert m.targets["c/debian/gpu"].ref == "t/c:debian-gpu"
    assert m.targets["c/debian/gpu"].layers[0].spec_dir == tmp_path / "environments/debian/c-gpu"


def test_another_platform_gets_its_own_local_tags_and_base(tmp_path):
    from vre.build.base import base_ref
    from vre.build.run import platform_args

    spec = good() | {"platforms": ["linux/amd64", "linux/arm64"]}
    m = load(write(tmp_path, spec))
    arm = m.on_platform("linux/arm64")
    assert arm.targets["c/debian/gpu"].ref == "t/c:debian-gpu-arm64" and arm.targets["c/debian/gpu"].tag == "debian-gpu"
    assert arm.foundation_ref("debian") == "t/foundation:debian-arm64"
    assert base_ref(arm, "debian") == base_ref(m, "debian") + "-arm64"
    assert platform_args(arm) == ["--platform", "linux/arm64"] and platform_args(m) == []
    assert m.on_platform(None) is m and m.targets["a/debian"].ref == "t/a:debian"  # the engine's own: as before
    with pytest.raises(MatrixError, match=r"platforms: no 'linux/arm64' \(expected one of: linux/amd64\)"):
        load(write(tmp_path, good())).on_platform("linux/arm64")


def test_select_builds_only_what_is_needed(tmp_path):
    m = load(write(tmp_path, good()))
    assert [t.key for t in m.select(["a"])] == ["a/debian"]
    assert [t.key for t in m.select(["c"], variants=["gpu"])] == ["a/debian", "c/debian/gpu"]
    assert [t.key for t in m.select(["b"])] == ["a/debian", "b/debian"]


def test_include_adds_layers_in_order(tmp_path):
    spec = good()
    spec["images"]["d"] = {"parent": "c", "include": ["b"], "flavors": ["debian"], "variants": ["cpu"]}
    m = load(write(tmp_path, spec))
    assert [layer.name for layer in m.targets["d/debian/cpu"].layers] == ["b"]
    assert m.targets["d/debian/cpu"].parent == "c/debian/cpu"


def bad(spec_change, tmp_path, specs=None):
    spec = good()
    spec_change(spec)
    path = write(tmp_path, spec, **({"specs": specs} if specs is not None else {}))
    with pytest.raises(MatrixError) as err:
        load(path)
    assert str(path) in str(err.value)
    return str(err.value)


def test_unknown_parent(tmp_path):
    msg = bad(lambda s: s["images"]["b"].update(parent="nope"), tmp_path)
    assert "images.b.parent" in msg and "'nope'" in msg and "expected one of: c, a, b" in msg


def test_cycle(tmp_path):
    msg = bad(lambda s: s["images"]["a"].update(parent="b"), tmp_path)
    assert "cycle" in msg and "a -> b -> a" in msg.replace("b -> a -> b", "a -> b -> a")


def test_unknown_flavor(tmp_path):
    msg = bad(lambda s: s["images"]["b"].update(flavors=["debian", "nix"]), tmp_path)
    assert "images.b.flavors" in msg and "'nix'" in msg and "expected one of: debian" in msg


def test_unknown_flavor_definition(tmp_path):
    msg = bad(lambda s: s["flavors"].update(nix=s["flavors"]["debian"]), tmp_path)
    assert "flavors.nix" in msg and "expected one of: debian, conda" in msg


def test_unknown_variant(tmp_path):
    msg = bad(lambda s: s["images"]["c"].update(variants=["cpu", "tpu"]), tmp_path)
    assert "images.c.variants" in msg and "'tpu'" in msg and "expected one of: cpu, gpu" in msg


def test_missing_spec_file(tmp_path):
    msg = bad(lambda s: None, tmp_path, specs=[("debian", "a"), ("debian", "b"), ("debian", "c-cpu")])
    assert "images.c" in msg and "missing spec file" in msg and "environments/debian/c-gpu/apt.txt" in msg


def test_typo_in_image_key(tmp_path):
    msg = bad(lambda s: s["images"]["b"].update(parnt="a"), tmp_path)
    assert "images.b.parnt: unknown key" in msg and "expected one of: parent, include, flavors" in msg


def test_typo_in_top_level_and_bootstrap_keys(tmp_path):
    msg = bad(lambda s: s.update(imgaes={}), tmp_path)
    assert "imgaes: unknown key" in msg and "name, flavors, variants, platforms, images" in msg
    msg = bad(lambda s: s["flavors"]["debian"]["base"]["bootstrap"].update(suit="trixie"), tmp_path)
    assert "flavors.debian.base.bootstrap.suit: unknown key" in msg and "suite" in msg


def test_base_reference_must_be_pinned_by_digest(tmp_path):
    msg = bad(lambda s: s["flavors"]["debian"].update(base={"reference": "debian:bookworm"}), tmp_path)
    assert "flavors.debian.base.reference" in msg and "sha256" in msg


def test_variant_child_of_variant_parent_must_pick_variants(tmp_path):
    msg = bad(lambda s: s["images"]["b"].update(parent="c"), tmp_path)
    assert "images.b.variants" in msg and "parent 'c' has variants cpu, gpu" in msg


def test_bad_matrix_builds_nothing(tmp_path, monkeypatch):
    spec = good()
    spec["images"]["b"]["parnt"] = "a"
    path = write(tmp_path, spec)
    called = []
    monkeypatch.setattr(build_mod, "docker_build", lambda *a, **k: called.append(a))
    monkeypatch.setattr(build_mod, "ensure_base", lambda *a, **k: called.append(a))
    result = CliRunner().invoke(cli.app, ["build", "--matrix", str(path)])
    assert result.exit_code == 2
    assert "images.b.parnt: unknown key" in result.output
    assert called == []


def test_unknown_image_on_command_line(tmp_path):
    result = CliRunner().invoke(cli.app, ["build", "nope", "--matrix", str(write(tmp_path, good()))])
    assert result.exit_code == 2 and "unknown image 'nope'" in result.output


def test_list_shows_tree(tmp_path):
    result = CliRunner().invoke(cli.app, ["list", "--matrix", str(write(tmp_path, good()))])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    row = {name: next(i for i, line in enumerate(lines) if f"t/{name}:" in line) for name in ("a", "b", "c")}
    assert row["a"] < row["c"] and row["a"] < row["b"]
    indent = {name: len(lines[i]) - len(lines[i].lstrip(" │├└─")) for name, i in row.items()}
    assert indent["b"] > indent["a"]


def test_budgets_per_image_and_per_variant(tmp_path):
    spec = good()
    spec["images"]["a"]["budget"] = "1.9 GB"
    spec["images"]["c"]["budget"] = {"cpu": "650 MB"}
    m = load(write(tmp_path, spec))
    assert m.budget(m.targets["a/debian"]) == 1_900_000_000
    assert m.budget(m.targets["c/debian/cpu"]) == 650_000_000
    assert m.budget(m.targets["c/debian/gpu"]) is None
    assert m.budget(m.targets["b/debian"]) is None


@pytest.mark.parametrize("budget,message", [
    ("lots", "images.a.budget: 'lots' is not a size (expected e.g. '1.9 GB' or '650 MB')"),
    ({"gpu": "1 GB"}, "images.a.budget.gpu: unknown 'gpu' (expected one of: )"),
])
def test_a_bad_budget_is_named(tmp_path, budget, message):
    spec = good()
    spec["images"]["a"]["budget"] = budget
    with pytest.raises(MatrixError, match=re.escape(message)):
        load(write(tmp_path, spec))
