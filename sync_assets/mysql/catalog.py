"""What MySQL holds: base tables, their columns and keys.

MySQL metadata comes from information_schema with bound parameters (names are data there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pymysql

_COLUMNS_SQL = """
SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, IS_NULLABLE = 'YES',
       NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_MAXIMUM_LENGTH, EXTRA, CHARACTER_SET_NAME
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s
ORDER BY ORDINAL_POSITION
"""

# MariaDB stores JSON as LONGTEXT with a json_valid() check; MySQL 8 reports DATA_TYPE 'json'.
_JSON_CHECKS_SQL = """
SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s
"""

_KEYS_SQL = """
SELECT INDEX_NAME, COLUMN_NAME, SUB_PART
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0
ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX
"""

_JSON_VALID = re.compile(r"json_valid\(`((?:[^`]|``)+)`\)", re.IGNORECASE)


@dataclass(frozen=True)
class SourceColumn:
    """One column as information_schema describes it."""

    name: str
    data_type: str  # lower-case, e.g. "int"
    column_type: str  # full, as MySQL spells it (ENUM values keep their case)
    nullable: bool
    precision: int | None = None
    scale: int | None = None
    char_length: int | None = None
    is_json: bool = False
    extra: str = ""
    charset: str | None = None

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()

    @property
    def bool_candidate(self) -> bool:
        """`TINYINT(1)`: boolean in PostgreSQL if every value is 0, 1 or NULL."""
        return self.data_type == "tinyint" and self.column_type.lower().startswith("tinyint(1)")

    @property
    def auto_updated(self) -> bool:
        return "on update" in self.extra.lower()


class TableNotFoundError(LookupError):
    """The table is not a base table of the source database."""


@dataclass
class SourceTable:
    """A MySQL base table: its columns in order, its primary key and unique keys."""

    name: str
    columns: list[SourceColumn]
    primary_key: list[str] = field(default_factory=list)
    unique_keys: list[list[str]] = field(default_factory=list)
    skipped_keys: list[str] = field(default_factory=list)  # prefix indexes PG cannot express
    row_estimate: int | None = None  # information_schema's TABLE_ROWS (InnoDB: approximate)


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def list_base_tables(conn: pymysql.Connection, database: str) -> list[str]:
    """Every base table of `database` (views are not copied as tables)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
            (database,),
        )
        return sorted(_text(row[0]) for row in cur.fetchall())  # code-point order, stable


def _json_columns(cur: pymysql.cursors.Cursor, database: str, table: str) -> set[str]:
    try:
        cur.execute(_JSON_CHECKS_SQL, (database, table))
    except pymysql.MySQLError:
        return set()  # servers without CHECK_CONSTRAINTS (old MySQL) have native JSON
    names: set[str] = set()
    for (clause,) in cur.fetchall():
        names.update(m.replace("``", "`") for m in _JSON_VALID.findall(_text(clause)))
    return names


def read_source_table(conn: pymysql.Connection, database: str, table: str) -> SourceTable:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_TYPE, TABLE_ROWS FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (database, table),
        )
        row = cur.fetchone()
        if not row or _text(row[0]) != "BASE TABLE":
            raise TableNotFoundError(
                f"{table!r} is not a base table of MySQL database {database!r}"
            )
        row_estimate = int(row[1]) if row[1] is not None else None
        json_columns = _json_columns(cur, database, table)
        cur.execute(_COLUMNS_SQL, (database, table))
        columns = [
            SourceColumn(
                name=_text(name),
                data_type=_text(data_type),
                column_type=_text(column_type),
                nullable=bool(nullable),
                precision=precision,
                scale=scale,
                char_length=char_length,
                is_json=_text(name) in json_columns,
                extra=_text(extra or ""),
                charset=_text(charset) if charset else None,
            )
            for (
                name,
                data_type,
                column_type,
                nullable,
                precision,
                scale,
                char_length,
                extra,
                charset,
            ) in cur.fetchall()
        ]
        cur.execute(_KEYS_SQL, (database, table))
        keys: dict[str, list[str]] = {}
        prefixed: set[str] = set()
        for index_name, column_name, sub_part in cur.fetchall():
            keys.setdefault(_text(index_name), []).append(_text(column_name))
            if sub_part is not None:
                prefixed.add(_text(index_name))
    result = SourceTable(table, columns, row_estimate=row_estimate)
    for index_name, cols in keys.items():
        if index_name in prefixed:
            result.skipped_keys.append(index_name)
        elif index_name == "PRIMARY":
            result.primary_key = cols
        else:
            result.unique_keys.append(cols)
    return result
