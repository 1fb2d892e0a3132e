"""A careful FTP client: passive binary transfers, timeouts, FTPS, retries with reconnect.

Transient failures (4xx replies such as 421, connection resets, timeouts, a dropped data
connection) are retried with exponential backoff on a fresh connection; a download that broke
mid-way resumes with REST from the last byte written. Permanent (5xx) replies are raised.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO, TypeVar

from sync_assets.ftp.listing import (
    RemoteEntry,
    entry_from_mlsd,
    parse_list_line,
    parse_mlsd_time,
)
from sync_assets.ftp.retry import RetryingSession, RetryPolicy
from sync_assets.resources import FTPResource, SourceRefusedError

T = TypeVar("T")
H = TypeVar("H")
BLOCK_SIZE = 256 * 1024
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ftplib.error_temp,
    ftplib.error_reply,
    ftplib.error_proto,
    EOFError,
    OSError,  # ConnectionResetError, TimeoutError, socket.timeout, ssl.SSLError, ...
)


class ShortTransferError(OSError):
    """The data connection ended before the expected bytes arrived (dropped, or shrank)."""


class RemoteFileClient(RetryingSession[H]):
    """What the FTP and SFTP clients do alike on top of their own listing and transfers."""

    log: logging.Logger

    def list_dir(self, path: str) -> list[RemoteEntry]:
        raise NotImplementedError

    def download(self, path: str, offset: int, sink: IO[bytes], limit: int | None = None) -> int:
        raise NotImplementedError

    def walk(self, root: str, recursive: bool) -> Iterator[tuple[str, RemoteEntry]]:
        """(full path, entry) for every file under `root` (breadth-first)."""
        return walk_tree(self.list_dir, root, recursive, self.log)

    def read_head(self, path: str, length: int) -> bytes:
        """The first `length` bytes (what a shorter file has, as its protocol's download
        reports it: FTP returns fewer bytes, SFTP raises ShortTransferError)."""
        buffer = io.BytesIO()
        self.download(path, 0, buffer, length)
        return buffer.getvalue()


class FTPClient(RemoteFileClient[ftplib.FTP]):
    """One logical session to the FTP server; reconnects transparently when it breaks."""

    protocol = "FTP"
    check_hint = "check FTP_HOST/FTP_PORT/FTP_TLS"
    transient_errors = TRANSIENT_ERRORS

    def __init__(
        self, resource: FTPResource, policy: RetryPolicy, log: logging.Logger | None = None
    ) -> None:
        self.resource = resource
        self.policy = policy
        self.log = log or logging.getLogger(__name__)
        self._ftp: ftplib.FTP | None = None
        self.has_mlst = False
        self.reconnects = 0

    # --- connection ---------------------------------------------------------------------

    def _open(self) -> ftplib.FTP:
        ftp = open_session(self.resource, self.log, warn_unverified=self.reconnects == 0)
        try:
            ftp.voidcmd("TYPE I")
            self.has_mlst = self._detect_mlst(ftp)
        except BaseException:
            ftp.close()
            raise
        return ftp

    @staticmethod
    def _detect_mlst(ftp: ftplib.FTP) -> bool:
        try:
            features = ftp.sendcmd("FEAT")
        except ftplib.all_errors:
            return False
        return any(line.strip().upper().startswith("MLST") for line in features.splitlines()[1:])

    @property
    def ftp(self) -> ftplib.FTP:
        if self._ftp is None:
            self._ftp = self._open()
        return self._ftp

    def close(self) -> None:
        if self._ftp is None:
            return
        try:
            self._ftp.quit()
        except ftplib.all_errors:
            pass
        finally:
            self._ftp.close()
            self._ftp = None

    def _drop(self) -> None:
        if self._ftp is not None:
            self._ftp.close()
            self._ftp = None

    def _handle(self) -> ftplib.FTP:
        return self.ftp

    def _reset(self) -> None:
        self._drop()

    def _refuse(self, what: str, exc: BaseException, last: bool) -> None:
        if isinstance(exc, ssl.SSLCertVerificationError):  # a data connection: never retried
            self._drop()
            raise certificate_refused(self.resource, exc) from None
        if last and isinstance(exc, ShortTransferError):
            self._drop()
            raise exc  # the file itself is shorter now: the caller decides

    def absolute(self, path: str) -> str:
        """`path` as an absolute remote path (a relative FTP_DIR is relative to login dir)."""
        if path.startswith("/"):
            return path
        home = self.call("pwd", lambda ftp: ftp.pwd())
        return join(home, path) if path not in ("", ".") else home

    # --- listing ------------------------------------------------------------------------

    def list_dir(self, path: str) -> list[RemoteEntry]:
        return self.call(f"listing {path!r}", lambda ftp: self._list_dir_binary(ftp, path))

    def _list_dir_binary(self, ftp: ftplib.FTP, path: str) -> list[RemoteEntry]:
        entries = self._list_dir(ftp, path)
        ftp.voidcmd("TYPE I")  # listings switch to ASCII; SIZE and REST need binary
        return entries

    def _list_dir(self, ftp: ftplib.FTP, path: str) -> list[RemoteEntry]:
        entries: list[RemoteEntry] = []
        if self.has_mlst:
            for name, facts in ftp.mlsd(path, facts=["type", "size", "modify"]):
                entry = entry_from_mlsd(name, facts)
                if entry is not None and name not in (".", ".."):
                    entries.append(entry)
            return entries
        lines: list[str] = []
        ftp.cwd(path)  # LIST without an argument: names with spaces need no quoting
        ftp.retrlines("LIST", lines.append)
        for line in lines:
            entry = parse_list_line(line)
            if entry is not None and entry.name not in (".", ".."):
                entries.append(entry)
        return entries

    def stat(self, path: str) -> tuple[int, datetime | None] | None:
        """Precise (size, mtime) of one file (MLST, else SIZE+MDTM); None if it is gone."""

        def action(ftp: ftplib.FTP) -> tuple[int, datetime | None] | None:
            try:
                if self.has_mlst:
                    return _mlst(ftp, path)
                size = ftp.size(path)
                reply = ftp.sendcmd(f"MDTM {path}")
            except ftplib.error_perm:
                return None
            return (int(size or 0), parse_mlsd_time(reply[4:]))

        return self.call(f"stat {path!r}", action)

    def modified(self, path: str) -> datetime | None:
        """MDTM alone: the precise UTC mtime (RFC 3659); None if the server refuses it."""

        def action(ftp: ftplib.FTP) -> datetime | None:
            try:
                return parse_mlsd_time(ftp.sendcmd(f"MDTM {path}")[4:])
            except ftplib.error_perm:
                return None

        return self.call(f"MDTM {path!r}", action)

    # --- transfers ----------------------------------------------------------------------

    def download(self, path: str, offset: int, sink: IO[bytes], limit: int | None = None) -> int:
        """Append bytes `offset`..`offset+limit` (or EOF) to `sink`; resumes after a break."""
        written = 0
        base = sink.tell()

        def action(ftp: ftplib.FTP) -> int:
            nonlocal written
            if limit is not None and written >= limit:
                return written
            # A failed attempt may have left part of a block: cut the sink back to what counts.
            sink.seek(base + written)
            sink.truncate()
            conn = ftp.transfercmd(f"RETR {path}", rest=(offset + written) or None)
            reached_eof = False
            try:
                while limit is None or written < limit:
                    want = BLOCK_SIZE if limit is None else min(BLOCK_SIZE, limit - written)
                    block = conn.recv(want)
                    if not block:
                        reached_eof = True
                        break
                    _write_local(sink, block, path)
                    written += len(block)
                if reached_eof:
                    _unwrap(conn)
            finally:
                conn.close()
            if reached_eof:
                ftp.voidresp()  # a dropped data connection shows here as 426: retried
            else:
                _end_aborted_transfer(ftp)
            if limit is not None and written < limit:
                raise ShortTransferError(f"transfer ended at byte {offset + written}")
            return written

        return self.call(f"download {path!r}", action)

    def delete(self, path: str) -> None:
        self.call(f"delete {path!r}", lambda ftp: ftp.delete(path))


# --- TLS ------------------------------------------------------------------------------------


class VerifiedFTPTLS(ftplib.FTP_TLS):
    """Explicit FTPS whose data connections are verified like the control connection (same
    context, same host name) and resume its TLS session: vsftpd (`require_ssl_reuse`, its
    default), FileZilla Server and ProFTPD refuse a data connection that does not, and the
    reuse proves the data connection goes to the same server that passed verification."""

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)  # noqa: S321 (wrapped below)
        if self._prot_p:  # type: ignore[attr-defined]  # ftplib's PROT P flag
            session = self.sock.session if isinstance(self.sock, ssl.SSLSocket) else None
            try:
                conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
            except BaseException:
                conn.close()
                raise
        return conn, size


class ImplicitFTPTLS(VerifiedFTPTLS):
    """Implicit FTPS (port 990): TLS from the first byte, before the server's greeting."""

    def connect(
        self,
        host: str = "",
        port: int = 0,
        timeout: float = -999,
        source_address: tuple[str, int] | None = None,
    ) -> str:
        self.host = host or self.host
        self.port = port or self.port
        if timeout != -999:
            self.timeout = timeout
        raw = socket.create_connection(
            (self.host, self.port), self.timeout, source_address=source_address
        )
        try:
            self.sock = self.context.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


