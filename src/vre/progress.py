"""What a long command shows as it goes: the pipeline's stages call these, the command line decides how to show them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vre.build.options import BuildResult
    from vre.publish.registry import Pushed


def _key(key: str) -> None:
    pass


def _step(key: str, what: str) -> None:
    pass


def _text(text: str) -> None:
    pass


def _built(result: BuildResult) -> None:
    pass


def _pushed(pushed: Pushed) -> None:
    pass


@dataclass
class Progress:
    start: Callable[[str], None] = _key  # a target's build starts
    step: Callable[[str, str], None] = _step  # a build step of a target (its first output line)
    note: Callable[[str], None] = _text  # anything worth a line
    done: Callable[[BuildResult], None] = _built  # a target built, failed or interrupted
    pushed: Callable[[Pushed], None] = _pushed  # a tag pushed to a registry
