"""Crash-test hook: a process SIGKILLs itself at a named point of the real code path.

Only active when SYNC_ASSETS_FTP_FAILPOINT names the point; `name:N` fires at its N-th
passage. It simulates a power cut where no mock can (tests/ftp/test_exactly_once.py).
"""

from __future__ import annotations

import os
import signal

FAILPOINT_ENV = "SYNC_ASSETS_FTP_FAILPOINT"
_passages = 0


def failpoint(name: str) -> None:
    """SIGKILL this process if the failpoint variable names `name` (at its N-th passage)."""
    wanted = os.environ.get(FAILPOINT_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    global _passages
    _passages += 1
    if _passages >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
