"""EODAG works offline from its bundled configuration."""
import pytest

pytestmark = [pytest.mark.base_geo, pytest.mark.eodag]


@pytest.fixture
def dag(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # eodag writes ~/.config/eodag on first use
    from eodag import EODataAccessGateway

    return EODataAccessGateway()


def test_providers(dag):
    providers = list(dag.providers)
    assert len(providers) >= 5 and "cop_dataspace" in providers, f"eodag providers: {providers}"


def test_collections_offline(dag):
    collections = [c.id for c in dag.list_collections(fetch_providers=False)]
    assert "S2_MSI_L1C" in collections, f"{len(collections)} collections, no S2_MSI_L1C: {collections[:20]}"
