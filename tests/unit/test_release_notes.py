"""Release notes between lock revisions (vre diff --locks) and version ordering per ecosystem, without Docker."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import uuid

import pytest
from typer.testing import CliRunner

from tests.testkit import ROOT, mini_repo
from vre.cli import app
from vre.release import notes as diff


def vre(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


# --- version ordering: each pair is (older, newer); a plain string comparison gets every one of them wrong or
# cannot tell them apart --------------------------------------------------------------------------------------------
ORDERED = {
    "pip": [("1.0rc1", "1.0"), ("1.0", "1.0.post1"), ("1.9", "1.10"), ("1.0.dev0", "1.0a1"), ("2.5.1", "2.5.1+cpu"),
            ("2.0", "1!0.1")],
    "apt": [("1.0~rc1", "1.0"), ("1.0~~", "1.0~"), ("1.0", "1.0+b1"), ("2.0", "1:0.1"), ("1.9-1", "1.10-1"),
            ("3.6.2+dfsg-1", "3.6.2+dfsg-1+b2")],
    "conda": [("1.0a1", "1.0"), ("1.0dev", "1.0a"), ("1.9", "1.10"), ("1.0", "1.0.post1"), ("2.0", "1!1.0"),
              ("2024.9", "2024.10")],
    "npm": [("1.0.0-rc.1", "1.0.0"), ("1.0.0-alpha.9", "1.0.0-alpha.10"), ("1.9.0", "1.10.0"),
            ("1.0.0-alpha", "1.0.0-alpha.1"), ("1.0.0-alpha.beta", "1.0.0-beta")],
}
SAME = {"pip": ("1.0", "1.0.0"), "apt": ("0:1.0-1", "1.0-1"), "conda": ("1.0", "1.0.0"),
        "npm": ("1.0.0+build.7", "1.0.0")}


@pytest.mark.parametrize("ecosystem,older,newer", [(e, o, n) for e, pairs in ORDERED.items() for o, n in pairs])
def test_versions_order_as_their_ecosystem_orders_them(ecosystem, older, newer):
    assert diff.compare(ecosystem, older, newer) == -1
    assert diff.compare(ecosystem, newer, older) == 1


@pytest.mark.parametrize("ecosystem", SAME)
def test_versions_written_differently_can_be_the_same(ecosystem):
    assert diff.compare(ecosystem, *SAME[ecosystem]) == 0


@pytest.mark.parametrize("ecosystem,bad", [("pip", "not a version"), ("npm", "1.0"), ("apt", "1.0 beta")])
def test_versions_that_cannot_be_ordered_are_reported_as_such(ecosystem, bad):
    assert diff.compare(ecosystem, bad, "1.0.0") is None


# --- `vre diff --locks`: two revisions of the locks of a throwaway repository ----------------------------------------
def pin(name: str, version: str) -> str:
    digest = f"{uuid.uuid5(uuid.NAMESPACE_OID, name + version).hex}" * 2  # 64 hex digits, one per pin
    return f"{name}=={version} \\\n    --hash=sha256:{digest}\n    # via -r requirements.in\n"


def npm_lock(packages: dict[str, str]) -> str:
    entries = {"": {"name": "x", "version": "1.0.0"}}
    entries |= {f"node_modules/{name}": {"version": version, "integrity": "sha512-AAAA"}
                for name, version in packages.items()}
    return json.dumps({"name": "x", "lockfileVersion": 3, "packages": entries})


REV_A = {
    "rel-base": {"requirements.txt": pin("attrs", "23.1.0") + pin("numpy", "1.26.4") + pin("urllib3", "2.0.0"),
                 "apt.txt": "jq\n"},
    "rel-child": {"package-lock.json": npm_lock({"code-server": "4.9.0", "@demo/widget": "1.0.0-alpha.10"})},
}
REV_B = {
    "rel-base": {"requirements.txt": pin("attrs", "24.2.0") + pin("packaging", "24.0") + pin("urllib3", "1.26.18"),
                 "apt.txt": "git  # instead of jq\n"},
    "rel-child": {"package-lock.json": npm_lock({"code-server": "4.10.0", "@demo/widget": "1.0.0-alpha.9"})},
}


def git(root, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def write_specs(root, specs: dict[str, dict[str, str]]) -> None:
    for folder, files in specs.items():
        for name, text in files.items():
            (root / "environments" / "debian" / folder / name).write_text(text)


@pytest.fixture
def lock_repo(tmp_path):
    """A repository with two commits of its locks (REV_A, then REV_B): (root, {"A": sha, "B": sha})."""
    root = mini_repo(tmp_path, REV_A, parents={"rel-child": "rel-base"}, apt_lock=False)  # apt.txt names only
    git(root, "init", "--quiet")
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "-m", "A")
    revisions = {"A": git(root, "rev-parse", "HEAD")}
    write_specs(root, REV_B)
    git(root, "commit", "--quiet", "--all", "-m", "B")
    revisions["B"] = git(root, "rev-parse", "HEAD")
    return root, revisions


def test_lock_revisions_diff_per_ecosystem(lock_repo):
    root, rev = lock_repo
    found = diff.changes(diff.lock_packages(root, rev["A"])["debian"], diff.lock_packages(root, rev["B"])["debian"])
    got = {(c.ecosystem, c.name): (c.kind, c.old, c.new, c.where) for c in found}
    assert got == {
        ("apt", "git"): ("added", (), ("",), ("rel-base",)),
        ("apt", "jq"): ("removed", ("",), (), ("rel-base",)),
        ("pip", "attrs"): ("upgraded", ("23.1.0",), ("24.2.0",), ("rel-base",)),
        ("pip", "numpy"): ("removed", ("1.26.4",), (), ("rel-base",)),
        ("pip", "packaging"): ("added", (), ("24.0",), ("rel-base",)),
        ("pip", "urllib3"): ("downgraded", ("2.0.0",), ("1.26.18",), ("rel-base",)),
        ("npm", "code-server"): ("upgraded", ("4.9.0",), ("4.10.0",), ("rel-child",)),
        ("npm", "@demo/widget"): ("downgraded", ("1.0.0-alpha.10",), ("1.0.0-alpha.9",), ("rel-child",)),
    }


def test_vre_diff_locks_writes_release_notes_and_flags_downgrades(lock_repo):
    root, rev = lock_repo
    result = vre("diff", "--locks", rev["A"], rev["B"], "--repo", str(root))
    assert result.exit_code == 0, result.output
    notes = result.stdout
    assert notes.startswith(f"## Package changes: `{rev['A']}` → `{rev['B']}`")
    assert "> [!WARNING]\n> **2 package(s) downgraded**:" in notes
    assert "> - `urllib3` (pip, debian): 2.0.0 → 1.26.18" in notes
    assert "| urllib3 | ⚠️ **downgraded** | 2.0.0 | 1.26.18 | rel-base |" in notes
    assert "| attrs | ⬆️ upgraded | 23.1.0 | 24.2.0 | rel-base |" in notes
    assert "| git | ➕ added | – | (unpinned) | rel-base |" in notes
    assert "### debian: npm (2)" in notes
    failing = vre("diff", "--locks", rev["A"], rev["B"], "--repo", str(root), "--fail-on-downgrade")
    assert failing.exit_code == 1 and failing.stdout == notes
    back = vre("diff", "--locks", rev["B"], rev["A"], "--repo", str(root)).stdout  # the other way round
    assert "| attrs | ⚠️ **downgraded** | 24.2.0 | 23.1.0 | rel-base |" in back
    assert "| urllib3 | ⬆️ upgraded | 1.26.18 | 2.0.0 | rel-base |" in back


def test_vre_diff_locks_against_the_working_tree(lock_repo):
    root, rev = lock_repo
    assert vre("diff", "--locks", "HEAD", "--repo", str(root)).stdout.endswith("No package changed.\n")
    write_specs(root, {"rel-base": {"requirements.txt": pin("attrs", "25.1.0") + pin("packaging", "24.0")
                                    + pin("urllib3", "1.26.18")}})
    result = vre("diff", "--locks", "HEAD", "--repo", str(root), "--fail-on-downgrade")
    notes = result.stdout
    assert result.exit_code == 0, notes  # an upgrade only: nothing to fail on
    assert "## Package changes: `HEAD` → `working tree`" in notes
    assert "| attrs | ⬆️ upgraded | 24.2.0 | 25.1.0 | rel-base |" in notes
    assert notes.count("| ⬆️") == 1 and "[!WARNING]" not in notes


def test_vre_diff_refuses_an_unknown_revision(lock_repo):
    root, _ = lock_repo
    result = CliRunner().invoke(app, ["diff", "--locks", "no-such-rev", "HEAD", "--repo", str(root)])
    assert result.exit_code == 2
    assert "cannot read environments/ at revision 'no-such-rev'" in result.stderr


def test_the_lock_refresh_workflow_call_works(lock_repo):
    """ci/github/lock-refresh.yml's own `vre diff` call, run in a repository whose origin/main is REV_A."""
    root, rev = lock_repo
    workflow = (ROOT / "ci" / "github" / "lock-refresh.yml").read_text()
    calls = set(re.findall(r"^\s*vre (diff .*?) >", workflow, re.M))
    assert calls, "ci/github/lock-refresh.yml no longer calls vre diff"
    git(root, "update-ref", "refs/remotes/origin/main", rev["A"])
    for call in calls:
        result = vre(*shlex.split(call), "--repo", str(root))
        assert result.exit_code == 0, result.output
        assert "| attrs | ⬆️ upgraded | 23.1.0 | 24.2.0 | rel-base |" in result.stdout
