"""Find a reachable PostgreSQL / MariaDB on loopback, or start a throwaway one in a temp dir.

Used by the test bed, the demo and the benchmarks. A throwaway server runs as the current
user in its own directory on a free port and is stopped (and its files removed) by `stop()`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql


@dataclass(frozen=True)
class TLSFiles:
    """PEM files a throwaway server presents: its certificate, its key, and the CA to trust."""

    cert: Path
    key: Path
    ca: Path


@dataclass
class ServerInfo:
    """Where a server listens and who to log in as; `process` is set for throwaway servers."""

    kind: str
    host: str
    port: int
    user: str
    password: str = ""
    process: subprocess.Popen | None = None
    workdir: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_for_port(host: str, port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"throwaway {what} exited with code {proc.returncode}")
        time.sleep(0.2)
    raise RuntimeError(f"throwaway {what} did not open port {port} within 60s")


def _postgres_bin(name: str) -> str | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else shutil.which(name)


def _run_as_postgres_user() -> list[str]:
    """initdb refuses root; when root, run the binaries as the `postgres` system user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"]
    return []


def _postgres_tls_options(tls: TLSFiles | None, workdir: Path, owner: bool) -> list[str]:
    """`-c ssl=on` options; PostgreSQL wants its key private to the server's user, so the
    files are copied into its directory (and handed to the `postgres` user when root)."""
    if tls is None:
        return []
    options = ["-c", "ssl=on"]
    for setting, source in (
        ("ssl_cert_file", tls.cert),
        ("ssl_key_file", tls.key),
        ("ssl_ca_file", tls.ca),
    ):
        target = workdir / f"tls-{setting}.pem"
        shutil.copyfile(source, target)
        target.chmod(0o600)
        if owner:
            shutil.chown(target, "postgres", "postgres")
        options += ["-c", f"{setting}={target}"]
    return options


def _initdb_auth(workdir: Path, password_auth: bool) -> tuple[list[str], str]:
    """initdb's authentication options and the superuser's password ("" for trust)."""
    if not password_auth:
        return ["--auth=trust"], ""
    password = secrets.token_urlsafe(16)
    pwfile = workdir / "superuser-password"
    pwfile.write_text(password + "\n", encoding="utf-8")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    return ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"], password


def start_throwaway_postgres(
    tls: TLSFiles | None = None,
    password_auth: bool = False,
    listen: str = "127.0.0.1",
    trust_cidr: str | None = None,
) -> ServerInfo:
    """A throwaway cluster; with `tls`, `ssl=on` with those files (TCP still accepts both);
    with `password_auth`, TCP logins need a password (the superuser's is in the result).
    `listen`: PostgreSQL's listen_addresses (127.0.0.1 first); `trust_cidr`: one more network
    let in without a password (the Celery tier's worker namespaces)."""
    initdb, postgres = _postgres_bin("initdb"), _postgres_bin("postgres")
    if not (initdb and postgres):
        raise RuntimeError("PostgreSQL is not reachable and its binaries are not installed")
    workdir = Path(tempfile.mkdtemp(prefix="sync_assets_pg_"))
    prefix = _run_as_postgres_user()
    if prefix:
        shutil.chown(workdir, "postgres", "postgres")
    datadir = workdir / "data"
    auth_options, password = _initdb_auth(workdir, password_auth)
    subprocess.run(
        [*prefix, initdb, "-D", str(datadir), "-U", "postgres", *auth_options, "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    if trust_cidr:
        with (datadir / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {trust_cidr} trust\n")
    port = free_port()
    tls_options = _postgres_tls_options(tls, workdir, bool(prefix))
    proc = subprocess.Popen(
        [*prefix, postgres, "-D", str(datadir), "-p", str(port), "-h", listen,
         "-k", str(workdir), "-c", "fsync=off", *tls_options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_for_port("127.0.0.1", port, proc, "PostgreSQL")
    time.sleep(0.5)
    return ServerInfo(
        "postgres", "127.0.0.1", port, "postgres", password, process=proc, workdir=workdir
    )


def _mariadb_tls_options(tls: TLSFiles | None) -> list[str]:
    """TLS with the given files, or none at all (`--skip-ssl`: recent MariaDB releases would
    otherwise generate a self-signed certificate and offer TLS anyway)."""
    if tls is None:
        return ["--skip-ssl"]
    return [f"--ssl-cert={tls.cert}", f"--ssl-key={tls.key}", f"--ssl-ca={tls.ca}"]


def start_throwaway_mariadb(tls: TLSFiles | None = None, listen: str = "127.0.0.1") -> ServerInfo:
    """A throwaway server; with `tls` it offers TLS with those files, without it no TLS.
    `listen`: MariaDB's bind-address (a comma-separated list, 127.0.0.1 first)."""
    mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    install_db = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not (Path(mariadbd).exists() and install_db):
        raise RuntimeError("MariaDB is not reachable and its binaries are not installed")
    workdir = Path(tempfile.mkdtemp(prefix="sync_assets_mariadb_"))
    datadir = workdir / "data"
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    subprocess.run(
        # --no-defaults: a distribution's /etc/mysql config (user=mysql, its own datadir and
        # socket) must not leak into a throwaway server; it must come first on the line.
        [install_db, "--no-defaults", f"--datadir={datadir}", f"--user={user}",
         "--auth-root-authentication-method=normal"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [mariadbd, "--no-defaults", f"--datadir={datadir}", f"--port={port}",
         f"--bind-address={listen}",
         f"--socket={workdir / 'mysqld.sock'}", f"--user={user}", "--skip-grant-tables=0",
         *_mariadb_tls_options(tls)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_for_port("127.0.0.1", port, proc, "MariaDB")
    return ServerInfo("mariadb", "127.0.0.1", port, "root", process=proc, workdir=workdir)


def postgres_server(
    host: str = "127.0.0.1", port: int = 5432, user: str = "postgres", password: str = ""
) -> ServerInfo:
    """The PostgreSQL at host:port if it answers, else a throwaway one."""
    if port_open(host, port):
        return ServerInfo("postgres", host, port, user, password)
    return start_throwaway_postgres()


def mariadb_server(
    host: str = "127.0.0.1", port: int = 3306, user: str = "root", password: str = ""
) -> ServerInfo:
    """The MariaDB/MySQL at host:port if it answers, else a throwaway one."""
    if port_open(host, port):
        return ServerInfo("mariadb", host, port, user, password)
    return start_throwaway_mariadb()


def mysql_connect(server: ServerInfo, database: str | None = None) -> pymysql.Connection:
    """An autocommit admin session on `server` (UTC, utf8mb4): seeding, checks, cleanup."""
    return pymysql.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        database=database,
        charset="utf8mb4",
        autocommit=True,
        init_command="SET time_zone = '+00:00'",
    )