def certificate_refused(resource: FTPResource, exc: ssl.SSLCertVerificationError) -> Exception:
    """The clear, permanent error for a server certificate that failed verification."""
    reason = exc.verify_message or exc.reason or str(exc)
    return SourceRefusedError(
        f"FTP {resource.describe()}: the server's TLS certificate was refused ({reason}): "
        "it must be issued for FTP_HOST by a CA in the system trust store or in "
        "FTP_TLS_CA_FILE; FTP_TLS_VERIFY=false accepts it unverified"
    )


def _new_session(resource: FTPResource) -> ftplib.FTP:
    mode = resource.tls_mode
    if mode == "off":  # plain FTP, as configured (FTP_TLS=false)
        return ftplib.FTP(timeout=resource.timeout, encoding=resource.encoding)  # noqa: S321
    cls = ImplicitFTPTLS if mode == "implicit" else VerifiedFTPTLS
    return cls(context=resource.tls_context(), timeout=resource.timeout, encoding=resource.encoding)


def open_session(
    resource: FTPResource, log: logging.Logger, warn_unverified: bool = True
) -> ftplib.FTP:
    """A logged-in, passive FTP session (TLS verified and PROT P with FTP_TLS)."""
    if resource.use_tls and not resource.verify_tls and warn_unverified:
        log.warning(
            f"FTP {resource.describe()}: FTP_TLS_VERIFY=false: the server's certificate is NOT"
            " verified; anyone between us and the server can read the logs and the password"
        )
    ftp = _new_session(resource)
    try:
        ftp.connect(resource.host_name, resource.port_number)
        try:
            ftp.login(resource.login_user, resource.secret)
        except ftplib.error_perm as exc:  # 530: permanent, never retried
            raise SourceRefusedError(
                f"FTP {resource.describe()}: login refused: {resource.redact(str(exc))}"
                " (check FTP_USER/FTP_PASS/FTP_PASS_FILE)"
            ) from None
        if isinstance(ftp, ftplib.FTP_TLS):
            ftp.prot_p()  # encrypt the data connections too, not only the login
        ftp.set_pasv(True)
    except ssl.SSLCertVerificationError as exc:
        ftp.close()
        raise certificate_refused(resource, exc) from None
    except BaseException:
        ftp.close()
        raise
    return ftp


