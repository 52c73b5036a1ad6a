"""History: git, jupyterlab-git and nbdime. A notebook committed and its change diffed through the extension's
server API, as JupyterLab's git panel does it."""
import json
import os

import pytest

from vre_compat.helpers import http, jupyter_server, make_notebook, python_tool, run_ok, which

pytestmark = [pytest.mark.base_geo, pytest.mark.history]


def git_api(lab, path: str, body: dict | None = None) -> dict:
    status, text = http(f"{lab.url}/git/{path}", method="POST", timeout=60,
                        headers={**lab.auth, "Content-Type": "application/json"}, data=json.dumps(body or {}))
    assert status == 200, f"POST /git/{path} answered {status}: {text[:500]}"
    return json.loads(text)


def test_git_and_nbdime_commands():
    run_ok([which("git"), "--version"])
    run_ok([python_tool("nbdiff"), "--version"])


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab for a user who has told git who they are once (their ~/.gitconfig; the extension's "Initialize
    repository" makes a first, empty commit, which needs it)."""
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[user]\n\tname = Jo Vyan\n\temail = jovyan@example.org\n")
    root = tmp_path / "lab"
    root.mkdir()
    with jupyter_server(root, env={**os.environ, "GIT_CONFIG_GLOBAL": str(gitconfig)}) as server:
        yield server


def test_commit_and_diff_a_notebook(lab):
    work = lab.log.parent / "history"
    work.mkdir()
    notebook = make_notebook(work / "ndvi.ipynb", "ndvi = (nir - red) / (nir + red)")
    git_api(lab, "history/init")
    git_api(lab, "history/add_all_untracked")
    commit = git_api(lab, "history/commit", {"commit_msg": "NDVI notebook"})
    assert commit["code"] == 0, commit
    log = git_api(lab, "history/log", {"history_count": 5})
    assert [c["commit_msg"] for c in log["commits"]][:1] == ["NDVI notebook"], log

    make_notebook(notebook, "ndvi = (nir - red) / (nir + red + 1e-6)")
    status = git_api(lab, "history/status")
    assert [(f["to"], f["y"]) for f in status["files"]] == [("ndvi.ipynb", "M")], status
    before = git_api(lab, "history/content", {"filename": "ndvi.ipynb", "reference": {"git": "HEAD"}})["content"]
    after = git_api(lab, "history/content", {"filename": "ndvi.ipynb", "reference": {"special": "WORKING"}})["content"]
    diff = git_api(lab, "diffnotebook", {"previousContent": before, "currentContent": after})
    # nbdime's diff: cells -> cell 0 -> source -> line 0 -> " + 1e-6" inserted where it was typed
    cell = next(d for d in diff["diff"] if d["key"] == "cells")["diff"][0]
    source = next(d for d in cell["diff"] if d["key"] == "source")["diff"][0]["diff"]
    assert source == [{"op": "addrange", "key": 31, "valuelist": " + 1e-6"}], f"nbdime's diff: {diff['diff']}"
    assert diff["base"]["cells"][0]["source"] == "ndvi = (nir - red) / (nir + red)", diff["base"]
