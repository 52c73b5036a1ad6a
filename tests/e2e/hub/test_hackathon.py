"""The hackathon at full size (opt-in: VRE_TEST_HACKATHON=1 or VRE_TEST_ALL=1): 40 participants in teams of four on
one hub (deploy/jupyterhub-docker), every server spawned at once through the hub's REST API, each running a kernel
computation that writes to its home and its team's folder. No failure, each team's folder holds its members' files
only, each home its owner's; the figures (printed, never asserted) go to .vre/bench/hackathon.json.

VRE_HACKATHON_USERS sets the number of participants (default 40).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest
from tests.e2e.hub import hackathon
from tests.e2e.hub.hubclient import running_hub
from tests.testkit import ALL_IMAGES, ROOT

from vre.workspace import Workspace

pytestmark = [pytest.mark.hub, pytest.mark.docker,
              pytest.mark.skipif(not (ALL_IMAGES or os.environ.get("VRE_TEST_HACKATHON") == "1"),
                                 reason="40 user servers at once (heavy): set VRE_TEST_HACKATHON=1 or VRE_TEST_ALL=1")]

USERS = int(os.environ.get("VRE_HACKATHON_USERS", "40"))
TEAM_SIZE = 4
FIGURES = Workspace.of(ROOT).bench / "hackathon.json"
LIMITS = {"memory": "2G", "cpu": 1, "shm": "256m"}


def test_hackathon(base_geo, proxy_command, tmp_path_factory):
    users = [f"user-{i:02d}" for i in range(1, USERS + 1)]
    teams = {f"team-{i // TEAM_SIZE + 1:02d}": users[i:i + TEAM_SIZE] for i in range(0, USERS, TEAM_SIZE)}
    teams_root = tmp_path_factory.mktemp("hackathon-teams")
    with running_hub(tmp_path_factory.mktemp("hackathon-hub"), {"base-geo": base_geo}, proxy_command,
                     teams_root, teams, limits=LIMITS) as hub:
        figures, people = hackathon.run(hub, teams, "base-geo")
        problems = hackathon.check_files(hub, [p for p in people if not p.error], teams_root)
    figures = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), "limits": LIMITS, **figures}
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps(figures, indent=1))
    print(f"\nhackathon figures ({FIGURES}):\n{json.dumps(figures, indent=1)}")
    assert figures["failures"] == {}, figures["failures"]
    for p in people:
        assert p.result["total"] == hackathon.expected_total(p.n), p
        assert p.result["teams"] == [p.team], f"{p.user} sees the teams {p.result['teams']}"
        assert p.result["home"] == ["result.tif"] and p.result["uid"] == 1000, p.result
    assert problems == [], problems