class LocalWriteError(RuntimeError):
    """The local spool (temp file) could not be written: not an FTP fault, never retried."""


def _write_local(sink: IO[bytes], block: bytes, path: str) -> None:
    try:
        sink.write(block)
    except OSError as exc:  # disk full, file too large: retrying the FTP transfer cannot help
        raise LocalWriteError(
            f"cannot spool the download of {path!r} to local disk: {exc.strerror or exc}"
        ) from None


def _mlst(ftp: ftplib.FTP, path: str) -> tuple[int, datetime | None] | None:
    reply = ftp.sendcmd(f"MLST {path}")
    for line in reply.splitlines()[1:]:
        facts_text = line.strip().split(" ", 1)[0]
        facts = dict(fact.split("=", 1) for fact in facts_text.split(";") if "=" in fact)
        facts = {k.lower(): v for k, v in facts.items()}
        if facts.get("type", "").lower() == "file":
            return int(facts.get("size") or 0), parse_mlsd_time(facts.get("modify"))
    return None


def _end_aborted_transfer(ftp: ftplib.FTP) -> None:
    """We closed the data connection early on purpose: 226 or 426 both end the transfer."""
    with contextlib.suppress(ftplib.error_temp, ftplib.error_perm, ftplib.error_reply):
        ftp.voidresp()


def _unwrap(conn: socket.socket) -> None:
    if isinstance(conn, ssl.SSLSocket):
        conn.unwrap()


def _safe_name(name: str) -> bool:
    """A plain entry of this directory: no path separator (a hostile `../x` listed by the
    server must not reach outside the source directory), no line break (it could not be sent
    in an FTP command), not `.` or `..`."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\r\n\x00")


def walk_tree(
    list_dir: Callable[[str], list[RemoteEntry]], root: str, recursive: bool, log: logging.Logger
) -> Iterator[tuple[str, RemoteEntry]]:
    """(full path, entry) for every file under `root`, breadth-first (FTP and SFTP alike)."""
    pending = [root.rstrip("/") or "/"]
    while pending:
        directory = pending.pop(0)
        for entry in list_dir(directory):
            if not _safe_name(entry.name):
                log.warning(f"skipping the listed name {entry.name!r} in {directory!r}")
                continue
            full = join(directory, entry.name)
            if entry.is_dir:
                if recursive:
                    pending.append(full)
            else:
                yield full, entry


def join(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}"
