"""Browser checks of the images: Chromium (playwright-core) against a running container.

The checks are a pytest suite shipped with the package (checks/), run on the host by `vre test`; runner.py starts
the container and the scenarios (eodag.mjs, desktop.mjs, ide.mjs; npm packages locked in package-lock.json).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from vre.matrix import Target
from vre.verify.compat import Stream, SuiteResult, run_logged, started
from vre.workspace import Workspace

CHECKS = Path(__file__).resolve().parent / "checks"
# Layers whose images get the browser checks. Each check runs on the images whose io.eo-vre.layers label (the layers
# an image adds) names its layer: EODAG's panel on base-geo, the desktop on desktop and vre, ...; the others skip.
LAYERS = ("base-geo", "desktop", "ide")


def needs_browser(target: Target) -> bool:
    """Whether any check applies to the target's image: the checks select on the layers the image adds (its
    io.eo-vre.layers label), not on those it inherits (deep-learning has none, vre has the desktop's and the IDE's)."""
    return any(layer.name in LAYERS for layer in target.layers)


def run_browser(ref: str, root: Path, workspace: Workspace, *, stream: Stream | None = None) -> SuiteResult:
    """Run the browser checks against `ref` (pytest on the host, `root` the repository); screenshots go to the
    workspace's artifacts/browser/."""
    result = started(ref, workspace, "browser")
    with tempfile.TemporaryDirectory(prefix="vre-browser-") as report_dir:
        junit = Path(report_dir) / "junit.xml"
        args = [sys.executable, "-m", "pytest", str(CHECKS), "-v", "-p", "no:cacheprovider", "--rootdir", str(root),
                f"--vre-image={ref}", f"--vre-workspace={workspace.dir}", f"--junitxml={junit}"]
        run_logged(args, result, junit, stream, cwd=root)
    return result
