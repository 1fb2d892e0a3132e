"""What retrying can fix and what it cannot: the one classification of failures.

Permanent: a login or database refused, a configuration error, the delete guard, a column type
with no mapping... The same attempt fails the same way until a person changes a variable or an
option, so the step fails at once with the message naming it, with no step retry and no run
retry. Anything else (a reset, a timeout, a server restarting) is transient: the step is
retried with a growing pause, spent asleep in the step's own process.
"""

from __future__ import annotations

import ftplib
import random
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

import dagster as dg
import pymysql

from sync_assets.core.settings import ConfigError

# The run tag Dagster's run-retry daemon reads (dagster.yaml `run_retries`): "false" on a run
# means a step failure of that run is not retried by re-launching the run.
RUN_RETRY_ON_STEP_FAILURE_TAG = "dagster/retry_on_asset_or_op_failure"

T = TypeVar("T")

# Transient failures: retries of the step in the same run, pauses 15 s, 30 s, 60 s (+-25%,
# so the two jobs don't retry in lockstep). Shared with the jobs' RetryPolicy.
STEP_RETRIES = 3
FIRST_RETRY_DELAY_SECONDS = 15.0

# MySQL server errors that retrying cannot fix: access denied (1044 database, 1045 user or
# password, 1698 socket-auth user), unknown database (1049).
MYSQL_REFUSED_CODES = {
    1044: "MYSQL_USER/MYSQL_DB",
    1045: "MYSQL_USER/MYSQL_PASSWORD",
    1049: "MYSQL_DB",
    1698: "MYSQL_USER/MYSQL_PASSWORD",
}
# A privilege missing on a table or schema: MySQL 1142/1143 (command denied), PostgreSQL
# SQLSTATE 42501 (insufficient privilege). The grant must change first.
MYSQL_PRIVILEGE_CODES = frozenset({1142, 1143})
POSTGRES_PRIVILEGE_STATE = "42501"
POSTGRES_REFUSAL_WORDS = ("does not exist", "denied", "authentication", "pg_hba.conf")
# PostgreSQL refusals: libpq reports them without SQLSTATE, so by their FATAL message; each
# with the variables to check.
POSTGRES_REFUSALS = (
    ("password authentication failed", "POSTGRES_USER/POSTGRES_PASSWORD"),
    ("no pg_hba.conf entry", "POSTGRES_HOST/POSTGRES_USER (pg_hba.conf)"),
    ("authentication failed", "POSTGRES_USER/POSTGRES_PASSWORD"),
    ("role", "POSTGRES_USER"),  # role "x" does not exist
    ("database", "POSTGRES_DB"),  # database "x" does not exist / permission denied for ...
)


class PermanentError(Exception):
    """Retrying cannot fix this: a person must change a variable or an option first."""


def mysql_refused(exc: BaseException) -> str | None:
    """The variables to check when MySQL refused the login or the database, else None."""
    code = exc.args[0] if exc.args else None
    return MYSQL_REFUSED_CODES.get(code) if isinstance(code, int) else None


def postgres_refused(exc: BaseException) -> str | None:
    """The variables to check when PostgreSQL refused the login or the database, else None."""
    text = str(exc).lower()
    if not any(word in text for word in POSTGRES_REFUSAL_WORDS):
        return None  # e.g. connection refused, timeout: the server did not answer
    return next((hint for marker, hint in POSTGRES_REFUSALS if marker in text), None)


def _permanent_types() -> tuple[type[BaseException], ...]:
    # Imported here: the sides' modules import this one (no cycle at import time).
    from sync_assets.core.pg import IdentifierError
    from sync_assets.mysql.catalog import TableNotFoundError
    from sync_assets.mysql.stream import RowTooLargeError
    from sync_assets.mysql.sync import DeleteGuardError
    from sync_assets.mysql.types import UnsupportedTypeError

    return (
        PermanentError,
        ConfigError,
        IdentifierError,
        DeleteGuardError,
        UnsupportedTypeError,
        TableNotFoundError,
        RowTooLargeError,  # needs max_allowed_packet raised on the server
        ftplib.error_perm,  # a 5xx reply outside a file's own handling: e.g. FTP_DIR missing
    )


def is_permanent(exc: BaseException) -> bool:
    """Would the same attempt fail the same way? (Unknown errors count as transient.)"""
    if isinstance(exc, dg.Failure):
        return not exc.allow_retries
    if getattr(exc, "sqlstate", None) == POSTGRES_PRIVILEGE_STATE:
        return True
    code = exc.args[0] if isinstance(exc, pymysql.MySQLError) and exc.args else None
    if code in MYSQL_PRIVILEGE_CODES or code in MYSQL_REFUSED_CODES:
        return True
    return isinstance(exc, _permanent_types())


def retry_delay(retry_number: int) -> float:
    """The pause before retry `retry_number + 1`: 15 s, 30 s, 60 s, each +-25%."""
    base = FIRST_RETRY_DELAY_SECONDS * (2**retry_number)
    return base * random.uniform(0.75, 1.25)  # noqa: S311 (jitter, not security)


def fail_permanently(context: dg.AssetExecutionContext, exc: BaseException) -> NoReturn:
    """Fail the step now: no step retry, and the run is marked not to be re-launched."""
    context.instance.add_run_tags(context.run.run_id, {RUN_RETRY_ON_STEP_FAILURE_TAG: "false"})
    if isinstance(exc, dg.Failure):
        raise exc
    message = str(exc) or type(exc).__name__
    if isinstance(exc, ftplib.error_perm):
        message = f"FTP refused: {message} (check FTP_DIR, the source's directory, FTP rights)"
    raise dg.Failure(
        description=message,
        allow_retries=False,
        metadata={"cause": type(exc).__name__, "retried": "no: retrying cannot fix this"},
    ) from None


def retry_transient(context: dg.AssetExecutionContext, exc: BaseException) -> NoReturn:
    """Re-raise `exc` after the pause before the step's next retry, spent asleep here.

    Retries come from the job's RetryPolicy (no delay of its own); with no policy (a plain
    materialisation) or none left, `exc` is raised at once. The pause is taken in the step
    (a blocking sleep: no CPU) because Dagster's multiprocess executor polls without sleeping
    while its only step waits out a RetryPolicy delay, keeping a core busy for the whole pause.
    """
    step = context.op_execution_context.get_step_execution_context()
    policy = step.op_retry_policy
    attempt = context.retry_number
    if policy is None or attempt >= policy.max_retries:
        raise exc
    delay = retry_delay(attempt)
    context.log.warning(
        f"{type(exc).__name__}: {exc}; retry {attempt + 1} of {policy.max_retries} in {delay:.0f}s"
    )
    time.sleep(delay)
    raise exc


def run_classified(context: dg.AssetExecutionContext, body: Callable[[], T]) -> T:
    """Run an asset's body; a permanent failure fails at once, a transient one is retried."""
    try:
        return body()
    except Exception as exc:
        if is_permanent(exc):
            fail_permanently(context, exc)
        retry_transient(context, exc)
