"""`vre extend` on the debian flavor: a folder with a pip and an apt package added to base-geo (built, the base's
compat suite and the folder's tests passed, manifest, SBOM and release notes against base-geo), and everything that
must be refused before or after the build, naming what and why, with nothing tagged."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from tests.testkit import ROOT
from tests.unit.test_extend_folder import make_folder
from vre import engine
from vre.cli import app
from vre.errors import USAGE
from vre.extend import ExtendError, apt, baseimage, pip
from vre.extend import folder as folder_mod
from vre.extend.build import ExtendOptions, extend
from vre.lock.debian import pins
from vre.workspace import Workspace

EXAMPLE = ROOT / "examples" / "extend" / "eo-extras"


def vre(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def installed(image: str) -> dict:
    """The image's own record of its packages (/opt/vre/manifest.json)."""
    return json.loads(engine.docker("run", "--rm", "--entrypoint", "cat", image, "/opt/vre/manifest.json").stdout)


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_the_command_refuses_a_bad_tag_and_an_unknown_image(tmp_path, docker_engine):
    folder = make_folder(tmp_path, "my-ext", {"apt.txt": "jq\n"})
    result = vre("extend", "eo-vre/base-geo:debian", str(folder), "--tag", "Not A Tag")
    assert result.exit_code == USAGE and "--tag Not A Tag: not an image reference" in one_line(result.output)
    result = vre("extend", "eo-vre-absent/none:here", str(folder), "--tag", "eo-vre-absent/x:y")
    assert result.exit_code == USAGE
    assert "BASE_IMAGE eo-vre-absent/none:here: no such image here" in one_line(result.output)


# --- against base-geo: refusals before the build ---------------------------------------------------------------------

def test_a_base_package_at_another_version_is_refused_naming_both(base_geo, tmp_path):
    requests = installed(base_geo)["pip"]["requests"]
    folder = make_folder(tmp_path, "my-ext", {"requirements.in": "humanize\nrequests==2.0\n"})
    tag = f"{base_geo.split('/')[0]}-test/refused:pip"
    result = vre("extend", base_geo, str(folder), "--tag", tag)
    assert result.exit_code == USAGE, result.output
    assert (f"requests==2.0 (my-ext/requirements.in line 2) conflicts with requests {requests} locked in base-geo "
            "(base-geo's lock)") in one_line(result.output)
    assert not (folder / "requirements.txt").exists() and engine.image_id(tag) is None


def test_a_dependency_that_would_move_a_base_package_is_refused_naming_what_needs_it(base_geo, tmp_path):
    """panel 0.14 needs bokeh < 2.5; base-geo locks bokeh 3 (Dask's dashboard)."""
    bokeh = installed(base_geo)["pip"]["bokeh"]
    assert not bokeh.startswith("2."), f"base-geo's bokeh {bokeh}: pick another example"
    folder = make_folder(tmp_path, "dashboards", {"requirements.in": "panel==0.14.4\n"})
    with pytest.raises(ExtendError) as refused:
        pip.lock(folder_mod.load(folder, "debian", ["base-geo"]), baseimage.read(base_geo, tmp_path / "vre"))
    message = one_line(str(refused.value))
    assert "dashboards/requirements.in: no solution on top of" in message
    assert f"(needed by panel) conflicts with bokeh {bokeh} locked in base-geo (base-geo's lock)" in message
    assert not (folder / "requirements.txt").exists()


def test_an_apt_version_of_a_base_package_is_refused(base_geo, tmp_path):
    libc = installed(base_geo)["apt"]["libc6"]
    folder = make_folder(tmp_path, "my-ext", {"apt.txt": "jq\nlibc6=2.0-1\n"})
    result = vre("extend", base_geo, str(folder), "--tag", f"{base_geo.split('/')[0]}-test/refused:apt")
    assert result.exit_code == USAGE
    assert f"libc6=2.0-1 (my-ext/apt.txt) conflicts with libc6 {libc} installed in base-geo" in one_line(result.output)


