"""The proxy CA reaches builds as a BuildKit secret and never a layer, the history or the config of an image."""

from __future__ import annotations

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


def test_scan_finds_a_ca_that_a_layer_copied(docker_engine, tmp_path):
    """The positive control: a postBuild that copies the secret into the home directory is caught."""
    root = mini_repo(tmp_path, {"test-leak": {"apt.txt": "\n", "postBuild": "cp /run/secrets/vre-ca $HOME/ca.pem\n"}})
    m = matrix.load(root / "images" / "matrix.yaml")
    ref = build_or_fail(m, ["test-leak/debian"], root / ".vre")["test-leak/debian"]
    findings = ca_scan.scan(ref, DEFAULT_CA)
    assert findings, "a copied CA bundle was not found"
    assert all("/home/jovyan/ca.pem" in f for f in findings)
    # Only the certificates that Debian does not ship are reported: the proxy's, not the public ones.
    assert len(findings) < len(ca_scan.certificates(DEFAULT_CA)) / 2
