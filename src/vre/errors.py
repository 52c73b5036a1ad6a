"""The one error type of eo-vre, with the exit code a command ends with, and the record of an interrupt.

Every failure the factory reports is a VreError (or a subclass naming its stage) whose message names the file,
field or image and what to do; the command line prints it and exits with its code in one place (vre.cli.app).
"""

from __future__ import annotations

import signal
from types import FrameType

# Exit codes of `vre`: 1 the work failed (a test, a lock, a push), 2 bad input or a missing tool/engine.
FAILED = 1
USAGE = 2
INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class VreError(Exception):
    """A failure to report as `error: <message>`, ending the command with `exit_code`."""

    exit_code = FAILED

    def __init__(self, message: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class Interrupted(VreError):
    """The user interrupted the command (SIGINT): reported as such, whatever its child processes said."""

    exit_code = INTERRUPTED


_interrupt: list[int] = []  # the SIGINTs received, recorded before anything else can race with them


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _interrupt.append(signum)
    raise KeyboardInterrupt


def watch_interrupts() -> None:
    """Record every SIGINT (then raise KeyboardInterrupt as Python does). A child process in the same process group
    gets the signal too and may fail first (docker build: "context canceled"); `interrupted()` lets the interrupt
    win over that failure."""
    signal.signal(signal.SIGINT, _on_sigint)


def interrupted() -> bool:
    return bool(_interrupt)
