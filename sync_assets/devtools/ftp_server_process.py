"""A LIST-only pyftpdlib server in a process of its own, listing in its local time zone.

`python -m sync_assets.devtools.ftp_server_process ROOT COMMAND_LOG` serves ROOT on a free
loopback port and prints that port on its first line. Run it with TZ set: LIST lines show
the times in that zone, as IIS and vsftpd (`use_localtime=YES`) do, while MDTM stays UTC as
RFC 3659 says. Every command the server receives is appended to COMMAND_LOG (its name only,
never its argument: no password lands there), so that tests count real round trips.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import IO

from sync_assets.devtools.ftp_server import ListOnlyFTPHandler, start_ftp_server


class LocalTimeListing(ListOnlyFTPHandler):
    use_gmt_times = False  # LIST in the process's zone (pyftpdlib honours TZ)
    command_log: IO[str] | None = None

    def ftp_MDTM(self, path: str) -> str | None:  # noqa: N802 (pyftpdlib's naming)
        self.use_gmt_times = True  # MDTM in UTC, whatever the listing says
        try:
            return super().ftp_MDTM(path)
        finally:
            del self.use_gmt_times

    def pre_process_command(self, line: str, cmd: str, arg: str | None) -> None:
        if self.command_log is not None:
            self.command_log.write(f"{cmd}\n")
            self.command_log.flush()
        super().pre_process_command(line, cmd, arg)


def main() -> None:
    # A launcher that ignores SIGTERM (nohup-style wrappers, some CI runners) passes that on
    # to its children; this server must still stop when its owner terminates it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    root, log_path = Path(sys.argv[1]), Path(sys.argv[2])
    LocalTimeListing.command_log = log_path.open("a", encoding="ascii")
    handle = start_ftp_server(root, mlsd=False, handler_base=LocalTimeListing)
    print(handle.port, flush=True)
    handle.thread.join()


if __name__ == "__main__":
    main()
