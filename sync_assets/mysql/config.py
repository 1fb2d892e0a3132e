"""Which tables are synced and how: `MYSQL_TABLES`, the stored discovery, the YAML options.

Reading environment variables and local files is the only I/O done at definitions load.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sync_assets import project_config
from sync_assets.core.settings import ConfigError

TABLES_ENV = "MYSQL_TABLES"
TARGET_SCHEMA_ENV = "MYSQL_TARGET_SCHEMA"
DEFAULT_TARGET_SCHEMA = "legacy"
STATE_FILE_NAME = "mysql_tables.json"
MODES = ("auto", "incremental", "full_refresh")
DELETE_MODES = ("auto", "always", "off")


@dataclass(frozen=True)
class TableOptions:
    """Per-table options (YAML `mysql.tables.<name>`, over `mysql.defaults`)."""

    name: str  # the MySQL table name, exactly as MySQL spells it
    mode: str = "auto"  # auto: incremental when a primary key and a cursor column exist
    cursor_column: str | None = None  # default: the column with ON UPDATE CURRENT_TIMESTAMP
    overlap_seconds: int = 300  # re-read window below the watermark (late commits)
    deletes: str = "auto"  # auto: compare keys when counts differ; always; off
    max_delete_fraction: float = 0.5  # guard: refuse to delete more than this share
    batch_rows: int = 5000  # rows per COPY chunk
    lock_wait_seconds: float = 30.0
    fast_reader: bool = True  # parse row packets in bulk (False: pymysql's fetchmany)
    verify_values: bool = False  # re-read the snapshot and compare every value (asset check)

    def validate(self) -> TableOptions:
        where = f"mysql.tables.{self.name}"
        if self.mode not in MODES:
            raise ConfigError(f"{where}.mode must be one of {MODES}, got {self.mode!r}")
        if self.deletes not in DELETE_MODES:
            raise ConfigError(f"{where}.deletes must be one of {DELETE_MODES}")
        if not 0 < self.max_delete_fraction <= 1:
            raise ConfigError(f"{where}.max_delete_fraction must be in (0, 1]")
        if self.overlap_seconds < 0 or self.batch_rows < 1:
            raise ConfigError(f"{where}: overlap_seconds >= 0 and batch_rows >= 1 required")
        return self


_OPTION_NAMES = {f.name for f in fields(TableOptions)} - {"name"}


def _options_from(mapping: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where} must be a mapping of options")
    unknown = set(mapping) - _OPTION_NAMES
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {sorted(unknown)}")
    return dict(mapping)


def table_options(name: str, section: dict[str, Any] | None = None) -> TableOptions:
    """Options for MySQL table `name`: built-in defaults ← `defaults` ← `tables.<name>`."""
    section = project_config.section("mysql") if section is None else section
    values = _options_from(section.get("defaults") or {}, "mysql.defaults")
    tables = _tables_section(section)
    key = next((k for k in tables if k.lower() == name.lower()), name)
    values.update(_options_from(tables.get(key) or {}, f"mysql.tables.{key}"))
    try:
        return TableOptions(name=name, **values).validate()
    except TypeError as exc:
        raise ConfigError(f"mysql.tables.{name}: {exc}") from None


def _tables_section(section: dict[str, Any]) -> dict[str, Any]:
    tables = section.get("tables") or {}
    if not isinstance(tables, dict):
        raise ConfigError("mysql.tables must be a mapping of table name → options")
    return tables


def check_table_keys(section: dict[str, Any], tables: list[str]) -> None:
    """Each `mysql.tables` key names one synced table, compared without regard to case
    (MySQL on Windows or macOS reports `Orders` for `orders`); every mismatch is listed."""
    known = {t.lower(): t for t in tables}
    errors: list[str] = []
    seen: dict[str, str] = {}
    for key in map(str, _tables_section(section)):
        other = seen.setdefault(key.lower(), key)
        if other != key:
            errors.append(f"mysql.tables.{key}: same table as mysql.tables.{other}")
        elif key.lower() not in known:
            errors.append(
                f"mysql.tables.{key}: no such table among the synced ones"
                f" ({', '.join(sorted(tables)) or 'none'}; see MYSQL_TABLES or refresh-mysql)"
            )
    if errors:
        raise ConfigError("; ".join(errors))


def target_schema() -> str:
    return os.environ.get(TARGET_SCHEMA_ENV) or DEFAULT_TARGET_SCHEMA


def state_file() -> Path:
    return project_config.state_dir() / STATE_FILE_NAME


def write_table_list(tables: list[str], database: str) -> Path:
    """Store the discovered tables atomically (write to a temp file, then rename)."""
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"database": database, "tables": tables}, indent=2), "utf-8")
    tmp.replace(path)
    return path


def stored_table_list() -> list[str]:
    path = state_file()
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text("utf-8"))
        tables = data["tables"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable table list ({exc}); rerun refresh-mysql") from None
    return [str(t) for t in tables]


def configured_tables() -> list[str]:
    """`MYSQL_TABLES` (comma-separated) if set, else the list stored by refresh-mysql."""
    raw = os.environ.get(TABLES_ENV, "")
    if raw.strip():
        return [t.strip() for t in raw.split(",") if t.strip()]
    return stored_table_list()
