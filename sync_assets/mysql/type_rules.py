"""MySQL/MariaDB column types → PostgreSQL types, as one table of rules (`TYPE_RULES`).

In the spirit of pgloader's casting rules: one row per source type says how a column is
matched, which PostgreSQL type it becomes, the SELECT expression that renders its value as
COPY text, the type the value has in COPY, its widening rank and whether it can be an
incremental cursor. The first matching row wins. Changing how a type is copied changes one
row; the README's "Type mapping" table is rendered from the rows (`render_type_table`), and
`sync_assets_tests/mysql/test_type_rules.py` has one case per row.

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
from collections.abc import Callable
from dataclasses import dataclass

from sync_assets.mysql.catalog import SourceColumn

FIELD_SEPARATOR = "x'FF'"
NULL_MARK = "x'FD4E'"  # becomes \N
ZERO_DATE_MARK = "x'FC4E'"  # becomes \N, counted as an adjusted value
UTF8_CHARSETS = {"utf8mb4", "utf8mb3", "utf8", "ascii"}


class UnsupportedTypeError(ValueError):
    """A column type with no exact mapping; the message names table, column and type."""


# --- SELECT expressions (each takes the quoted column and the column's facts) -----------------


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


def _bit_length(column_type: str) -> int:
    match = re.search(r"\((\d+)\)", column_type)
    return int(match.group(1)) if match else 1


Select = Callable[[str, SourceColumn], str]


def _as_is(c: str, col: SourceColumn) -> str:
    return c


def _as_text(c: str, col: SourceColumn) -> str:
    return _text(c, col.charset)


def _as_char(c: str, col: SourceColumn) -> str:
    return f"CAST({c} AS CHAR)"


# --- the rules --------------------------------------------------------------------------------


def _types(*data_types: str, unsigned: bool | None = None) -> Callable[[SourceColumn], bool]:
    """Match on information_schema's DATA_TYPE (and, when given, on UNSIGNED)."""
    wanted = frozenset(data_types)

    def matches(col: SourceColumn) -> bool:
        return col.data_type in wanted and (unsigned is None or col.unsigned == unsigned)

    return matches


def _any(*tests: Callable[[SourceColumn], bool]) -> Callable[[SourceColumn], bool]:
    return lambda col: any(test(col) for test in tests)


@dataclass(frozen=True)
class TypeRule:
    """How one source type is copied. `mysql`, `postgres` and `notes` are the README's row."""

    mysql: str
    postgres: str
    notes: str
    matches: Callable[[SourceColumn], bool]
    pg_type: str | Callable[[SourceColumn], str]  # from a fixed vocabulary plus integers
    select: Select  # MySQL expression giving the value's COPY text (unescaped) or NULL
    copy_type: str | None = None  # the value's type in COPY text, when not `pg_type`
    # Widening in place: a type widens to one of the same family with a higher rank (integers:
    # the decimal digits they hold, also compared with numeric(p,s); floats: mantissa bits).
    family: str | None = None
    rank: int | None = None
    cursor: str | None = None  # "temporal" or "integer": usable as the incremental cursor
    boolean: bool = False  # matched only when the plan decided the column is boolean

    def target_type(self, col: SourceColumn) -> str:
        return self.pg_type if isinstance(self.pg_type, str) else self.pg_type(col)


_TEXT_TYPES = ("varchar", "tinytext", "text", "mediumtext", "longtext")
_BINARY_TYPES = ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob")
_SPATIAL_TYPES = ("geometry", "point", "linestring", "polygon", "geometrycollection")
_SPATIAL_TYPES += ("multipoint", "multilinestring", "multipolygon", "geomcollection")

