"""Release files of images: `vre diff` of two images, the manifest and the CycloneDX SBOM of the real base-geo image,
and their embedding in an image (src/vre/release/files.py)."""

from __future__ import annotations

import json
import re

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from typer.testing import CliRunner

from tests.testkit import ROOT, build_or_fail, mini_repo
from vre import engine, matrix
from vre.cli import app
from vre.release import files as meta
from vre.release.manifest import Manifest, collect
from vre.release.packages import pip_lock
from vre.sizes import human_size
from vre.workspace import Workspace


def vre(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


# --- the real base-geo image: manifest and SBOM -------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_geo_release(base_geo, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("release")
    meta.generate(base_geo, out, ref=base_geo)
    return {"manifest": Manifest.model_validate_json((out / "manifest.json").read_text()),
            "md": (out / "manifest.md").read_text(), "sbom": (out / "sbom.cdx.json").read_text()}


def in_image(ref: str, script: str) -> str:
    return engine.docker("run", "--rm", ref, "bash", "-c", script).stdout.decode().strip()


def test_manifest_markdown_lists_what_the_image_reports(base_geo, base_geo_release):
    md = base_geo_release["md"]
    gdal, otb, lab = in_image(base_geo, "python -c 'from osgeo import gdal; print(gdal.__version__)'; "
                                        "otbcli_ReadImageInfo -version 2>&1 | grep -o '[0-9][0-9.]*$'; "
                                        "jupyter lab --version").split()
    apt = dict(line.split("\t") for line in in_image(
        base_geo, "dpkg-query -W -f '${Package}\\t${Version}\\n' gdal-bin otb-bin").splitlines())
    assert f"| gdal | {gdal} |" in md  # the venv sees Debian's GDAL bindings
    assert f"| gdal-bin | {apt['gdal-bin']} | amd64 |" in md and apt["gdal-bin"].startswith(gdal)
    assert f"| otb-bin | {apt['otb-bin']} | amd64 |" in md and apt["otb-bin"].startswith(otb)
    assert f"| jupyterlab | {lab} |" in md
    assert md.startswith(f"# {base_geo}\n")


def test_manifest_figures_are_dockers(base_geo, base_geo_release):
    manifest = base_geo_release["manifest"]
    info = engine.inspect(base_geo)
    history = engine.docker("history", "-q", base_geo).stdout.decode().split()
    assert (manifest.image_id, manifest.size) == (info["Id"], info["Size"])
    assert len(manifest.image_layers) == len(history)
    assert sum(layer.size for layer in manifest.image_layers) == info["Size"]
    assert f"| size | {human_size(info['Size'])} in {len(history)} layers |" in base_geo_release["md"]
    assert manifest.layers == ["base-geo"] and manifest.flavor == "debian"


def test_sbom_validates_and_holds_the_locked_pip_packages_with_their_hashes(base_geo_release):
    text = base_geo_release["sbom"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    components = {c["purl"]: c for c in json.loads(text)["components"]}
    locked = pip_lock((ROOT / "environments" / "debian" / "base-geo" / "requirements.txt").read_text())
    assert len(locked) > 100
    for package in locked:
        component = components[f"pkg:pypi/{package.name}@{package.version}"]
        assert {h["content"] for h in component["hashes"] if h["alg"] == "SHA-256"} >= {h for _, h in package.hashes}
        assert {"name": "eo-vre:layer", "value": "base-geo"} in component["properties"]


def deb_purls(sbom: str) -> set[tuple[str, str, str, str]]:
    """(name, version, arch, distro) of every pkg:deb/debian component, decoded by packageurl."""
    purls = [PackageURL.from_string(c["purl"]) for c in json.loads(sbom)["components"]]
    return {(p.name, p.version, p.qualifiers["arch"], p.qualifiers["distro"]) for p in purls
            if p.type == "deb" and p.namespace == "debian"}


def test_sbom_holds_every_installed_debian_package(base_geo, base_geo_release):
    listed = in_image(base_geo, "dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version} ${Architecture}\\n'")
    installed = {(*line.split()[1:], "debian-12") for line in listed.splitlines() if line.startswith("ii")}
    assert len(installed) > 300
    assert deb_purls(base_geo_release["sbom"]) == installed


HIDDEN_LOCKS = """
import glob, json
for lock in glob.glob("/opt/code-server/**/node_modules/.package-lock.json", recursive=True):
    for path, entry in json.load(open(lock))["packages"].items():
        if "version" in entry:
            print(entry.get("name") or path.rsplit("node_modules/", 1)[1], entry["version"])
"""


@pytest.fixture(scope="module")
def ide(docker_engine, real_matrix) -> str:
    """The debian ide image (code-server from npm), built through the factory (from cache)."""
    return build_or_fail(real_matrix, ["ide/debian"], ROOT / ".vre")["ide/debian"]


def test_manifest_lists_every_npm_package_npm_installed(ide, tmp_path):
    npm = {(p.name, p.version) for p in collect(ide, tmp_path).packages["npm"]}
    # npm's own record of what it put in each node_modules folder it filled (its hidden lockfiles)
    recorded = {tuple(line.split()) for line in in_image(ide, f"/usr/bin/python3 -c '{HIDDEN_LOCKS}'").splitlines()}
    assert len(recorded) > 200
    assert recorded <= npm
    version = in_image(ide, "code-server --version 2>/dev/null | tail -n 1").split()[0]
    assert ("code-server", version) in npm


# --- embedding, write_artifacts and `vre diff` of two images, on tiny images --------------------------------------
NODE_PACKAGE = ('mkdir -p "$HOME/.local/lib/node_modules/@demo/widget" && echo \'{"name": "@demo/widget", '
                '"version": "VERSION"}\' > "$HOME/.local/lib/node_modules/@demo/widget/package.json"\n')


@pytest.fixture(scope="module")
def tiny_pair(docker_engine, tmp_path_factory):
    """Two tiny images: rel-old (six 1.16.0, jq, npm @demo/widget 2.1.0) and rel-new (six 1.17.0, no jq,
    @demo/widget 2.0.0). The npm package is written by postBuild, as any install under a node_modules folder."""
    six_old = "six==1.16.0 \\\n    --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254\n"
    six_new = "six==1.17.0 \\\n    --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274\n"
    root = mini_repo(tmp_path_factory.mktemp("repo"), {
        "rel-old": {"requirements.txt": six_old, "apt.txt": "jq\n",
                    "postBuild": "#!/bin/bash\nset -e\n" + NODE_PACKAGE.replace("VERSION", "2.1.0")},
        "rel-new": {"requirements.txt": six_new,
                    "postBuild": "#!/bin/bash\nset -e\n" + NODE_PACKAGE.replace("VERSION", "2.0.0")},
    })
    m = matrix.load(root / "images" / "matrix.yaml")
    return build_or_fail(m, ["rel-old/debian", "rel-new/debian"], root / ".vre")


@pytest.fixture(scope="module")
def embedded(tiny_pair):
    """rel-old as the factory built it: its release files are its last layer."""
    return tiny_pair["rel-old/debian"]


def test_embedded_release_files_describe_the_image(embedded):
    listing = in_image(embedded, "ls /opt/vre/release; stat -c %a /opt/vre/release/sbom.cdx.json")
    assert listing.split() == ["manifest.json", "manifest.md", "sbom.cdx.json", "644"]
    manifest = Manifest.model_validate_json(in_image(embedded, "cat /opt/vre/release/manifest.json"))
    # They describe the image stage below them: the release layer adds only these files.
    assert manifest.ref == embedded
    tested = engine.inspect(manifest.image_id)
    assert tested, f"the image stage {manifest.image_id} the files describe is gone"
    assert engine.inspect(embedded)["RootFS"]["Layers"][:-1] == tested["RootFS"]["Layers"]
    assert in_image(embedded, "head -n 1 /opt/vre/release/manifest.md") == f"# {embedded}"
    sbom = in_image(embedded, "cat /opt/vre/release/sbom.cdx.json")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom) is None
    components = {c["purl"]: c for c in json.loads(sbom)["components"]}
    six = components["pkg:pypi/six@1.16.0"]
    assert six["hashes"] == [{"alg": "SHA-256",
                              "content": "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"}]
    jq = in_image(embedded, "dpkg-query -W -f '${Version}' jq")
    assert ("jq", jq, "amd64", "debian-12") in deb_purls(sbom)
    assert "pkg:npm/%40demo/widget@2.1.0" in components


def test_release_files_are_made_once_per_image(embedded, tmp_path):
    image = Manifest.model_validate_json(in_image(embedded, "cat /opt/vre/release/manifest.json")).image_id
    first = meta.release_files(image, embedded, Workspace(tmp_path))
    stamp = (first / "sbom.cdx.json").stat().st_mtime_ns
    assert meta.release_files(image, embedded, Workspace(tmp_path)) == first
    assert (first / "sbom.cdx.json").stat().st_mtime_ns == stamp, "made again for the same image id"
    assert (first / "sbom.cdx.json").read_text() == in_image(embedded, "cat /opt/vre/release/sbom.cdx.json") + "\n"


def test_write_artifacts_publishes_the_embedded_files(embedded, tmp_path):
    out = tmp_path / "artifacts"
    paths = meta.write_artifacts(embedded, out)
    assert [p.name for p in paths] == list(meta.FILES)
    for path in paths:
        assert path.read_text() == in_image(embedded, f"cat /opt/vre/release/{path.name}") + "\n"


def test_vre_diff_of_two_images(tiny_pair, embedded):
    new = tiny_pair["rel-new/debian"]  # built without embedded files: its manifest is read from it
    result = vre("diff", embedded, new, "--fail-on-downgrade")
    notes = result.stdout
    assert result.exit_code == 1, notes
    assert "| six | ⬆️ upgraded | 1.16.0 | 1.17.0 |" in notes
    assert "| @demo/widget | ⚠️ **downgraded** | 2.1.0 | 2.0.0 |" in notes
    assert "> - `@demo/widget` (npm): 2.1.0 → 2.0.0" in notes
    assert re.search(r"^\| jq \| ➖ removed \| \S+ \| – \|$", notes, re.M)
    assert "| image id | `" in notes


def test_vre_artifacts_writes_the_files(embedded, tmp_path):
    result = vre("artifacts", embedded, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(meta.FILES)
