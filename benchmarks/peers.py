"""Peers in the same run on the same data (issue 18): Sling and pgloader, each through its own
command line, into its own schema of a fresh PostgreSQL database, checked like our syncs.

Both are benchmark-only tools, never project dependencies. When one is missing it is
installed into the benchmark's own environment: Sling's PyPI wheel (`sling-linux-amd64`,
which ships the binary) with `uv pip install --target results/peers/sling`; pgloader from
Debian's package with `apt-get` when running as root. Both steps are idempotent; when one
cannot be done the peer is skipped with a line saying why.

Credentials never reach a command line: Sling reads its connection URLs from environment
variables named on its command line, pgloader from a command file (mode 0600, deleted after).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from benchmarks import dataset
from benchmarks.measure import Measurement, PgProbe, run_measured
from benchmarks.servers import BenchServers

SLING_WHEEL = "sling-linux-amd64"
SLING_SCHEMA = "sling_peer"
PGLOADER_SCHEMA = "pgloader_peer"
REPO_ROOT = Path(__file__).resolve().parents[1]


def _uv() -> str | None:
    found = shutil.which("uv")
    local = REPO_ROOT / ".tools" / "bin" / "uv"
    return found or (str(local) if local.exists() else None)


def find_sling(peers_dir: Path, log: Callable[[str], None]) -> str | None:
    """Sling's binary: on PATH, already installed under `peers_dir`, or installed there now."""
    on_path = shutil.which("sling")
    if on_path:
        return on_path
    target = peers_dir / "sling"
    binary = target / "sling_linux_amd64" / "bin" / "sling-linux-amd64"
    if not binary.exists():
        uv = _uv()
        if uv is None:
            log("peer Sling skipped: no uv to install its wheel with")
            return None
        done = subprocess.run(
            [uv, "pip", "install", "--quiet", "--target", str(target), SLING_WHEEL],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not binary.exists():
            log(
                f"peer Sling skipped: installing {SLING_WHEEL} failed: {done.stderr.strip()[-300:]}"
            )
            return None
    binary.chmod(0o755)
    return str(binary)


def find_pgloader(log: Callable[[str], None]) -> str | None:
    """pgloader on PATH, or Debian's package installed now (as root only)."""
    found = shutil.which("pgloader")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log("peer pgloader skipped: not installed, and installing it needs root and apt-get")
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(
        ["apt-get", "install", "-y", "-q", "pgloader"], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
        done = subprocess.run(
            ["apt-get", "install", "-y", "-q", "pgloader"], capture_output=True, text=True, env=env
        )
    found = shutil.which("pgloader")
    if not found:
        log(f"peer pgloader skipped: apt-get install pgloader failed: {done.stderr.strip()[-300:]}")
    return found


def _url(scheme: str, user: str, password: str, host: str, port: int, path: str) -> str:
    secret = f":{quote(password, safe='')}" if password else ""
    return f"{scheme}://{quote(user, safe='')}{secret}@{host}:{port}/{path}"


class PeerRunner:
    """Runs Sling and pgloader against the benchmark's MariaDB table and one PostgreSQL db."""

    def __init__(
        self, servers: BenchServers, mysql_db: str, work_dir: Path, sling: str | None,
        pgloader: str | None,
    ) -> None:  # fmt: skip
        self.servers, self.mysql_db, self.work_dir = servers, mysql_db, work_dir
        self.sling, self.pgloader = sling, pgloader

    def _checked(self, what: str, m: Measurement) -> Measurement:
        if m.returncode != 0:
            raise RuntimeError(f"peer {what} failed ({m.returncode}): {m.stderr.strip()[-800:]}")
        return m

    def _sling_env(self, pg_db: str) -> dict[str, str]:
        my, pg = self.servers.mysql, self.servers.pg
        env = self.servers.client_env()
        env["BENCH_SLING_SRC"] = _url("mysql", my.user, my.password, my.host, my.port,
                                      self.mysql_db)  # fmt: skip
        env["BENCH_SLING_TGT"] = (
            _url("postgresql", pg.user, pg.password, pg.host, pg.port, pg_db) + "?sslmode=disable"
        )
        env["SLING_HOME_DIR"] = str(self.work_dir / "sling_home")
        env["SLING_DISABLE_TELEMETRY"] = "true"
        return env

    def sling_run(self, pg_db: str, incremental: bool) -> Measurement:
        """`sling run` of the table: full refresh, or incremental on the primary key and the
        update timestamp (Sling reads the target's maximum of it to know where to start)."""
        assert self.sling is not None
        argv = [
            self.sling, "run", "--src-conn", "BENCH_SLING_SRC",
            "--src-stream", f"{self.mysql_db}.{dataset.TABLE}",
            "--tgt-conn", "BENCH_SLING_TGT", "--tgt-object", f"{SLING_SCHEMA}.{dataset.TABLE}",
        ]  # fmt: skip
        if incremental:
            argv += ["--mode", "incremental", "--primary-key", dataset.PRIMARY_KEY,
                     "--update-key", dataset.UPDATE_COLUMN]  # fmt: skip
        else:
            argv += ["--mode", "full-refresh"]
        probe = PgProbe(self.servers.pg_conninfo(), pg_db)
        m = run_measured(argv, env=self._sling_env(pg_db), probe=probe)
        return self._checked("Sling", m)

    def pgloader_run(self, pg_db: str) -> Measurement:
        """pgloader's whole-database load, limited to the table, into its own schema."""
        assert self.pgloader is not None
        my, pg = self.servers.mysql, self.servers.pg
        command = self.work_dir / "pgloader.load"
        command.touch(mode=0o600)
        command.write_text(
            "LOAD DATABASE\n"
            f"  FROM {_url('mysql', my.user, my.password, my.host, my.port, self.mysql_db)}\n"
            f"  INTO {_url('postgresql', pg.user, pg.password, pg.host, pg.port, pg_db)}\n"
            "  WITH include drop, create tables, create indexes, reset sequences\n"
            f"  INCLUDING ONLY TABLE NAMES MATCHING '{dataset.TABLE}'\n"
            f"  ALTER SCHEMA '{self.mysql_db}' RENAME TO '{PGLOADER_SCHEMA}';\n",
            encoding="utf-8",
        )
        try:
            argv = [self.pgloader, "--no-ssl-cert-verification", str(command)]
            probe = PgProbe(self.servers.pg_conninfo(), pg_db)
            m = run_measured(argv, env=self.servers.client_env(), probe=probe)
        finally:
            command.unlink(missing_ok=True)
        return self._checked("pgloader", m)
