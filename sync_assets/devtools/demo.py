"""`scripts/demo`: the whole thing running locally, without Docker.

Finds (or starts throwaway) PostgreSQL and MariaDB servers, seeds a demo legacy database that
keeps changing, serves machine log files from a local FTP server that simulated machines keep
writing, and runs the Dagster webserver (http://127.0.0.1:3000) and daemon with both
schedules on. Ctrl-C stops everything this command started; the databases stay for next time.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from sync_assets.devtools.demo_legacy import DEMO_TABLES, mutate_legacy, seed_legacy
from sync_assets.devtools.demo_machines import MachineSimulator
from sync_assets.devtools.demo_stack import REPO_ROOT, DagsterStack, prepare_dagster_home
from sync_assets.devtools.ftp_server import start_ftp_server
from sync_assets.devtools.servers import ServerInfo, mariadb_server, mysql_connect, postgres_server

DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "sync_assets_demo"
LEGACY_CHANGE_SECONDS = 20.0
MACHINE_WRITE_SECONDS = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000, help="webserver port (default 3000)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=REPO_ROOT / ".demo",
        help="FTP files, DAGSTER_HOME and logs (default ./.demo)",
    )
    parser.add_argument("--pg-db", default="sync_demo", help="PostgreSQL DB for synced data")
    parser.add_argument(
        "--dagster-db", default="sync_demo_dagster", help="PostgreSQL DB for Dagster's own storage"
    )
    parser.add_argument("--mysql-db", default="legacy_demo", help="demo legacy MariaDB DB")
    parser.add_argument("--ftp-port", type=int, default=0, help="FTP port (default: a free one)")
    parser.add_argument(
        "--pg-port",
        type=int,
        default=5432,
        help="PostgreSQL on 127.0.0.1 to use; if it does not answer, a throwaway"
        " server is started (default 5432)",
    )
    parser.add_argument(
        "--mysql-port",
        type=int,
        default=3306,
        help="MariaDB on 127.0.0.1 to use, else a throwaway one (default 3306)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=0,
        help="stop by itself after this many seconds (0 = until Ctrl-C)",
    )
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


@contextmanager
def _servers(pg_port: int, mysql_port: int) -> Iterator[tuple[ServerInfo, ServerInfo]]:
    """The local PostgreSQL and MariaDB, or throwaway ones; a clear message when neither."""
    started: list[ServerInfo] = []
    finders = (
        ("PostgreSQL", lambda: postgres_server(port=pg_port)),
        ("MariaDB", lambda: mariadb_server(port=mysql_port)),
    )
    try:
        for kind, find in finders:
            try:
                started.append(find())
            except RuntimeError as exc:
                raise SystemExit(
                    f"[demo] {exc}.\n[demo] Start {kind} on 127.0.0.1 (default port) or install"
                    " it (Debian: apt-get install postgresql mariadb-server) and run again."
                ) from None
            say(f"{kind} at {started[-1].host}:{started[-1].port}")
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()  # only throwaway servers have a process to stop


def ensure_pg_database(pg: ServerInfo, name: str) -> None:
    with psycopg.connect(
        host=pg.host,
        port=pg.port,
        user=pg.user,
        password=pg.password or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def seed_demo_legacy(server: ServerInfo, database: str) -> None:
    with mysql_connect(server) as conn, conn.cursor() as cur:
        quoted = database.replace("`", "``")
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{quoted}` CHARACTER SET utf8mb4")
    with mysql_connect(server, database) as conn:
        seed_legacy(conn)


def _every(stop: threading.Event, seconds: float, action, name: str) -> threading.Thread:
    def loop() -> None:
        while not stop.wait(seconds):
            try:
                action()
            except Exception as exc:  # a hiccup must not end the demo
                say(f"{name}: {type(exc).__name__}: {exc}")

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


def start_legacy_changes(server: ServerInfo, database: str, stop: threading.Event) -> None:
    rng = random.Random(11)  # noqa: S311 (demo data)
    conn = mysql_connect(server, database)
    _every(stop, LEGACY_CHANGE_SECONDS, lambda: mutate_legacy(conn, rng), "legacy-changes")


def demo_env(
    args: argparse.Namespace, pg: ServerInfo, mysql: ServerInfo, ftp, home: Path
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(home),
        SYNC_ASSETS_STATE_DIR=str(home / "state"),
        POSTGRES_HOST=pg.host,
        POSTGRES_PORT=str(pg.port),
        POSTGRES_USER=pg.user,
        POSTGRES_PASSWORD=pg.password,
        POSTGRES_DB=args.pg_db,
        DAGSTER_PG_DB=args.dagster_db,
        MYSQL_HOST=mysql.host,
        MYSQL_PORT=str(mysql.port),
        MYSQL_USER=mysql.user,
        MYSQL_PASSWORD=mysql.password,
        MYSQL_DB=args.mysql_db,
        FTP_HOST=ftp.host,
        FTP_PORT=str(ftp.port),
        FTP_USER=ftp.user,
        FTP_PASS=ftp.password,
        FTP_DIR="/",
        SCHEDULES_START_STOPPED="false",
    )
    return env


def refresh_mysql_tables(env: dict[str, str]) -> None:
    """Store the table list with `sync-assets refresh-mysql` when the command exists."""
    cli = str(Path(sys.executable).parent / "sync-assets")
    probe = subprocess.run([cli, "refresh-mysql", "--help"], env=env, capture_output=True)
    if probe.returncode != 0:
        env["MYSQL_TABLES"] = ",".join(DEMO_TABLES)
        say(f"no refresh-mysql command yet: MYSQL_TABLES={env['MYSQL_TABLES']}")
        return
    subprocess.run([cli, "refresh-mysql"], env=env, cwd=REPO_ROOT, check=True)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    # Ctrl-C and SIGTERM both stop cleanly, even when started from a shell that ignores SIGINT
    # for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # Warnings only: pyftpdlib would otherwise configure its own logger, one line per transfer.
    logging.basicConfig(level=logging.WARNING, format="[demo] %(name)s: %(message)s")
    args.workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    with ExitStack() as cleanup:
        pg, mysql = cleanup.enter_context(_servers(args.pg_port, args.mysql_port))
        for name in (args.pg_db, args.dagster_db):
            ensure_pg_database(pg, name)
        seed_demo_legacy(mysql, args.mysql_db)
        say(f"legacy demo DB `{args.mysql_db}` seeded; it changes every {LEGACY_CHANGE_SECONDS:g}s")
        ftp_root = args.workdir / "ftp"
        ftp_root.mkdir(exist_ok=True)
        ftp = start_ftp_server(ftp_root, port=args.ftp_port)
        cleanup.callback(ftp.stop)
        cleanup.callback(stop.set)
        simulator = MachineSimulator(ftp_root)
        simulator.seed_backlog()
        simulator.step()
        _every(stop, MACHINE_WRITE_SECONDS, simulator.step, "machines")
        start_legacy_changes(mysql, args.mysql_db, stop)
        say(f"FTP server at {ftp.host}:{ftp.port} serving {ftp_root}")
        home = prepare_dagster_home(args.workdir / "dagster_home")
        env = demo_env(args, pg, mysql, ftp, home)
        refresh_mysql_tables(env)
        stack = DagsterStack(
            env=env,
            port=args.port,
            log_dir=args.workdir,
            console=frozenset({"daemon"}),
            daemon_log_level="warning",
            code_server_log_level="error",
        )
        cleanup.callback(stack.stop)
        say("starting the Dagster webserver, then the daemon ...")
        stack.start()
        say(f"UI at {stack.url} (schedules on). Ctrl-C stops everything this started.")
        _wait(args.duration)
    say("stopped")
    return 0


def _wait(duration: float) -> None:
    deadline = time.monotonic() + duration if duration else None
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("Ctrl-C: stopping")


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except KeyboardInterrupt:
        say("interrupted during start-up; stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
