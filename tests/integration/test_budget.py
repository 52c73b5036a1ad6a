"""Size budgets: an image over its budget is not tagged, and the error names what weighs most in it."""

from __future__ import annotations

from vre import engine, matrix
from vre.build import BuildOptions, build
from vre.progress import Progress
from vre.workspace import Workspace

from tests.testkit import scaffold


def test_an_image_over_its_budget_fails_listing_its_largest_contents(docker_engine, tmp_path):
    # The foundation alone is about 330 MB; the layer adds a 40 MB file to be named among the directories.
    root = scaffold(tmp_path, "debian", {"test-budget": {"budget": "300 MB"}}, {"test-budget": {
        "apt.txt": "\n", "postBuild": "#!/bin/bash\nhead -c 40000000 /dev/zero > $HOME/ballast.bin\n"}})
    m = matrix.load(root / "images" / "matrix.yaml")
    target = m.targets["test-budget/debian"]
    results: list = []
    assert not build(m, [target], BuildOptions(workspace=Workspace.of(root)), Progress(), results)
    error = results[-1].error
    assert "is over the budget of 300.00 MB (images.test-budget.budget in images/matrix.yaml); nothing tagged" in error
    assert "Debian packages:" in error and "Python distributions:" in error and "/home/jovyan" in error
    assert engine.image_id(target.ref) is None and engine.image_id(target.ref + "-content") is None
