"""Whose fault: what goes wrong while a file's bytes are handled stays with that file, unless it
is about the servers, the machine or the run itself (then the run stops, nothing is marked).

The exceptions that carry a file's fate (changed while read, not confirmed by the second look,
failed), the rule that sorts any other exception, and the ledger's safe error text.
"""

from __future__ import annotations

import ftplib

import psycopg

from sync_assets.core.settings import ConfigError
from sync_assets.ftp.client import LocalWriteError
from sync_assets.ftp.parallel import NeedsSchemaChangeError, RunStoppedError
from sync_assets.resources import SourceUnavailableError


class FileChangedError(RuntimeError):
    """The file changed while we read it: it is left for the next run."""


class FileFaultError(RuntimeError):
    """Something about one file's bytes went wrong (expected or not): the file is `failed`,
    its transaction rolled back, and the run goes on with the other files."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotConfirmedError(RuntimeError):
    """The second look did not confirm what was read: nothing of the file is written."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


# SQLSTATE classes about the server or the session, never about a file's bytes: connection
# (08), authorisation (28), database (3D), transaction rollback (40: deadlock, serialisation),
# resources (53: disk full, out of memory), object state (55: lock not available), operator
# intervention (57: shutdown, cancel, timeout), system (58), internal (XX) and others' errors.
_SERVER_SQLSTATE_CLASSES = frozenset(
    {"08", "28", "3D", "40", "53", "55", "57", "58", "F0", "HV", "P0", "XX"}
)
# ... and single codes of other classes: no privilege, table or schema gone, read-only server.
_SERVER_SQLSTATES = frozenset({"42501", "42P01", "3F000", "25006"})
# Never a file's fault: the servers, the local machine, or the run's own control flow.
_NOT_FILE_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    SourceUnavailableError,
    LocalWriteError,
    ftplib.Error,
    ConnectionError,
    TimeoutError,
    MemoryError,
    RunStoppedError,
    NeedsSchemaChangeError,
    FileChangedError,
    NotConfirmedError,
)


def is_file_fault(exc: BaseException, conn: psycopg.Connection) -> bool:
    """Whether an exception raised while a file's bytes were processed is that file's fault.

    Yes by default (a parser bug met by odd bytes included): the file is marked failed and
    the run goes on. No when the PostgreSQL connection is broken, for PostgreSQL errors about
    the server or session (`_SERVER_SQLSTATE*`), for FTP and connection errors, an OSError
    carrying an errno (the disk or the network: a broken gzip's OSError has none), memory,
    and the run's own control flow: those stop the run and no file is marked.
    """
    if not isinstance(exc, Exception) or isinstance(exc, _NOT_FILE_ERRORS):
        return False
    if conn.closed or conn.broken:
        return False
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state is None:  # raised by the client library: a lost connection, or ours
            return not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        return state[:2] not in _SERVER_SQLSTATE_CLASSES and state not in _SERVER_SQLSTATES
    return not (isinstance(exc, OSError) and exc.errno is not None)


MAX_ERROR_CHARS = 2000


def describe_fault(exc: BaseException) -> str:
    """The ledger's error text: type and message (PostgreSQL's first line), no stack; safe to
    store (no NUL, no lone surrogate)."""
    message = str(exc)
    if isinstance(exc, psycopg.Error):
        message = message.splitlines()[0] if message else ""
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:MAX_ERROR_CHARS]
