"""One `docker build` with BuildKit's plain progress: the whole log to a file, each step's name to the progress,
and the counts of steps and cached steps parsed from it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vre import engine
from vre.progress import Progress

# A step line of BuildKit's plain progress: `#12 [content 3/9] RUN vre-install ...`.
STEP = re.compile(r"^#\d+ \[(?P<stage>[^\]]+)\] (?P<what>.*)$")


@dataclass
class Steps:
    """What a build log said: the steps it ran (by stage and number) and how many came from the cache."""

    names: set[str] = field(default_factory=set)
    cached: int = 0

    def read(self, line: str) -> str | None:
        """Count one log line; the step it starts (`[stage n/m] what`, shortened), if any."""
        line = line.rstrip()
        match = STEP.match(line)
        if match and not match["stage"].startswith("internal"):
            self.names.add(match["stage"])
            return f"[{match['stage']}] {match['what'][:90]}"
        if line.endswith(" CACHED"):
            self.cached += 1
        return None


def parse(lines: Iterable[str]) -> Steps:
    steps = Steps()
    for line in lines:
        steps.read(line)
    return steps


def docker_build(args: list[str], key: str, log: Path, progress: Progress) -> tuple[int, Steps]:
    """Run `docker build` streaming its plain progress to the log and the step names to the progress."""
    steps = Steps()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", buffering=1) as out:  # line-buffered: the log is live for whoever tails it
        proc = subprocess.Popen([engine.client(), "build", "--progress=plain", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=engine.env(), text=True, errors="replace")
        assert proc.stdout is not None  # stdout=PIPE
        try:
            for line in proc.stdout:
                out.write(line)
                step = steps.read(line)
                if step:
                    progress.step(key, step)
            return proc.wait(), steps
        except BaseException:
            proc.terminate()
            proc.wait()
            raise


def tail(log: Path, lines: int = 25) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