TYPE_RULES: tuple[TypeRule, ...] = (
    TypeRule(
        "`TINYINT(1)`",
        "`boolean` if every value is 0/1/NULL at the full load, else `smallint`",
        "decided at each full refresh; a later `2` turns it into `smallint` (full refresh);"
        " no scan before the load: `COPY` into `boolean` refuses any other value, and the run"
        " then starts over with the column scanned",
        matches=lambda col: col.bool_candidate,
        pg_type="boolean",
        select=_as_is,
        copy_type="smallint",  # booleans arrive as 0/1 integers
        cursor="integer",
        boolean=True,
    ),
    TypeRule(
        "`TINYINT` (signed/unsigned), `SMALLINT`",
        "`smallint`",
        "",
        matches=_any(_types("tinyint"), _types("smallint", unsigned=False)),
        pg_type="smallint",
        select=_as_is,
        family="integer",
        rank=5,
        cursor="integer",
    ),
    TypeRule(
        "`SMALLINT UNSIGNED`, `MEDIUMINT`, `INT`",
        "`integer`",
        "",
        matches=_any(
            _types("smallint", unsigned=True),
            _types("mediumint"),
            _types("int", "integer", unsigned=False),
        ),
        pg_type="integer",
        select=_as_is,
        family="integer",
        rank=10,
        cursor="integer",
    ),
    TypeRule(
        "`INT UNSIGNED`, `BIGINT`",
        "`bigint`",
        "",
        matches=_any(_types("int", "integer", unsigned=True), _types("bigint", unsigned=False)),
        pg_type="bigint",
        select=_as_is,
        family="integer",
        rank=19,
        cursor="integer",
    ),
    TypeRule(
        "`BIGINT UNSIGNED`",
        "`numeric(20,0)`",
        "up to 18446744073709551615",
        matches=_types("bigint", unsigned=True),
        pg_type="numeric(20,0)",
        select=_as_is,
        family="integer",
        rank=20,
        cursor="integer",
    ),
    TypeRule(
        "`DECIMAL(p,s)`",
        "`numeric(p,s)`",
        "exact, up to `DECIMAL(65,30)`",
        matches=_types("decimal"),
        pg_type=lambda col: f"numeric({col.precision},{col.scale})",
        select=_as_is,
    ),
    TypeRule(
        "`FLOAT`",
        "`real`",
        "read as `CAST(… AS DOUBLE)`: the exact float32, not MySQL's 6-digit display",
        matches=_types("float"),
        pg_type="real",
        select=lambda c, col: f"CAST({c} AS DOUBLE)",
        family="float",
        rank=24,
    ),
    TypeRule(
        "`DOUBLE`",
        "`double precision`",
        "shortest round-trip text",
        matches=_types("double"),
        pg_type="double precision",
        select=_as_is,
        family="float",
        rank=53,
    ),
    TypeRule(
        "`BIT(n)`",
        "`bit(n)`",
        "leading zeros kept",
        matches=_types("bit"),
        pg_type=lambda col: f"bit({_bit_length(col.column_type)})",
        select=lambda c, col: f"LPAD(BIN({c}), {_bit_length(col.column_type)}, '0')",
    ),
    TypeRule(
        "`DATE`",
        "`date`",
        "zero or partial-zero dates (`0000-00-00`, `2020-00-15`) and days past the month's end"
        " (`2020-02-30`, stored under `ALLOW_INVALID_DATES`) → NULL, counted",
        matches=_types("date"),
        pg_type="date",
        select=lambda c, col: _temporal(c),
        cursor="temporal",
    ),
    TypeRule(
        "`DATETIME(fsp)`",
        "`timestamp`",
        "the same wall clock (no shift); zero dates → NULL, counted",
        matches=_types("datetime"),
        pg_type="timestamp",
        select=lambda c, col: _temporal(c),
        cursor="temporal",
    ),
    TypeRule(
        "`TIMESTAMP(fsp)`",
        "`timestamptz`",
        "the same instant (sent as UTC with `+00`); zero → NULL, counted",
        matches=_types("timestamp"),
        pg_type="timestamptz",
        select=lambda c, col: _temporal(c, "+00"),  # the session runs in UTC
        cursor="temporal",
    ),
    TypeRule(
        "`TIME(fsp)`",
        "`interval`",
        "negative values and values above 24 h kept",
        matches=_types("time"),
        pg_type="interval",
        select=_as_is,
    ),
    TypeRule(
        "`YEAR`",
        "`smallint`",
        "",
        matches=_types("year"),
        pg_type="smallint",
        select=lambda c, col: f"CAST({c} AS UNSIGNED)",
    ),
    TypeRule(
        "`JSON` (MySQL 8; MariaDB `LONGTEXT` + `json_valid`)",
        "`jsonb`",
        "normalised by PostgreSQL (key order, spacing); `\\u0000` is not accepted by `jsonb`",
        matches=lambda col: col.is_json or col.data_type == "json",
        pg_type="jsonb",
        select=_as_text,
    ),
    TypeRule(
        "`CHAR(n)`",
        "`character(n)`",
        "blank-padded semantics; values compare equal to MySQL's",
        matches=_types("char"),
        pg_type=lambda col: f"character({col.char_length})" if col.char_length else "text",
        select=_as_text,
    ),
    TypeRule(
        "`VARCHAR`, `*TEXT` (any charset)",
        "`text`",
        "converted to UTF-8; NUL characters removed, counted",
        matches=_types(*_TEXT_TYPES),
        pg_type="text",
        select=_as_text,
    ),
    TypeRule(
        "`ENUM`",
        "`text` + `CHECK (c IN (values…, ''))`",
        "`''` is allowed: MySQL stores it for invalid input; a changed ENUM replaces the CHECK",
        matches=_types("enum"),
        pg_type="text",  # the allowed values become a CHECK (see job.sync_enum_checks)
        select=_as_text,
    ),
    TypeRule(
        "`SET`",
        "`text[]`",
        "`'a,b'` → `{a,b}`, `''` → `{}`",
        matches=_types("set"),
        pg_type="text[]",
        select=lambda c, col: _set_array(c, col.charset),
    ),
    TypeRule(
        "`BINARY`, `VARBINARY`, `*BLOB`",
        "`bytea`",
        "byte for byte (sent as hex)",
        matches=_types(*_BINARY_TYPES),
        pg_type="bytea",
        select=lambda c, col: f"CONCAT(x'5C78', HEX({c}))",  # \x + hex digits
    ),
    TypeRule(
        "spatial types",
        "`text` (WKT)",
        "`ST_AsText`; SRID not kept; PostGIS not used",
        matches=_types(*_SPATIAL_TYPES),
        pg_type="text",
        select=lambda c, col: f"ST_AsText({c})",
    ),
    TypeRule(
        "MariaDB `UUID`",
        "`uuid`",
        "",
        matches=_types("uuid"),
        pg_type="uuid",
        select=_as_char,
    ),
    TypeRule(
        "MariaDB `INET4`, `INET6`",
        "`inet`",
        "",
        matches=_types("inet4", "inet6"),
        pg_type="inet",
        select=_as_char,
    ),
)

