"""The SQL of the incremental write: staged rows (`s`) against the target (`t`), pure builders.

Only the rows that are new or whose values differ are written (NULL-aware `IS DISTINCT FROM`),
so rows read again unchanged leave the table, and its WAL, alone.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from psycopg import sql

from sync_assets.core.pg import ident
from sync_assets.mysql.types import ColumnMapping


def column_list(names: list[str]) -> sql.Composed:
    return sql.SQL(", ").join(ident(n) for n in names)


def staged_value(m: ColumnMapping, alias: str) -> sql.Composable:
    """A staged value as the target column type (booleans arrive as 0/1)."""
    col = sql.SQL("{}.{}").format(sql.Identifier(alias), ident(m.target))
    return sql.SQL("({} <> 0)").format(col) if m.pg_type == "boolean" else col


def key_match(mappings: list[ColumnMapping], pk: Collection[str], alias: str = "s") -> sql.Composed:
    """The target row t has the staged row's primary key (`alias`: the staged table)."""
    keys = set(pk)
    return sql.SQL(" AND ").join(
        sql.SQL("t.{} = {}").format(ident(m.target), staged_value(m, alias))
        for m in mappings
        if m.target in keys
    )


def incoming(others: list[ColumnMapping], source: str) -> list[sql.Composable]:
    """The new values of the non-key columns: from the stage `s` (booleans staged as 0/1 are
    converted), or `EXCLUDED` (already converted by the INSERT's select list)."""
    if source == "EXCLUDED":
        return [sql.SQL("EXCLUDED.{}").format(ident(m.target)) for m in others]
    return [staged_value(m, source) for m in others]


def set_clause(others: list[ColumnMapping], source: str) -> sql.Composable:
    """`col = <new value>, ...` for the non-key columns."""
    return sql.SQL(", ").join(
        sql.SQL("{} = {}").format(ident(m.target), v)
        for m, v in zip(others, incoming(others, source), strict=True)
    )


def differs(others: list[ColumnMapping], source: str) -> sql.Composable:
    """The target row t's non-key values differ from the new ones (NULL-aware)."""
    return sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
        sql.SQL(", ").join(sql.SQL("t.{}").format(ident(m.target)) for m in others),
        sql.SQL(", ").join(incoming(others, source)),
    )


def insert_from_stage(
    target: sql.Identifier, mappings: list[ColumnMapping], stage: sql.Identifier
) -> sql.Composed:
    """`INSERT INTO <target> AS t (<columns>) SELECT <staged values> FROM <stage> AS s`."""
    return sql.SQL("INSERT INTO {} AS t ({}) SELECT {} FROM {} AS s").format(
        target,
        column_list([m.target for m in mappings]),
        sql.SQL(", ").join(staged_value(m, "s") for m in mappings),
        stage,
    )


@dataclass(frozen=True)
class Upsert:
    """Staged rows `stage` to be written into `target` on the primary key `pk`."""

    target: sql.Identifier
    stage: sql.Identifier
    mappings: list[ColumnMapping]
    pk: list[str]

    @property
    def others(self) -> list[ColumnMapping]:
        """The non-key columns."""
        return [m for m in self.mappings if m.target not in set(self.pk)]

    def update_changed(self) -> sql.Composed:
        """UPDATE the target rows whose staged values differ, by key lookups."""
        others = self.others
        return sql.SQL("UPDATE {} AS t SET {} FROM {} AS s WHERE {} AND {}").format(
            self.target,
            set_clause(others, "s"),
            self.stage,
            key_match(self.mappings, self.pk),
            differs(others, "s"),
        )

    def insert_new(self) -> sql.Composed:
        """INSERT the staged rows whose key the target lacks. Should another writer insert one
        of those keys meanwhile, its row is overwritten (ON CONFLICT) rather than failing."""
        return sql.SQL(
            "{} WHERE NOT EXISTS (SELECT FROM {} AS t WHERE {}) ON CONFLICT ({}) DO UPDATE SET {}"
        ).format(
            insert_from_stage(self.target, self.mappings, self.stage),
            self.target,
            key_match(self.mappings, self.pk),
            column_list(self.pk),
            set_clause(self.others, "EXCLUDED"),
        )

    def on_conflict(self) -> sql.Composed:
        """One INSERT ... ON CONFLICT pass; its one row: (inserted, updated) counts."""
        others = self.others
        if others:
            action = sql.SQL("DO UPDATE SET {} WHERE {}").format(
                set_clause(others, "EXCLUDED"), differs(others, "EXCLUDED")
            )
        else:
            action = sql.SQL("DO NOTHING")
        return sql.SQL(
            "WITH up AS ({} ON CONFLICT ({}) {} RETURNING (xmax = 0) AS inserted)"
            " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)"
            " FROM up"
        ).format(
            insert_from_stage(self.target, self.mappings, self.stage), column_list(self.pk), action
        )


def missing_from(keys: sql.Identifier, key_mappings: list[ColumnMapping]) -> sql.Composed:
    """The target row t's key is not among the staged `keys` (alias k)."""
    return sql.SQL("NOT EXISTS (SELECT 1 FROM {} AS k WHERE {})").format(
        keys, key_match(key_mappings, [m.target for m in key_mappings], "k")
    )


def non_boolean_values(stage: sql.Identifier, columns: list[str]) -> sql.Composed:
    """One row: for each staged 0/1 column, whether it holds another value (one scan)."""
    return sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(
            sql.SQL("coalesce(bool_or({} NOT IN (0, 1)), false)").format(ident(c)) for c in columns
        ),
        stage,
    )
