"""SFTP (FTP_PROTOCOL=sftp): the FTP client's interface over SSH, with paramiko.

The ingest code cannot tell the two apart: the same listing entries, precise (size, mtime),
downloads from an offset (an SFTP read at that offset, so growing files resume), deletes,
and the same errors: a missing or unreadable file raises `RemoteFileError` (an
`ftplib.error_perm`, what the ingest code already treats as "skip this file"), a transient
failure reconnects with backoff and ends as `SourceUnavailableError`.

The server's host key is always verified, against FTP_HOST_KEY_FINGERPRINT when set, else
against the known_hosts file FTP_KNOWN_HOSTS (OpenSSH format, default ~/.ssh/known_hosts). An
unknown or changed key is refused; nothing is ever added to known_hosts automatically.
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import socket
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TypeVar

import paramiko

from sync_assets.core.settings import ConfigError
from sync_assets.ftp.client import RemoteFileClient, ShortTransferError, _write_local, join
from sync_assets.ftp.listing import RemoteEntry
from sync_assets.ftp.retry import RetryPolicy
from sync_assets.resources import FTPResource, SourceUnavailableError

T = TypeVar("T")
BLOCK_SIZE = 256 * 1024
# Reads in flight per download (32 KiB each): enough to hide the round trip on a WAN link.
PREFETCH_REQUESTS = 64
# Prefetched data waits in memory until read: prefetching a window at a time bounds it.
PREFETCH_WINDOW = 8 * 1024 * 1024
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (paramiko.SSHException, EOFError, OSError)
HOST_KEY_HELP = (
    "check the fingerprint with the server's administrator, then add the key to the file"
    " named by FTP_KNOWN_HOSTS (e.g. `ssh-keyscan -p PORT HOST`) or set"
    " FTP_HOST_KEY_FINGERPRINT=SHA256:... (as `ssh-keygen -lf` prints it)"
)


class RemoteFileError(ftplib.error_perm):
    """The file is missing or not readable/deletable (SFTP's no-such-file, permission denied
    or failure status): permanent for this file, like FTP's 5xx replies, never retried."""


class HostKeyRefusedError(SourceUnavailableError):
    """The server's host key is unknown or not the expected one: we do not talk to it."""


class SFTPClient(RemoteFileClient[paramiko.SFTPClient]):
    """One logical SFTP session; reconnects transparently when it breaks (see FTPClient)."""

    protocol = "SFTP"
    check_hint = "check FTP_HOST/FTP_PORT"
    transient_errors = TRANSIENT_ERRORS

    # SFTP listings carry the exact size and mtime (what MLSD gives on FTP): the ingest
    # code then re-lists a directory instead of asking file by file.
    has_mlst = True

    def __init__(
        self, resource: FTPResource, policy: RetryPolicy, log: logging.Logger | None = None
    ) -> None:
        self.resource = resource
        self.policy = policy
        self.log = log or logging.getLogger(__name__)
        self._session: tuple[paramiko.Transport, paramiko.SFTPClient] | None = None
        self.reconnects = 0

    # --- connection ---------------------------------------------------------------------

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._session is None:
            transport = open_transport(self.resource)
            try:
                sftp = paramiko.SFTPClient.from_transport(transport)
                if sftp is None:
                    raise paramiko.SSHException("the server refused the sftp subsystem")
                sftp.get_channel().settimeout(self.resource.timeout)
            except BaseException:
                transport.close()
                raise
            self._session = (transport, sftp)
        return self._session[1]

    def close(self) -> None:
        if self._session is not None:
            transport, sftp = self._session
            self._session = None
            try:
                with contextlib.suppress(*TRANSIENT_ERRORS):
                    sftp.close()  # on a dead connection this raises (EOFError): nothing to do
            finally:
                transport.close()

    def _handle(self) -> paramiko.SFTPClient:
        return self.sftp

    def _reset(self) -> None:
        self.close()

    def _refuse(self, what: str, exc: BaseException, last: bool) -> None:
        if isinstance(exc, ShortTransferError):
            raise exc  # the file is shorter than asked for: certain, the caller decides
        if _is_file_status(exc):
            raise RemoteFileError(self.resource.redact(f"{what}: {exc}")) from None

    def absolute(self, path: str) -> str:
        """`path` as an absolute remote path (a relative FTP_DIR is relative to login dir)."""
        if path.startswith("/"):
            return path
        home = self.call("home directory", lambda sftp: sftp.normalize("."))
        return join(home, path) if path not in ("", ".") else home

    # --- listing ------------------------------------------------------------------------

    def list_dir(self, path: str) -> list[RemoteEntry]:
        attributes = self.call(f"listing {path!r}", lambda sftp: sftp.listdir_attr(path))
        return [e for a in attributes if (e := _entry(a.filename, a)) is not None]

    def stat(self, path: str) -> tuple[int, datetime | None] | None:
        """Exact (size, mtime) of one regular file; None if it is gone (or not a file)."""

        def action(sftp: paramiko.SFTPClient) -> tuple[int, datetime | None] | None:
            try:
                attributes = sftp.stat(path)
            except FileNotFoundError:
                return None
            entry = _entry(path, attributes)
            return None if entry is None or entry.is_dir else (entry.size, entry.mtime)

        return self.call(f"stat {path!r}", action)

    # --- transfers ----------------------------------------------------------------------

    def download(self, path: str, offset: int, sink: IO[bytes], limit: int | None = None) -> int:
        """Append bytes `offset`..`offset+limit` (or EOF) to `sink`; resumes after a break."""
        written = 0
        base = sink.tell()

        def action(sftp: paramiko.SFTPClient) -> int:
            nonlocal written
            # A failed attempt may have left part of a block: cut the sink back to what counts.
            sink.seek(base + written)
            sink.truncate()
            with sftp.open(path, "rb") as remote:
                size = remote.stat().st_size or 0
                end = size if limit is None else offset + limit
                if end > size:
                    raise ShortTransferError(f"{path!r} has {size} bytes, not {end}")
                remote.seek(offset + written)
                window_end = offset + written
                while offset + written < end:
                    if offset + written >= window_end:
                        window_end = min(end, offset + written + PREFETCH_WINDOW)
                        remote.prefetch(window_end, max_concurrent_requests=PREFETCH_REQUESTS)
                    block = remote.read(min(BLOCK_SIZE, window_end - offset - written))
                    if not block:  # paramiko reads a dropped connection as end of file:
                        remote.stat()  # a dead one raises here (retried), a live one is short
                        raise ShortTransferError(f"transfer ended at byte {offset + written}")
                    _write_local(sink, block, path)
                    written += len(block)  # counted per block: a retry resumes right here
            return written

        return self.call(f"download {path!r}", action)

    def delete(self, path: str) -> None:
        self.call(f"delete {path!r}", lambda sftp: sftp.remove(path))


