"""The proxy CA reaches builds as a BuildKit secret and never a layer, the history or the config of an image."""

from __future__ import annotations

import hashlib
import os

import pytest

from vre import matrix
from vre.verify import ca_scan
from vre.build import DEFAULT_CA

from tests.testkit import build_or_fail, mini_repo

pytestmark = pytest.mark.skipif(not DEFAULT_CA.is_file(), reason=f"no CA bundle at {DEFAULT_CA}")


def test_bundle_is_parsed():
    certs = ca_scan.certificates(DEFAULT_CA)
    assert len(certs) > 1
    assert all(len(c.b64_line) == 64 for c in certs)


def test_base_geo_contains_no_build_ca(base_geo):
    assert ca_scan.scan(base_geo, DEFAULT_CA) == []


@pytest.fixture(scope="module")
def leaky(docker_engine, tmp_path_factory):
    """An image whose postBuild copies the secret into the home directory."""
    root = mini_repo(tmp_path_factory.mktemp("leak"),
                     {"test-leak": {"apt.txt": "\n", "postBuild": "cp /run/secrets/vre-ca $HOME/ca.pem\n"}})
    m = matrix.load(root / "images" / "matrix.yaml")
    return build_or_fail(m, ["test-leak/debian"], root / ".vre")["test-leak/debian"]


@pytest.mark.parametrize("via_save", [False, True], ids=["layer-dirs", "docker-save"])
def test_scan_finds_a_ca_that_a_layer_copied(leaky, via_save):
    """The positive control, through both ways of reading layers."""
    findings = ca_scan.scan(leaky, DEFAULT_CA, via_save=via_save)
    assert findings, "a copied CA bundle was not found"
    assert all("/home/jovyan/ca.pem" in f for f in findings)
    # Only the certificates that Debian does not ship are reported: the proxy's, not the public ones.
    assert len(findings) < len(ca_scan.certificates(DEFAULT_CA)) / 2


@pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's layer directories are readable by root only")
def test_layers_are_read_in_place_as_docker_save_has_them(leaky):
    """Reading the local daemon's layer directories (no disk needed) sees the files that `docker save` streams."""
    def digests(via_save):
        return sorted(hashlib.sha256(content.read()).hexdigest() for _, _, content in ca_scan.files(leaky, via_save))

    assert ca_scan._files_in_dirs(leaky) is not None, "the layers were not read in place"
    in_place = digests(False)
    assert len(in_place) > 1000
    assert in_place == digests(True)  # the names of hard links may differ: the contents may not
