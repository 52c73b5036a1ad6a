"""The conda flavor: environment specs, layered locks solved with rattler, installs from locks, recipes.

Modules, one job each: spec (environment.yml, virtual-packages.yml), units (what gets locked, and its inputs),
group (solve groups: which locks are solved together), groupsolve (one solve per group and platform, each lock the
closure of its specs), diagnose (missing data and conflicts in a few lines), channels (reaching channels, fast
failure), solve (rattler), lockfile (conda-lock files in and out), lock (the `vre lock` flow), recipechannel (our
recipes in solves and locks: built, rendered, published URL), recipes (`vre recipes`), recipepublish
(`vre recipes publish`), env (`vre env`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from vre.errors import VreError

T = TypeVar("T")

# py-rattler finishes its awaitables on tokio threads that still drop Python objects just after the result is
# delivered; if the interpreter starts finalizing then, the process dies with SIGSEGV/SIGABRT (seen here in ~10% of
# short runs). Letting those threads settle after each run removes it (0 crashes in 200 runs).
SETTLE_SECONDS = 0.1


class CondaError(VreError):
    """A conda-flavor failure whose message names the file, field or channel and what to do."""


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run for coroutines that await py-rattler."""
    try:
        return asyncio.run(coro)
    finally:
        time.sleep(SETTLE_SECONDS)
