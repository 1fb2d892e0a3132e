"""Dry runs of the two jobs: what a run would do now, reported without writing anything.

`mysql_sync_dry_run` reports, per table, the mode the next sync would use and why (the pure
`plan_sync` over facts read from both servers); `ftp_logs_dry_run` reports, per source, the
files a run would load (and why), those waiting, failed, and those a run would delete with
DELETE_AFTER_SYNC=true. Both are op jobs: a dry run records no materialisation, takes no
lock, creates no table and writes no ledger or state row. The tables and sources are read
when the run starts (local config only at definitions load).
"""

import dagster as dg
from pydantic import Field

from sync_assets import project_config
from sync_assets.core.actions import ACTION_TAG, ActionConfig, record_action
from sync_assets.core.settings import ConfigError
from sync_assets.ftp.actions import SourcePreview, preview_source
from sync_assets.ftp.config import SourceConfig, load_sources
from sync_assets.mysql import config as mysql_config
from sync_assets.mysql.actions import TablePreview, preview_table
from sync_assets.resources import FTPResource, MySQLResource, PostgresResource

DRY_RUN_ACTION = "dry_run"
MYSQL_DRY_RUN_JOB = "mysql_sync_dry_run"
FTP_DRY_RUN_JOB = "ftp_logs_dry_run"
# Files listed one by one in the dry run's metadata (counts are always complete).
LISTED_FILES = 1000


class MySQLDryRunConfig(ActionConfig):
    tables: list[str] = Field(
        default=[], description="MySQL tables to plan (any case); empty: every synced table."
    )
    full_refresh: bool = Field(
        default=False, description="Plan as if a full refresh were asked (what it would do)."
    )


class FTPDryRunConfig(ActionConfig):
    sources: list[str] = Field(default=[], description="Log sources; empty: every source.")


def _pick(names: list[str], wanted: list[str], what: str) -> list[str]:
    """`wanted` matched to `names` without regard to case; an unknown one is refused."""
    if not wanted:
        return names
    by_lower = {n.lower(): n for n in names}
    unknown = [w for w in wanted if w.lower() not in by_lower]
    if unknown:
        raise ConfigError(f"no such {what}: {', '.join(unknown)} (known: {', '.join(names)})")
    return [by_lower[w.lower()] for w in wanted]


def _audit(context: dg.OpExecutionContext, target: str, config: ActionConfig) -> None:
    """A dry run is recorded like any action (the job's tag says dry_run); the reason is
    optional, since it writes nothing."""
    if config.reason.strip():
        record_action(context, DRY_RUN_ACTION, target, config)


def _md_table(header: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def mysql_plan_metadata(previews: list[TablePreview]) -> dict[str, object]:
    rows = [(p.table, p.mode or "error", p.error or p.reason, p.watermark or "") for p in previews]
    return {
        "tables": len(previews),
        "full_refresh_tables": sum(p.mode == "full_refresh" for p in previews),
        "incremental_tables": sum(p.mode == "incremental" for p in previews),
        "failing_tables": sum(p.error is not None for p in previews),
        "plan": dg.MetadataValue.md(_md_table(("table", "mode", "why", "watermark"), rows)),
        "plan_json": dg.MetadataValue.json(
            [
                {
                    "table": p.table,
                    "target": p.target,
                    "mode": p.mode,
                    "reason": p.reason,
                    "error": p.error,
                    "watermark": p.watermark,
                    "columns_to_scan": p.columns_to_scan,
                }
                for p in previews
            ]
        ),
    }


@dg.op(
    name="plan_mysql_sync",
    description="Per table: the mode the next sync would use and why. Writes nothing.",
)
def plan_mysql_sync(
    context: dg.OpExecutionContext,
    config: MySQLDryRunConfig,
    mysql: MySQLResource,
    postgres: PostgresResource,
) -> dg.Output[None]:
    tables = _pick(mysql_config.configured_tables(), config.tables, "MySQL table")
    _audit(context, f"mysql: {', '.join(tables) or 'no table'}", config)
    force = f"full refresh asked: {config.reason or 'dry run'}" if config.full_refresh else None
    section, schema = project_config.section("mysql"), mysql_config.target_schema()
    previews = []
    for table in tables:
        options = mysql_config.table_options(table, section)
        previews.append(preview_table(mysql, postgres, options, schema, force_full=force))
        context.log.info(f"dry run: {previews[-1].line()}")
    return dg.Output(None, metadata=mysql_plan_metadata(previews))


def ftp_plan_metadata(previews: list[SourcePreview]) -> dict[str, object]:
    files = [f for p in previews for f in p.files]
    rows = [(f.path, f.action, f.why, f.pending_bytes) for f in files[:LISTED_FILES]]
    return {
        "files_listed": len(files),
        "files_to_load": sum(f.action == "load" for f in files),
        "files_waiting": sum(f.action == "wait" for f in files),
        "files_failed": sum(f.action == "failed" for f in files),
        "backlog_files": sum(len(p.backlog) for p in previews),
        "backlog_bytes": sum(p.backlog_bytes for p in previews),
        "files_deleted_with_delete_after_sync": sum(len(p.would_delete) for p in previews),
        "delete_after_sync_now": ", ".join(
            f"{p.source}: {str(p.delete_after_sync).lower()}" for p in previews
        ),
        "plan": dg.MetadataValue.md(_md_table(("file", "action", "why", "bytes to load"), rows)),
        "plan_json": dg.MetadataValue.json(
            {
                p.source: {
                    "load": [f.path for f in p.files if f.action == "load"],
                    "wait": [f.path for f in p.files if f.action == "wait"],
                    "failed": [f.path for f in p.files if f.action == "failed"],
                    "keep": [f.path for f in p.files if f.action == "keep"],
                    "deleted_with_delete_after_sync": p.would_delete,
                    "backlog_bytes": p.backlog_bytes,
                }
                for p in previews
            }
        ),
    }


@dg.op(
    name="plan_ftp_logs",
    description="Per log source: files a run would load, wait for, and delete with"
    " DELETE_AFTER_SYNC=true. Writes nothing.",
)
def plan_ftp_logs(
    context: dg.OpExecutionContext,
    config: FTPDryRunConfig,
    ftp: FTPResource,
    postgres: PostgresResource,
) -> dg.Output[None]:
    sources = load_sources()
    by_name: dict[str, SourceConfig] = {s.name: s for s in sources}
    names = _pick(list(by_name), config.sources, "FTP source")
    _audit(context, f"ftp: {', '.join(names)}", config)
    previews = []
    for name in names:
        previews.append(preview_source(ftp, postgres, by_name[name], context.log))
        context.log.info(f"dry run: {previews[-1].line()}")
        for planned in previews[-1].files[:LISTED_FILES]:
            context.log.debug(f"dry run: {planned.path}: {planned.action} ({planned.why})")
    return dg.Output(None, metadata=ftp_plan_metadata(previews))


@dg.job(
    name=MYSQL_DRY_RUN_JOB,
    description="Dry run of mysql_sync_job: each table's mode and why, nothing written.",
    tags={ACTION_TAG: DRY_RUN_ACTION},
)
def mysql_sync_dry_run() -> None:
    plan_mysql_sync()


@dg.job(
    name=FTP_DRY_RUN_JOB,
    description="Dry run of ftp_logs_job: files to load, waiting, failed, and deleted with"
    " DELETE_AFTER_SYNC=true; nothing written.",
    tags={ACTION_TAG: DRY_RUN_ACTION},
)
def ftp_logs_dry_run() -> None:
    plan_ftp_logs()


DRY_RUN_JOBS = [mysql_sync_dry_run, ftp_logs_dry_run]
