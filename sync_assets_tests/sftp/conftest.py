"""Fixtures for the SFTP tests: a real sshd per test, keys, resources, a delete watch."""

from __future__ import annotations

import ctypes
import os
import select
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from sync_assets.ftp.config import SourceConfig
from sync_assets.resources import FTPResource, PostgresResource
from sync_assets_tests.ftp.conftest import make_source
from sync_assets_tests.sftp.sshd import (
    KeyPair,
    SSHServerHandle,
    ensure_test_user,
    generate_key,
    lock_test_user,
    random_password,
    start_sshd,
)

REUSED_FIXTURES = (make_source,)
KEY_PASSPHRASE = "correct horse battery staple 42"


@pytest.fixture(scope="session")
def sftp_password() -> Iterator[str]:
    password = random_password()
    ensure_test_user(password)
    yield password
    lock_test_user()


@pytest.fixture(scope="session")
def sftp_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    """The server's host key, another host key (an impostor) and two client keys."""
    directory = tmp_path_factory.mktemp("ssh_keys")
    return {
        "host": generate_key(directory, "host_key"),
        "impostor": generate_key(directory, "impostor_host_key"),
        "client": generate_key(directory, "client_key"),
        "client_encrypted": generate_key(directory, "client_key_enc", KEY_PASSPHRASE),
    }


SSHServerFactory = Callable[..., SSHServerHandle]


@pytest.fixture
def sshd_factory(sftp_password: str, sftp_keys: dict[str, KeyPair]) -> Iterator[SSHServerFactory]:
    """`factory(host_key="host", password_auth=True)`: a started sshd; stopped after."""
    started: list[SSHServerHandle] = []

    def factory(host_key: str = "host", password_auth: bool = True) -> SSHServerHandle:
        handle = start_sshd(sftp_password, sftp_keys[host_key], password_auth)
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        handle.stop()


@pytest.fixture
def sshd(sshd_factory: SSHServerFactory) -> SSHServerHandle:
    return sshd_factory()


@pytest.fixture
def known_hosts(tmp_path: Path, sshd: SSHServerHandle) -> Path:
    """A known_hosts file holding the server's real host key."""
    path = tmp_path / "known_hosts"
    path.write_text(sshd.known_hosts_line, encoding="utf-8")
    return path


def make_sftp_resource(
    server: SSHServerHandle, known_hosts: Path | None = None, **overrides: str
) -> FTPResource:
    values = {
        "protocol": "sftp",
        "host": server.host,
        "port": str(server.port),
        "user": server.user,
        "password": server.password,
        "directory": str(server.root),
        "known_hosts": str(known_hosts) if known_hosts else "",
        "timeout_seconds": "60",
    }
    values.update(overrides)
    return FTPResource(**values)


@pytest.fixture
def sftp_resource(sshd: SSHServerHandle, known_hosts: Path) -> FTPResource:
    return make_sftp_resource(sshd, known_hosts)


# --- watching deletes on the server's file system ---------------------------------------------

_IN_DELETE = 0x00000200
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (name follows)


class DeleteAudit:
    """Watches the drop directory with inotify; as each file deletion is seen it checks that
    the file's rows are committed in PostgreSQL (`audits`: (path, committed == expected)).
    Complements the SIGKILL between commit and delete (test_kill.py), which pins the order."""

    def __init__(
        self,
        root: Path,
        pg: PostgresResource,
        source: SourceConfig,
        expected: dict[str, list[int]],
    ) -> None:
        self.root, self.pg, self.source, self.expected = root, pg, source, expected
        self.audits: list[tuple[str, bool]] = []
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0 or libc.inotify_add_watch(self._fd, bytes(root), _IN_DELETE) < 0:
            raise OSError(ctypes.get_errno(), "inotify")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        with psycopg.connect(**self.pg.conninfo(), autocommit=True) as conn:
            while True:
                ready, _, _ = select.select([self._fd], [], [], 0.1)
                if ready:
                    self._audit(conn, os.read(self._fd, 65536))
                elif self._stop.is_set():
                    return  # stopped, and every queued event is audited

    def _audit(self, conn: psycopg.Connection, data: bytes) -> None:
        table = sql.Identifier(self.source.schema, self.source.table_name)
        query = sql.SQL("SELECT id FROM {} WHERE _source_file = %s ORDER BY id").format(table)
        offset = 0
        while offset < len(data):
            _, mask, _, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            if mask & _IN_DELETE:
                path = str(self.root / name.decode())
                committed = [value for (value,) in conn.execute(query, (path,)).fetchall()]
                self.audits.append((path, committed == self.expected.get(path)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        os.close(self._fd)
