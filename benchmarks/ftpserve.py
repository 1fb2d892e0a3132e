"""Serve a directory over FTP (pyftpdlib) on loopback, in a process of its own.

    BENCH_FTP_USER=... BENCH_FTP_PASS=... python -m benchmarks.ftpserve ROOT

Prints the port on the first line of stdout and serves until stdin closes, so the harness
(which holds the pipe) can never leave it running. A process of its own keeps the server's
CPU apart from the measured sync and from the harness's sampler.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from sync_assets.devtools.ftp_server import start_ftp_server


def main(argv: list[str]) -> int:
    # One log line per connection and transfer would drown the harness's own lines.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    root = Path(argv[0])
    handle = start_ftp_server(
        root, user=os.environ["BENCH_FTP_USER"], password=os.environ["BENCH_FTP_PASS"]
    )
    print(handle.port, flush=True)
    try:
        sys.stdin.read()  # returns when the harness closes the pipe or exits
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
