"""Names the two sides and the orchestration share: asset groups and advisory lock names."""

from __future__ import annotations

MYSQL_GROUP = "legacy_mysql"  # the PostgreSQL copies; `mysql_sync_job` selects this group
MYSQL_SOURCE_GROUP = "legacy_mysql_source"  # the MySQL tables (external, never written)
FTP_GROUP = "machine_logs"  # the log tables and their FTP sources; `ftp_logs_job` selects it


def mysql_table_lock(schema: str, table: str) -> str:
    """The advisory lock keeping two syncs of one target table apart (docs/mysql.md)."""
    return f"mysql:{schema}.{table}"


def ftp_source_lock(source: str) -> str:
    """The advisory lock keeping two runs (or a run and `reingest`) of one log source apart."""
    return f"sync_assets.ftp:{source}"