def _is_file_status(exc: BaseException) -> bool:
    """SFTP's no-such-file or permission-denied status (paramiko raises them with ENOENT and
    EACCES). Its generic "failure" status cannot be told from a closed socket (both a bare
    OSError): it is retried like a connection fault."""
    return isinstance(exc, FileNotFoundError | PermissionError)


def _entry(name: str, attributes: paramiko.SFTPAttributes) -> RemoteEntry | None:
    """A listing entry; None for links, devices and sockets (as for FTP listings)."""
    mode = attributes.st_mode or 0
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return None
    mtime = attributes.st_mtime
    when = datetime.fromtimestamp(mtime, UTC) if mtime is not None else None
    return RemoteEntry(name, stat.S_ISDIR(mode), attributes.st_size or 0, when, 1)


# --- the SSH session: host key, login -----------------------------------------------------


def open_transport(resource: FTPResource) -> paramiko.Transport:
    """A connected SSH transport whose host key was verified and whose login succeeded."""
    known = known_host_keys(resource)  # before connecting: a config error needs no server
    sock = socket.create_connection((resource.host_name, resource.port_number), resource.timeout)
    try:
        transport = paramiko.Transport(sock)
    except BaseException:
        sock.close()
        raise
    try:
        transport.banner_timeout = transport.auth_timeout = resource.timeout
        if known:  # offer the known key's type first, as OpenSSH does
            options = transport.get_security_options()
            options.key_types = sorted(options.key_types, key=lambda t: _key_name(t) not in known)
        transport.start_client(timeout=resource.timeout)
        verify_host_key(resource, transport.get_remote_server_key(), known)
        authenticate(resource, transport)
    except BaseException:
        transport.close()
        raise
    return transport


