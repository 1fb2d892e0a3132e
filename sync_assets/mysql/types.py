"""MySQL/MariaDB column types → PostgreSQL types, and the SELECT expression for each column.

The hot path does almost no per-value work in Python: MySQL renders every value in the text
form PostgreSQL's COPY expects and concatenates a whole row into one binary string, so Python
only joins rows and fixes up whole chunks with C-level `bytes` operations.

The trick is a few marker bytes that can never occur in the data. Every text value is sent as
UTF-8 (columns in other character sets are converted first) and every other value is ASCII
(numbers, dates, hex for binary data, WKT), and 0xFC-0xFF never occur in UTF-8. So MySQL
separates fields with 0xFF and writes NULL as 0xFD 'N'; a zero date, which PostgreSQL cannot
hold, becomes 0xFC 'N' (a NULL that is counted as adjusted). Python joins the rows with 0xFE,
escapes backslash, tab, newline and carriage return in the whole chunk, counts and strips NUL
characters (PostgreSQL text cannot hold them), then one `bytes.translate` turns 0xFF into tab,
0xFE into newline and 0xFD/0xFC into a backslash. See `stream.finish_chunk`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sync_assets.mysql.naming import mq

FIELD_SEPARATOR = "x'FF'"
NULL_MARK = "x'FD4E'"  # becomes \N
ZERO_DATE_MARK = "x'FC4E'"  # becomes \N, counted as an adjusted value
UTF8_CHARSETS = {"utf8mb4", "utf8mb3", "utf8", "ascii"}

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


@dataclass(frozen=True)
class ColumnMapping:
    """How one source column is created, read and written."""

    source: SourceColumn
    target: str  # lower-cased PostgreSQL column name
    pg_type: str  # from a fixed vocabulary plus integers: safe to compose into DDL
    select_expr: str  # MySQL expression giving the value's COPY text (unescaped) or NULL

    @property
    def copy_type(self) -> str:
        """The type the value has in COPY text (booleans arrive as 0/1 integers)."""
        return "smallint" if self.pg_type == "boolean" else self.pg_type


def _text(col: str, charset: str | None) -> str:
    """Text as UTF-8 bytes, whatever the column's character set."""
    if charset and charset.lower() not in UTF8_CHARSETS:
        return f"CAST(CONVERT({col} USING utf8mb4) AS BINARY)"
    return f"CAST({col} AS BINARY)"


def _temporal(col: str, suffix: str = "") -> str:
    """Dates with no PostgreSQL value become a counted NULL: zero year, month or day, and days
    past the month's end that ALLOW_INVALID_DATES lets MySQL store (2020-02-30)."""
    rendered = f"CONCAT({col}, '{suffix}')" if suffix else col
    zero = (
        f"YEAR({col}) = 0 OR MONTH({col}) = 0 OR DAYOFMONTH({col}) = 0"
        f" OR DAYOFMONTH({col}) > DAYOFMONTH(LAST_DAY({col}))"
    )
    return f"IF({zero}, {ZERO_DATE_MARK}, {rendered})"


def _set_array(col: str, charset: str | None) -> str:
    """`SET` 'a,b' → PostgreSQL array literal {"a","b"} (backslash and quote escaped)."""
    escaped = f"REPLACE(REPLACE({_text(col, charset)}, x'5C', x'5C5C'), x'22', x'5C22')"
    quoted = f"CONCAT('{{\"', REPLACE({escaped}, ',', x'222C22'), '\"}}')"
    return f"IF({col} = '', '{{}}', {quoted})"


_ENUM_VALUE = re.compile(r"'((?:[^'\\]|''|\\.)*)'")


def enum_values(column_type: str) -> list[str]:
    """The allowed values of `enum('a','it''s')` as information_schema spells the type."""
    return [
        v.replace("''", "'").replace("\\\\", "\\")
        for v in _ENUM_VALUE.findall(column_type.partition("(")[2])
    ]


def _bit_length(column_type: str) -> int:
    match = re.search(r"\((\d+)\)", column_type)
    return int(match.group(1)) if match else 1


def map_column(
    col: SourceColumn, target: str, as_boolean: bool = False, table: str = "?"
) -> ColumnMapping:
    """The PostgreSQL type and SELECT expression for one column (see docs/mysql.md)."""
    c = mq(col.name)
    dt = col.data_type
    if dt in INTEGER_TYPES:
        pg_type = INTEGER_TYPES[dt][1 if col.unsigned else 0]
        if as_boolean and col.bool_candidate:
            pg_type = "boolean"
        expr = c
    elif dt == "decimal":
        pg_type, expr = f"numeric({col.precision},{col.scale})", c
    elif dt == "float":
        # MySQL prints FLOAT with 6 digits; as DOUBLE it prints the exact binary value.
        pg_type, expr = "real", f"CAST({c} AS DOUBLE)"
    elif dt == "double":
        pg_type, expr = "double precision", c
    elif dt == "bit":
        n = _bit_length(col.column_type)
        pg_type, expr = f"bit({n})", f"LPAD(BIN({c}), {n}, '0')"
    elif dt in {"date", "datetime"}:
        pg_type, expr = ("date" if dt == "date" else "timestamp"), _temporal(c)
    elif dt == "timestamp":
        # The session runs in UTC: the text is the UTC wall clock of the instant.
        pg_type, expr = "timestamptz", _temporal(c, "+00")
    elif dt == "time":
        pg_type, expr = "interval", c
    elif dt == "year":
        pg_type, expr = "smallint", f"CAST({c} AS UNSIGNED)"
    elif col.is_json or dt == "json":
        pg_type, expr = "jsonb", _text(c, col.charset)
    elif dt == "char":
        # CHAR(n) keeps its blank-padded semantics as PostgreSQL character(n).
        pg_type = f"character({col.char_length})" if col.char_length else "text"
        expr = _text(c, col.charset)
    elif dt in TEXT_TYPES or dt == "enum":
        # ENUM → text; the allowed values become a CHECK (see sync.sync_enum_checks).
        pg_type, expr = "text", _text(c, col.charset)
    elif dt == "set":
        pg_type, expr = "text[]", _set_array(c, col.charset)
    elif dt in BINARY_TYPES:
        pg_type, expr = "bytea", f"CONCAT(x'5C78', HEX({c}))"  # \x + hex digits
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
    return ColumnMapping(col, target, pg_type, expr)


def row_expression(mappings: list[ColumnMapping]) -> str:
    """One MySQL expression giving a whole row: fields separated by 0xFF, NULL as 0xFD 'N'."""
    fields = [f"IFNULL({m.select_expr}, {NULL_MARK})" for m in mappings]
    return f"CONCAT({f', {FIELD_SEPARATOR}, '.join(fields)})"


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
