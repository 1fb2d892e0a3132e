"""Value-exact comparison of a MariaDB table and its PostgreSQL copy, computed by the servers.

Per column, each server renders every value in one canonical text form (integers and
booleans as digits, decimals with their scale, doubles in their shortest round-trip form,
date-times as `YYYY-MM-DD HH:MM:SS.ffffff` in UTC, NULL as a tag no value can take), hashes
`key|value` with MD5 and sums the first 60 bits of the hashes as an exact integer. Equal sums
for every column and equal row counts mean equal data with overwhelming probability: a single
changed, swapped, nulled or shifted value changes its column's sum. No row leaves a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg
import pymysql
from psycopg import sql

# Sent without parameters, so pymysql leaves the % signs alone.
MYSQL_DATETIME = "DATE_FORMAT({c}, '%Y-%m-%d %H:%i:%s.%f')"
PG_DATETIME = "to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')"


@dataclass
class Fingerprint:
    rows: int
    columns: dict[str, int] = field(default_factory=dict)


@dataclass
class Comparison:
    source: Fingerprint
    target: Fingerprint
    missing_columns: list[str]
    differing_columns: list[str]

    @property
    def ok(self) -> bool:
        return (
            self.source.rows == self.target.rows
            and not self.missing_columns
            and not self.differing_columns
        )

    def describe(self) -> str:
        if self.ok:
            return f"{self.source.rows} rows, {len(self.source.columns)} columns value-exact"
        parts = [f"rows source={self.source.rows} target={self.target.rows}"]
        if self.missing_columns:
            parts.append(f"missing in target: {', '.join(self.missing_columns)}")
        if self.differing_columns:
            parts.append(f"values differ in: {', '.join(self.differing_columns)}")
        return "; ".join(parts)


def _mysql_canonical(column: str, data_type: str) -> str:
    c = f"`{column}`"
    if data_type in {"datetime", "timestamp"}:
        return MYSQL_DATETIME.format(c=c)
    if data_type in {"varchar", "char", "text", "mediumtext", "longtext", "tinytext", "enum"}:
        return c
    return f"CAST({c} AS CHAR)"


def _pg_canonical(column: str, data_type: str) -> sql.Composable:
    c = sql.Identifier(column)
    if data_type == "boolean":
        return sql.SQL("CASE WHEN {} THEN '1' ELSE '0' END").format(c)
    if data_type.startswith("timestamp"):
        return sql.SQL(PG_DATETIME.replace("{c}", "{}")).format(c)
    return sql.SQL("{}::text").format(c)


def mysql_fingerprint(conn: pymysql.Connection, database: str, table: str, key: str) -> Fingerprint:
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        columns = [(str(name), str(dtype).lower()) for name, dtype in cur.fetchall()]
        sums = [
            f"SUM(CAST(CONV(LEFT(MD5(CONCAT(`{key}`, '|',"
            f" COALESCE(CONCAT('v', {_mysql_canonical(name, dtype)}), 'n'))), 15), 16, 10)"
            " AS UNSIGNED))"
            for name, dtype in columns
        ]
        cur.execute(f"SELECT COUNT(*), {', '.join(sums)} FROM `{database}`.`{table}`")
        row = cur.fetchone()
    assert row is not None
    return Fingerprint(
        rows=int(row[0]),
        columns={name.lower(): int(v or 0) for (name, _), v in zip(columns, row[1:], strict=True)},
    )


def pg_fingerprint(conn: psycopg.Connection, schema: str, table: str, key: str) -> Fingerprint:
    conn.execute("SET TimeZone = 'UTC'")
    columns = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()
    if not columns:
        return Fingerprint(rows=-1)
    sums = [
        sql.SQL(
            "sum(('x' || left(md5({k}::text || '|' || coalesce('v' || {e}, 'n')), 15))"
            "::bit(60)::bigint)"
        ).format(k=sql.Identifier(key), e=_pg_canonical(name, dtype))
        for name, dtype in columns
    ]
    query = sql.SQL("SELECT count(*), {} FROM {}").format(
        sql.SQL(", ").join(sums), sql.Identifier(schema, table)
    )
    row = conn.execute(query).fetchone()
    assert row is not None
    return Fingerprint(
        rows=int(row[0]),
        columns={name: int(v or 0) for (name, _), v in zip(columns, row[1:], strict=True)},
    )


def compare(source: Fingerprint, target: Fingerprint) -> Comparison:
    """Every source column must exist in the target with the same sum; extra target columns
    (bookkeeping a sync may add) are ignored."""
    missing = [c for c in source.columns if c not in target.columns]
    differing = [
        c for c, v in source.columns.items() if c in target.columns and target.columns[c] != v
    ]
    return Comparison(source, target, missing, differing)


@dataclass
class CorpusCheck:
    expected: Mapping[str, int]
    actual: Mapping[str, int]

    @property
    def ok(self) -> bool:
        return dict(self.expected) == dict(self.actual)

    def describe(self) -> str:
        if self.ok:
            return f"{self.expected.get('rows')} lines, aggregates of every column equal"
        diffs = [
            f"{k}: expected {self.expected[k]} got {self.actual.get(k)}"
            for k in self.expected
            if self.expected[k] != self.actual.get(k)
        ]
        return "; ".join(diffs)
