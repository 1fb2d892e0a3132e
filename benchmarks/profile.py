"""Optional: where a sync's CPU goes, from py-spy's collapsed stacks (`--profile`).

py-spy is not a project dependency (install it with `uv tool install py-spy`); the harness runs
one extra, unmeasured sync under `py-spy record --idle --format raw` (wall-clock samples of
every thread) and summarises them: self time per function (where each thread is, burning CPU
or waiting on a socket) and inclusive time of the project's own functions (which of our code
paths the time is spent under).
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from pathlib import Path

PROJECT_MARKERS = ("sync_assets/", "sync_assets\\")
_LINE_NUMBER = re.compile(r":\d+\)$")


def find_py_spy() -> str | None:
    return shutil.which("py-spy") or next(
        (str(p) for p in [Path.home() / ".local/bin/py-spy"] if os.access(p, os.X_OK)), None
    )


def py_spy_argv(py_spy: str, output: Path, argv: list[str]) -> list[str]:
    # --idle: a wall-clock profile, so time spent waiting on a server shows where it waits.
    return [py_spy, "record", "--rate", "200", "--threads", "--idle", "--format", "raw",
            "--output", str(output), "--nonblocking", "--", *argv]  # fmt: skip


def _frames(stack: str) -> list[str]:
    return [f for f in stack.split(";") if f]


def _function(frame: str) -> str:
    """`func (path/file.py:123)` → `func (path/file.py)`: all lines of a function together."""
    return _LINE_NUMBER.sub(")", frame)


def summarise(collapsed: Path, top: int = 15) -> str:
    """A text summary of a py-spy raw (collapsed) profile."""
    self_time: Counter[str] = Counter()
    self_lines: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        total += count
        threads[frames[0]] += count
        leaf = frames[-1] if len(frames) > 1 else "(no Python frame: native code, start or exit)"
        self_lines[leaf] += count
        self_time[_function(leaf)] += count
        for function in {_function(f) for f in frames}:
            if any(marker in function for marker in PROJECT_MARKERS):
                inclusive[function] += count
    if not total:
        return "no samples"

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f}%"

    lines = [f"{total} samples", "by thread:"]
    lines += [f"  {pct(n)}  {name}" for name, n in threads.most_common(6)]
    lines.append("self time by function:")
    lines += [f"  {pct(n)}  {name}" for name, n in self_time.most_common(top)]
    lines.append("self time by line:")
    lines += [f"  {pct(n)}  {name}" for name, n in self_lines.most_common(top)]
    lines.append("inclusive time of sync_assets functions:")
    lines += [f"  {pct(n)}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)