def test_apt_holds_every_base_package_at_its_installed_version(base_geo, tmp_path):
    """The pins the build hands apt (through APT_CONFIG, as extension.Dockerfile does) reach apt: each installed
    package's version has priority 1001, which apt never moves away from."""
    base = baseimage.read(base_geo, tmp_path / "vre")
    extra = tmp_path / "extra"
    extra.mkdir()
    apt.write_pins(base, extra, "/tmp/vre-extra")
    names = ["libc6", "gdal-bin", "python3"]
    out = engine.docker("run", "--rm", "-v", f"{extra}:/tmp/vre-extra:ro", "-e", "APT_CONFIG=/tmp/vre-extra/apt.conf",
                        "--entrypoint", "apt-cache", base_geo, "policy", *names).stdout.decode()
    for name in names:
        section = out.split(f"{name}:", 1)[1]
        assert f"*** {base.apt[name]} 1001" in section, f"{name} is not held at {base.apt[name]}:\n{section[:400]}"


# --- against base-geo: built -----------------------------------------------------------------------------------------

@pytest.mark.build
def test_extend_base_geo_with_a_pip_and_an_apt_package(base_geo, tmp_path):
    folder = shutil.copytree(EXAMPLE, tmp_path / "eo-extras")
    tag = f"{base_geo.split('/')[0]}-test/eo-extras:debian"
    before = installed(base_geo)
    lines: list[str] = []
    result = extend(base_geo, folder, ExtendOptions(tag=tag, workspace=Workspace(tmp_path / ".vre")), say=lines.append)
    try:
        # Tested: the base's whole compat suite, then the folder's tests, in the image that was tagged.
        assert result.compat.ok and result.compat.failed == 0 and result.compat.passed > 0, result.compat
        assert result.tests.ok and result.tests.passed == 2, result.tests
        assert engine.image_id(tag) == result.image_id
        # The lock adds humanize and nothing of the base; a second extend keeps it as it is.
        lock = (folder / "requirements.txt").read_text()
        assert set(pins(lock)) == {"humanize"}, lock
        base = baseimage.read(base_geo, tmp_path / "base")
        assert pip.lock(folder_mod.load(folder, "debian", base.layers), base) == []
        assert (folder / "requirements.txt").read_text() == lock
        # Every base package is as it was; the extension's are there.
        after = installed(tag)
        for eco in ("apt", "pip"):
            changed = {n: (v, after[eco].get(n)) for n, v in before[eco].items() if after[eco].get(n) != v}
            assert not changed, f"{eco} packages of base-geo changed: {changed}"
        assert "jq" in after["apt"] and after["pip"]["humanize"] == pins(lock)["humanize"]
        assert after["layers"] == [*before["layers"], "eo-extras"]
        labels = engine.inspect(tag)["Config"]["Labels"]
        assert labels["io.eo-vre.layers"] == " ".join(after["layers"])
        assert labels["io.eo-vre.base-image"].endswith(engine.image_id(base_geo))
        # Manifest, SBOM and release notes against base-geo: in the image and beside it.
        release = result.release
        sbom = json.loads((release / "sbom.cdx.json").read_text())
        purls = {c["purl"] for c in sbom["components"]}
        assert f"pkg:pypi/humanize@{after['pip']['humanize']}" in purls
        assert any(p.startswith("pkg:deb/debian/jq@") for p in purls)
        notes = (release / "release-notes.md").read_text()
        assert f"`{base_geo}` → `{tag}`" in notes
        assert "| jq | ➕ added |" in notes and "| humanize | ➕ added |" in notes
        assert not any(word in notes for word in ("upgraded", "downgraded", "removed")), notes
        embedded = engine.docker("run", "--rm", "--entrypoint", "cat", tag, "/opt/vre/release/release-notes.md")
        assert embedded.stdout.decode() == notes
    finally:
        engine.docker("rmi", tag, check=False)


@pytest.mark.build
def test_a_postbuild_that_changes_a_base_package_is_refused_and_tags_nothing(base_geo, tmp_path):
    six = installed(base_geo)["pip"]["six"]
    folder = make_folder(tmp_path, "sneaky", {"postBuild": f'#!/bin/bash\npip install --no-deps "six<{six}"\n'})
    (folder / "postBuild").chmod(0o755)
    tag = f"{base_geo.split('/')[0]}-test/sneaky:debian"
    with pytest.raises(ExtendError) as refused:
        extend(base_geo, folder, ExtendOptions(tag=tag, test=False, workspace=Workspace(tmp_path / ".vre")))
    message = one_line(str(refused.value))
    assert f"the extension changed packages of base-geo: pip six {six} -> " in message
    assert "nothing tagged" in message and engine.image_id(tag) is None
