"""base-geo in a real browser: EODAG's JupyterLab panel searches a local STAC catalog (configured as a provider in the
user's EODAG configuration, as a platform ships one) within a rectangle drawn on its map, lists the products, and
the code it generates runs in a notebook and finds them."""
from __future__ import annotations

import textwrap

import pytest

from vre.verify.browser import runner

# The generated catalog (vre_compat.stac_catalog): three scenes, two of them in June 2024; its own collection mapped to
# an EODAG collection, which the panel offers (EODAG_STRICT_COLLECTIONS lists EODAG's own collections only).
SETUP = textwrap.dedent("""\
    import pathlib, textwrap
    from vre_compat.stac_catalog import write_catalog
    home = pathlib.Path.home()
    catalog = write_catalog(home / "catalog")
    conf = home / ".config" / "eodag"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "eodag.yml").write_text(textwrap.dedent(f'''\\
        local_stac:
          priority: 10
          search: {{type: StaticStacSearch, api_endpoint: {catalog}}}
          products:
            S2_MSI_L2A: {{_collection: LOCAL_S2}}
          download: {{type: HTTPDownload}}
        '''))
    """)
JUNE = {"S2_LOCAL_20240601", "S2_LOCAL_20240611"}


@pytest.fixture(scope="module")
def eodag_run(base_geo_image, workspace):
    # SETUP runs before JupyterLab loads: the server's EODAG reads the configuration on the panel's first request
    with runner.scenario_in_container("eodag", base_geo_image, workspace, prepare=["python", "-c", SETUP],
                                      provider="local_stac", collection="S2_MSI_L2A", start="2024-06-01",
                                      end="2024-06-30") as (container, result, _):
        yield container, result


def test_eodag_panel_finds_the_local_catalog(eodag_run):
    container, result = eodag_run
    assert result.ok, (f"{result.error}\nsteps:\n{result.summary()}\nscreenshots: {result.screenshots}\n"
                       f"container log:\n{container.log_tail(80)}")
    facts = result.facts
    assert set(facts["listed"]) == JUNE, f"the panel listed {facts['listed']}"
    code = facts["code"]
    assert 'provider="local_stac"' in code and "geom=" in code and 'start="2024-06-01"' in code, code
    assert all(scene in facts["output"] for scene in JUNE), f"the generated code's output: {facts['output']}"
    assert not facts.get("labDialogs"), f"JupyterLab opened dialogs: {facts['labDialogs']}"
    assert not facts["outside"], f"requests left the machine: {facts['outside'][:10]}"
    print(f"listed {facts['listed']}; screenshots {result.screenshots}")
