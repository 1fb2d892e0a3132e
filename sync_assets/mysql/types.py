"""MySQL/MariaDB column types → PostgreSQL types, and the SELECT expression for each column.

The hot path does no per-value work in Python: MySQL renders every value directly in the form
PostgreSQL's COPY text format expects (escaped, `\\N` for NULL) and concatenates a whole row
into one string, so Python only joins rows. Values that must be adjusted (zero dates become
NULL, NUL characters are removed from text) additionally emit one NUL byte per adjusted value;
a NUL can appear nowhere else in the output, so counting NUL bytes in a chunk counts the
adjustments, and stripping them is one C-level `bytes.replace`.

All constants are written as `CHAR(n USING utf8mb4)` so the SQL means the same whatever the
server's `sql_mode` (NO_BACKSLASH_ESCAPES) and every piece is utf8mb4, whatever each column's
own character set is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sync_assets.mysql.naming import mq

BACKSLASH = "CHAR(92 USING utf8mb4)"
TAB = "CHAR(9 USING utf8mb4)"
NUL = "CHAR(0 USING utf8mb4)"
NULL_TEXT = f"CONCAT({BACKSLASH}, 'N')"

INTEGER_TYPES = {
    # data_type: (signed target, unsigned target)
    "tinyint": ("smallint", "smallint"),
    "smallint": ("smallint", "integer"),
    "mediumint": ("integer", "integer"),
    "int": ("integer", "bigint"),
    "integer": ("integer", "bigint"),
    "bigint": ("bigint", "numeric(20,0)"),
}
TEXT_TYPES = {"varchar", "tinytext", "text", "mediumtext", "longtext"}
BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
SPATIAL_TYPES = {
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "geomcollection",
}


class UnsupportedTypeError(ValueError):
    """A column type with no exact mapping; the message names table, column and type."""


@dataclass(frozen=True)
class SourceColumn:
    """One column as information_schema describes it."""

    name: str
    data_type: str  # lower-case, e.g. "int"
    column_type: str  # full, e.g. "int(10) unsigned"
    nullable: bool
    precision: int | None = None
    scale: int | None = None
    char_length: int | None = None
    is_json: bool = False
    extra: str = ""

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type

    @property
    def bool_candidate(self) -> bool:
        """`TINYINT(1)`: boolean in PostgreSQL if every value is 0, 1 or NULL."""
        return self.data_type == "tinyint" and self.column_type.startswith("tinyint(1)")

    @property
    def auto_updated(self) -> bool:
        return "on update" in self.extra.lower()


@dataclass(frozen=True)
class ColumnMapping:
    """How one source column is created, read and written."""

    source: SourceColumn
    target: str  # lower-cased PostgreSQL column name
    pg_type: str  # from a fixed vocabulary plus integers: safe to compose into DDL
    select_expr: str  # MySQL expression giving the COPY text (escaped) or NULL
    adjust_expr: str | None = None  # MySQL expression giving NUL when the value was adjusted

    @property
    def copy_type(self) -> str:
        """The type the value has in COPY text (booleans arrive as 0/1 integers)."""
        return "smallint" if self.pg_type == "boolean" else self.pg_type


def copy_escaped(expr: str) -> str:
    """Escape backslash, tab, newline and carriage return for COPY text format, in MySQL."""
    for code, letter in ((92, "\\"), (9, "t"), (10, "n"), (13, "r")):
        replacement = (
            f"CONCAT({BACKSLASH}, {BACKSLASH})"
            if code == 92
            else f"CONCAT({BACKSLASH}, '{letter}')"
        )
        expr = f"REPLACE({expr}, CHAR({code} USING utf8mb4), {replacement})"
    return expr


def _text(col: str) -> tuple[str, str]:
    """Text in any charset → utf8mb4 text; NUL characters removed (and flagged)."""
    as_utf8 = f"CONVERT({col} USING utf8mb4)"
    cleaned = f"REPLACE({as_utf8}, {NUL}, '')"
    return copy_escaped(cleaned), f"IF(LOCATE({NUL}, {as_utf8}) > 0, {NUL}, '')"


def _zero_date(col: str) -> str:
    return f"(YEAR({col}) = 0 OR MONTH({col}) = 0 OR DAYOFMONTH({col}) = 0)"


def _temporal(col: str, suffix: str = "") -> tuple[str, str]:
    """Dates whose year, month or day is zero have no PostgreSQL value: NULL, flagged."""
    rendered = f"CONCAT({col}, '{suffix}')" if suffix else f"CAST({col} AS CHAR)"
    return (
        f"IF({_zero_date(col)}, NULL, {rendered})",
        f"IF({col} IS NOT NULL AND {_zero_date(col)}, {NUL}, '')",
    )


def _set_array(col: str) -> str:
    """`SET` 'a,b' → PostgreSQL array literal {"a","b"} (members quoted, then COPY-escaped)."""
    inner = f"REPLACE(REPLACE(CONVERT({col} USING utf8mb4), {BACKSLASH}, CONCAT({BACKSLASH}, {BACKSLASH})), '\"', CONCAT({BACKSLASH}, '\"'))"  # noqa: E501
    quoted = f"CONCAT('{{\"', REPLACE({inner}, ',', '\",\"'), '\"}}')"
    return copy_escaped(f"IF({col} = '', '{{}}', {quoted})")


def _bit_length(column_type: str) -> int:
    match = re.search(r"\((\d+)\)", column_type)
    return int(match.group(1)) if match else 1


def map_column(
    col: SourceColumn, target: str, as_boolean: bool = False, table: str = "?"
) -> ColumnMapping:
    """The PostgreSQL type and SELECT expression for one column (see docs/mysql.md)."""
    c = mq(col.name)
    dt = col.data_type
    adjust: str | None = None
    if dt in INTEGER_TYPES:
        pg_type = INTEGER_TYPES[dt][1 if col.unsigned else 0]
        if as_boolean and col.bool_candidate:
            pg_type = "boolean"
        expr = c
    elif dt == "decimal":
        pg_type = f"numeric({col.precision},{col.scale})"
        expr = c
    elif dt == "float":
        # MySQL prints FLOAT with 6 digits; as DOUBLE it prints the exact binary value.
        pg_type, expr = "real", f"CAST({c} AS DOUBLE)"
    elif dt == "double":
        pg_type, expr = "double precision", c
    elif dt == "bit":
        n = _bit_length(col.column_type)
        pg_type, expr = f"bit({n})", f"LPAD(BIN({c}), {n}, '0')"
    elif dt == "date":
        pg_type = "date"
        expr, adjust = _temporal(c)
    elif dt == "datetime":
        pg_type = "timestamp"
        expr, adjust = _temporal(c)
    elif dt == "timestamp":
        # The session runs in UTC: the text is the UTC wall clock of the instant.
        pg_type = "timestamptz"
        expr, adjust = _temporal(c, "+00")
    elif dt == "time":
        pg_type, expr = "interval", f"CAST({c} AS CHAR)"
    elif dt == "year":
        pg_type, expr = "smallint", f"CAST({c} AS UNSIGNED)"
    elif col.is_json or dt == "json":
        pg_type, expr = "jsonb", copy_escaped(f"CONVERT({c} USING utf8mb4)")
    elif dt == "char":
        # CHAR(n) keeps its blank-padded semantics as PostgreSQL character(n).
        pg_type = f"character({col.char_length})" if col.char_length else "text"
        expr, adjust = _text(c)
    elif dt in TEXT_TYPES or dt == "enum":
        # ENUM → text without a CHECK (documented): MySQL stores invalid values as ''.
        pg_type = "text"
        expr, adjust = _text(c)
    elif dt == "set":
        pg_type, expr = "text[]", _set_array(c)
    elif dt in BINARY_TYPES:
        pg_type = "bytea"
        expr = f"CONCAT({BACKSLASH}, {BACKSLASH}, 'x', HEX({c}))"
    elif dt in SPATIAL_TYPES:
        pg_type, expr = "text", f"ST_AsText({c})"
    elif dt == "uuid":
        pg_type, expr = "uuid", f"CAST({c} AS CHAR)"
    elif dt in {"inet4", "inet6"}:
        pg_type, expr = "inet", f"CAST({c} AS CHAR)"
    else:
        raise UnsupportedTypeError(
            f"column {col.name!r} of table {table!r} has type {col.column_type!r}, which has no"
            " exact PostgreSQL mapping; exclude the table or ask for the type to be added"
        )
    return ColumnMapping(col, target, pg_type, expr, adjust)


def row_expression(mappings: list[ColumnMapping]) -> str:
    """One MySQL expression giving a whole COPY text line (without the newline)."""
    parts: list[str] = []
    for i, m in enumerate(mappings):
        if i:
            parts.append(TAB)
        parts.append(
            f"IFNULL({m.select_expr}, {NULL_TEXT})" if m.source.nullable else m.select_expr
        )
    parts.extend(m.adjust_expr for m in mappings if m.adjust_expr)
    return f"CONCAT({', '.join(parts)})"


# Widening changes PostgreSQL can apply in place without changing any stored value's meaning.
_INTEGER_RANK = {"smallint": 1, "integer": 2, "bigint": 3, "numeric(20,0)": 4}


def _numeric_parts(pg_type: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"numeric\((\d+),(\d+)\)", pg_type)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _char_length(pg_type: str) -> int | None:
    match = re.fullmatch(r"character\((\d+)\)", pg_type)
    return int(match.group(1)) if match else None


def type_change(old: str, new: str) -> str:
    """'same', 'widen' (ALTER TYPE keeps every value) or 'incompatible'."""
    if old == new:
        return "same"
    if old in _INTEGER_RANK and new in _INTEGER_RANK:
        return "widen" if _INTEGER_RANK[new] > _INTEGER_RANK[old] else "incompatible"
    if old in _INTEGER_RANK and (parts := _numeric_parts(new)):
        digits = {"smallint": 5, "integer": 10, "bigint": 19, "numeric(20,0)": 20}[old]
        return "widen" if parts[0] - parts[1] >= digits else "incompatible"
    old_num, new_num = _numeric_parts(old), _numeric_parts(new)
    if old_num and new_num:
        fits = new_num[1] >= old_num[1] and new_num[0] - new_num[1] >= old_num[0] - old_num[1]
        return "widen" if fits else "incompatible"
    if old == "real" and new == "double precision":
        return "widen"
    old_len, new_len = _char_length(old), _char_length(new)
    if old_len and new_len:
        return "widen" if new_len > old_len else "incompatible"
    if old_len and new == "text":
        return "widen"
    return "incompatible"