# `format_type` spellings of PostgreSQL's catalog → the vocabulary of `TypeRule.pg_type`.
PG_SPELLINGS = {
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "character varying": "text",
}


def normalise_pg_type(type_name: str) -> str:
    """An existing column's type as `format_type` spells it, in the rules' vocabulary."""
    return PG_SPELLINGS.get(type_name, type_name)


def rule_for(col: SourceColumn, as_boolean: bool = False, table: str = "?") -> TypeRule:
    """The first rule matching `col` (boolean rules only when `as_boolean`)."""
    for rule in TYPE_RULES:
        if (as_boolean or not rule.boolean) and rule.matches(col):
            return rule
    raise UnsupportedTypeError(
        f"column {col.name!r} of table {table!r} has type {col.column_type!r}, which has no"
        " exact PostgreSQL mapping; exclude the table or ask for the type to be added"
    )


def cursor_kind(col: SourceColumn) -> str | None:
    """'temporal' or 'integer' when `col` can be an incremental cursor, else None."""
    for rule in TYPE_RULES:
        if not rule.boolean and rule.matches(col):
            return rule.cursor
    return None


# --- widening ---------------------------------------------------------------------------------

# Fixed PostgreSQL types with a widening rank, from the rules: type → (family, rank).
WIDENING_RANKS = {
    rule.pg_type: (rule.family, rule.rank)
    for rule in TYPE_RULES
    if rule.family and isinstance(rule.pg_type, str)
}


# --- documentation ----------------------------------------------------------------------------

TYPE_TABLE_HEADER = ("| MySQL / MariaDB | PostgreSQL | notes |", "| --- | --- | --- |")


def render_type_table() -> str:
    """The README's "Type mapping" table, one line per rule (a test keeps the docs equal)."""
    rows = [f"| {r.mysql} | {r.postgres} | {r.notes} |".replace("|  |", "| |") for r in TYPE_RULES]
    return "\n".join([*TYPE_TABLE_HEADER, *rows])
