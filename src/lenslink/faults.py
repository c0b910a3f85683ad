"""Crash points for the crash-torture tests.

`LENSLINK_CRASH_AT="name:n"` makes this process kill itself (SIGKILL, no cleanup) the
n-th time it reaches `crash_point("name")`: in the middle of an SQLite transaction,
between writing a temp file and swapping it in, and so on. Without the variable (always,
outside tests) a crash point costs one comparison.
"""
from __future__ import annotations

import os
import signal

_PLAN = os.environ.get("LENSLINK_CRASH_AT", "")
_NAME, _, _AT = _PLAN.partition(":")
_seen = 0


def crash_point(name: str) -> None:
    global _seen
    if not _PLAN or name != _NAME:
        return
    _seen += 1
    if _seen == int(_AT or 1):
        os.kill(os.getpid(), signal.SIGKILL)
