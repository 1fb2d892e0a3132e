"""A real FTP server (pyftpdlib) in a background thread on a loopback port.

Two flavours: `mlsd=True` offers MLSD/MLST like modern servers; `mlsd=False` offers only LIST,
as vsftpd and IIS do, so that both listing paths are exercised against a real server.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import ThreadedFTPServer


class ListOnlyFTPHandler(FTPHandler):
    """An FTP handler that does not know MLSD/MLST (and does not advertise them in FEAT)."""

    proto_cmds = {k: v for k, v in FTPHandler.proto_cmds.items() if k not in {"MLSD", "MLST"}}

    def ftp_FEAT(self, line: str) -> None:  # noqa: N802 (pyftpdlib's naming)
        features = sorted({"UTF8", "TVFS", "MDTM", "SIZE", "REST STREAM"})
        self.push("211-Features supported:\r\n")
        self.push("".join(f" {f}\r\n" for f in features))
        self.respond("211 End FEAT.")


@dataclass
class FTPServerHandle:
    host: str
    port: int
    user: str
    password: str
    root: Path
    mlsd: bool
    server: ThreadedFTPServer
    thread: threading.Thread
    handler: type[FTPHandler] = field(default=FTPHandler)
    stopping: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        """End the accept loop, then close every socket: closing them under a loop still
        polling them makes its thread die with EBADF."""
        self.stopping.set()
        self.thread.join(timeout=10)
        self.server.close_all()


def start_ftp_server(
    root: Path,
    user: str = "machine",
    password: str = "ftp-secret",  # noqa: S107 (test credential, never a real one)
    mlsd: bool = True,
    port: int = 0,
    handler_base: type[FTPHandler] | None = None,
    host: str = "127.0.0.1",
) -> FTPServerHandle:
    """Serve `root` with full permissions for `user` on `host`:`port` (0 = free port).

    `host` stays loopback for tests; the compose demo container serves on 0.0.0.0.
    """
    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, str(root), perm="elradfmwMT")
    base = handler_base or (FTPHandler if mlsd else ListOnlyFTPHandler)
    handler = type("TestFTPHandler", (base,), {})
    handler.authorizer = authorizer
    handler.passive_ports = None
    handler.permit_foreign_addresses = False
    handler.banner = "sync_assets test FTP server ready."
    server = ThreadedFTPServer((host, port), handler)
    server.max_cons = 256
    stopping = threading.Event()

    def serve() -> None:  # one poll at a time, so that `stop` can end the loop first
        while not stopping.is_set():
            server.serve_forever(timeout=0.1, blocking=False, handle_exit=False)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    host, bound_port = server.address[:2]
    return FTPServerHandle(
        host, bound_port, user, password, root, mlsd, server, thread, handler, stopping
    )