def known_host_keys(resource: FTPResource) -> dict[str, paramiko.PKey]:
    """The keys FTP_KNOWN_HOSTS holds for this host and port (empty with a pinned print)."""
    if resource.host_key_fingerprint:
        pinned_fingerprint(resource)  # a malformed pin fails before connecting
        return {}
    path = resource.known_hosts_path
    try:
        keys = paramiko.HostKeys(path)
    except FileNotFoundError:
        raise HostKeyRefusedError(
            f"SFTP {resource.describe()}: the known_hosts file {path!r} (FTP_KNOWN_HOSTS) does"
            f" not exist, so the server's host key cannot be verified: {HOST_KEY_HELP}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"FTP_KNOWN_HOSTS={path!r}: cannot read it ({exc.strerror})") from None
    return dict(keys.lookup(_host_entry(resource)) or {})


def verify_host_key(
    resource: FTPResource, key: paramiko.PKey, known: dict[str, paramiko.PKey]
) -> None:
    """Refuse a server whose key is not the pinned one, or not the known_hosts one."""
    offered = f"{key.get_name()} {key.fingerprint}"
    where = f"SFTP {resource.describe()}"
    if resource.host_key_fingerprint:
        pinned = pinned_fingerprint(resource)
        if key.fingerprint.removeprefix("SHA256:").rstrip("=") != pinned:
            raise HostKeyRefusedError(
                f"{where}: the server's host key ({offered}) does not match"
                f" FTP_HOST_KEY_FINGERPRINT (SHA256:{pinned}): refused. If the server's key was"
                " changed on purpose, set FTP_HOST_KEY_FINGERPRINT to its new fingerprint"
            )
        return
    path, entry = resource.known_hosts_path, _host_entry(resource)
    expected = known.get(key.get_name())
    if expected is None:
        raise HostKeyRefusedError(
            f"{where}: the server's host key ({offered}) is unknown: {path!r} (FTP_KNOWN_HOSTS)"
            f" has no {key.get_name()} key for {entry!r}; refused (keys are never added"
            f" automatically): {HOST_KEY_HELP}"
        )
    if expected != key:
        raise HostKeyRefusedError(
            f"{where}: the server's host key has CHANGED: it offered {offered}, {path!r}"
            f" (FTP_KNOWN_HOSTS) holds {expected.fingerprint} for {entry!r}; refused (this may"
            f" be a man-in-the-middle attack). If the change is known to be legitimate,"
            f" replace the entry in FTP_KNOWN_HOSTS or set FTP_HOST_KEY_FINGERPRINT"
        )


def pinned_fingerprint(resource: FTPResource) -> str:
    """FTP_HOST_KEY_FINGERPRINT without its `SHA256:` prefix and base64 padding."""
    value = resource.host_key_fingerprint.strip()
    digest = value.removeprefix("SHA256:").rstrip("=")
    if not value.startswith("SHA256:") or len(digest) != 43:
        raise ConfigError(
            "FTP_HOST_KEY_FINGERPRINT must be a SHA256 fingerprint as `ssh-keygen -lf` prints"
            f" it (SHA256: and 43 base64 characters), got {value!r}"
        )
    return digest


def authenticate(resource: FTPResource, transport: paramiko.Transport) -> None:
    """Log in with FTP_KEY_FILE when set, else (or when the server also wants it) FTP_PASS."""
    user = resource.login_user
    try:
        if resource.key_file:
            transport.auth_publickey(user, load_key(resource))
        if not transport.is_authenticated():
            transport.auth_password(user, resource.secret)
    except paramiko.AuthenticationException as exc:  # permanent: never retried
        credentials = "FTP_KEY_FILE" if resource.key_file else "FTP_PASS/FTP_PASS_FILE"
        raise SourceUnavailableError(
            f"SFTP {resource.describe()}: login refused: {resource.redact(str(exc))}"
            f" (check FTP_USER/{credentials})"
        ) from None


def load_key(resource: FTPResource) -> paramiko.PKey:
    """The private key of FTP_KEY_FILE (OpenSSH or PEM), decrypted with FTP_KEY_PASSPHRASE."""
    path = Path(resource.key_file).expanduser()
    try:
        passphrase = resource.key_passphrase.encode() if resource.key_passphrase else None
        return paramiko.PKey.from_path(path, passphrase)
    except (paramiko.PasswordRequiredException, TypeError) as exc:
        # cryptography's TypeError: a passphrase is missing, or given for a plain key.
        if not resource.key_passphrase:
            raise ConfigError(
                f"FTP_KEY_FILE={str(path)!r} is encrypted: set FTP_KEY_PASSPHRASE"
            ) from None
        raise ConfigError(
            f"FTP_KEY_FILE={str(path)!r}: {resource.redact(str(exc))} (check FTP_KEY_PASSPHRASE)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"FTP_KEY_FILE={str(path)!r}: cannot read it ({exc.strerror})") from None
    except (paramiko.SSHException, ValueError) as exc:
        reason = resource.redact(str(exc))
        raise ConfigError(
            f"FTP_KEY_FILE={str(path)!r}: not a usable private key ({reason});"
            " check the file and FTP_KEY_PASSPHRASE"
        ) from None


def _host_entry(resource: FTPResource) -> str:
    """How known_hosts names this server: `host`, or `[host]:port` off port 22."""
    host, port = resource.host_name, resource.port_number
    return host if port == 22 else f"[{host}]:{port}"


def _key_name(algorithm: str) -> str:
    """The key type behind a host-key algorithm (rsa-sha2-* keys are `ssh-rsa` keys)."""
    return "ssh-rsa" if algorithm.startswith("rsa-sha2-") else algorithm
