"""Fixtures shared by the end-to-end tests of hubs (tests/e2e/hub, tests/e2e/hpc)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vre.verify.browser import runner

HUB_TESTS = Path(__file__).resolve().parent / "hub"  # its package.json pins configurable-http-proxy


@pytest.fixture(scope="session")
def proxy_command() -> str:
    """JupyterHub's proxy, configurable-http-proxy from npm (locked in tests/e2e/hub)."""
    try:
        runner.npm_ci(HUB_TESTS, "configurable-http-proxy")
    except runner.BrowserSetupError as err:
        pytest.fail(str(err))
    return str(HUB_TESTS / "node_modules" / ".bin" / "configurable-http-proxy")
