"""Operator commands of the orchestration side: `sync-assets doctor` and `sync-assets demo`."""

from __future__ import annotations

import argparse
import ftplib
import logging
import os
from collections.abc import Callable

from sync_assets.core.settings import ConfigError
from sync_assets.ftp.client import open_session
from sync_assets.ftp.retry import RetryPolicy
from sync_assets.ftp.sftp_client import RemoteFileError, SFTPClient
from sync_assets.orchestration.schedules import default_schedule_status, schedule_timezone
from sync_assets.resources import (
    FTPResource,
    MySQLResource,
    PostgresResource,
    SourceUnavailableError,
)

Resource = PostgresResource | MySQLResource | FTPResource

DAGSTER_DB_ENV = "DAGSTER_PG_DB"


def resource_from_env(cls: type[Resource]) -> Resource:
    """The resource with the values of its variables (unset ones keep the class default)."""
    values = {
        field: os.environ[name] for field, name in cls.env_names.items() if name in os.environ
    }
    return cls(**values)


def check_postgres(database: str | None = None) -> str:
    resource = resource_from_env(PostgresResource)
    if database is not None:
        resource = resource.model_copy(update={"database": database})
    with resource.connection() as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    return f"{resource.describe()} (PostgreSQL {version})"


def check_mysql() -> str:
    resource = resource_from_env(MySQLResource)
    conn = resource.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            version = cur.fetchone()[0]
    finally:
        conn.close()
    return f"{resource.describe()} ({version})"


def check_ftp() -> str:
    resource = resource_from_env(FTPResource)
    if resource.is_sftp:
        return check_sftp(resource)
    try:
        ftp = open_session(resource, logging.getLogger(__name__))
    except ftplib.all_errors as exc:
        raise SourceUnavailableError(
            f"cannot use FTP {resource.describe()}: {resource.redact(str(exc))}"
            " (check FTP_HOST/FTP_PORT/FTP_USER/FTP_PASS/FTP_TLS)"
        ) from None
    try:
        ftp.cwd(resource.directory)
        ftp.quit()
    except ftplib.all_errors as exc:
        raise SourceUnavailableError(
            f"cannot use FTP {resource.describe()}: {resource.redact(str(exc))} (check FTP_DIR)"
        ) from None
    finally:
        ftp.close()
    return resource.describe()


def check_sftp(resource: FTPResource) -> str:
    """Host key, login and FTP_DIR over SFTP (one attempt: the doctor reports, not retries)."""
    client = SFTPClient(resource, RetryPolicy(attempts=1), logging.getLogger(__name__))
    try:
        client.list_dir(client.absolute(resource.directory))
    except RemoteFileError as exc:
        raise SourceUnavailableError(
            f"cannot use SFTP {resource.describe()}: {exc} (check FTP_DIR)"
        ) from None
    finally:
        client.close()
    return resource.describe()


def check_dagster_storage() -> str:
    database = os.environ.get(DAGSTER_DB_ENV)
    if not database:
        raise ConfigError(f"environment variable {DAGSTER_DB_ENV} is not set (required)")
    return check_postgres(database)


def check_schedules() -> str:
    status = default_schedule_status().value
    return f"time zone {schedule_timezone()}, schedules start {status} (until toggled in the UI)"


CHECKS: dict[str, Callable[[], str]] = {
    "postgres (synced data)": check_postgres,
    "postgres (dagster storage)": check_dagster_storage,
    "mysql (legacy source)": check_mysql,
    "ftp (machine logs)": check_ftp,
    "schedules": check_schedules,
}


def run_doctor(_args: argparse.Namespace) -> int:
    """Each check prints one line; errors name the variable to fix and never a secret."""
    failures = 0
    for name, check in CHECKS.items():
        try:
            print(f"ok    {name}: {check()}")
        except (ConfigError, SourceUnavailableError, OSError) as exc:
            failures += 1
            print(f"FAIL  {name}: {exc}")
    return 1 if failures else 0


def run_demo(args: argparse.Namespace) -> int:
    try:  # devtools is not in the production wheel or image
        from sync_assets.devtools import demo
    except ModuleNotFoundError:
        print("the demo runs from a development checkout (scripts/demo), not from this install")
        return 2

    demo_args = list(args.demo_args)
    if demo_args[:1] == ["--"]:
        demo_args = demo_args[1:]
    return demo.main(demo_args)


def register(subparsers: argparse._SubParsersAction) -> None:
    doctor = subparsers.add_parser(
        "doctor",
        help="check the connections and settings the schedules need",
        description="Connect to PostgreSQL (data and Dagster storage), MySQL and FTP with the"
        " configured variables and print one ok/FAIL line each; exit 1 if any fails.",
    )
    doctor.set_defaults(func=run_doctor)
    demo_parser = subparsers.add_parser(
        "demo",
        help="run the local demo (same as scripts/demo; options after --)",
        description="Run the local demo: see `scripts/demo --help` for its options.",
    )
    demo_parser.add_argument("demo_args", nargs=argparse.REMAINDER)
    demo_parser.set_defaults(func=run_demo)
