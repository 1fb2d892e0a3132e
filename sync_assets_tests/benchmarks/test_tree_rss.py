"""The benchmarks' tree RSS (`benchmarks.measure.tree_rss`): every exec'd descendant counts,
a child caught between fork and exec (its parent's pages, counted twice) does not."""

import subprocess
import sys
import time

import psutil

from benchmarks.measure import tree_rss

MB = 2**20
# A parent holding 120 MB that forks children which wait a moment before exec'ing `true`
# (the instant a sample can catch in Dagster's `tail`), then starts one holding 60 MB itself.
SCRIPT = """
import os, subprocess, sys, time
held = bytearray(120 * 2**20)
held[::4096] = b"x" * len(held[::4096])
for _ in range(5):
    pid = os.fork()
    if pid == 0:
        time.sleep(0.2)
        os.execv("/bin/true", ["true"])
    os.waitpid(pid, 0)
child = subprocess.Popen([sys.executable, "-c",
    "b = bytearray(60 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(30)"])
time.sleep(30)
"""


def _holder_started(pid: int) -> bool:
    """The 60 MB child is running."""
    for kid in psutil.Process(pid).children():
        try:
            if "bytearray(60" in " ".join(kid.cmdline()):
                return True
        except psutil.Error:  # a `true` that has exited already
            continue
    return False


def test_forks_about_to_exec_are_not_counted_twice_but_real_children_are() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT])
    try:
        peak, own = 0, 0
        while proc.poll() is None and not _holder_started(proc.pid):
            peak = max(peak, tree_rss(proc.pid))
            own = max(own, psutil.Process(proc.pid).memory_info().rss)
            time.sleep(0.005)
        assert own > 120 * MB
        # Five forks, each 0.2 s before its exec, were sampled: never counted twice.
        assert peak < own + 40 * MB, (peak / MB, own / MB)
        time.sleep(2)  # the 60 MB child has touched its pages
        assert tree_rss(proc.pid) > own + 50 * MB
    finally:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait()
