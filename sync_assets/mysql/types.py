"""How each source column is created, read and written: `map_column` applies the first
matching rule of `type_rules.TYPE_RULES`; `row_expression` renders a whole row as one string
(the marker bytes are explained in `type_rules`); `type_change` says whether an existing
column can be widened in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sync_assets.mysql.catalog import SourceColumn
from sync_assets.mysql.naming import mq
from sync_assets.mysql.type_rules import (
    FIELD_SEPARATOR,
    NULL_MARK,
    WIDENING_RANKS,
    UnsupportedTypeError,
    rule_for,
)

# Re-exported: the vocabulary callers use together with the mappings.
__all__ = [
    "ColumnMapping",
    "SourceColumn",
    "UnsupportedTypeError",
    "enum_values",
    "map_column",
    "row_expression",
    "type_change",
]


@dataclass(frozen=True)
class ColumnMapping:
    """How one source column is created, read and written."""

    source: SourceColumn
    target: str  # lower-cased PostgreSQL column name
    pg_type: str  # from a fixed vocabulary plus integers: safe to compose into DDL
    select_expr: str  # MySQL expression giving the value's COPY text (unescaped) or NULL
    copy_type: str  # the type the value has in COPY text (booleans arrive as 0/1 integers)


def map_column(
    col: SourceColumn, target: str, as_boolean: bool = False, table: str = "?"
) -> ColumnMapping:
    """The PostgreSQL type and SELECT expression for one column (see `TYPE_RULES`)."""
    rule = rule_for(col, as_boolean, table)
    pg_type = rule.target_type(col)
    select = rule.select(mq(col.name), col)
    return ColumnMapping(col, target, pg_type, select, rule.copy_type or pg_type)


def row_expression(mappings: list[ColumnMapping]) -> str:
    """One MySQL expression giving a whole row: fields separated by 0xFF, NULL as 0xFD 'N'."""
    fields = [f"IFNULL({m.select_expr}, {NULL_MARK})" for m in mappings]
    return f"CONCAT({f', {FIELD_SEPARATOR}, '.join(fields)})"


_ENUM_VALUE = re.compile(r"'((?:[^'\\]|''|\\.)*)'")


def enum_values(column_type: str) -> list[str]:
    """The allowed values of `enum('a','it''s')` as information_schema spells the type."""
    return [
        v.replace("''", "'").replace("\\\\", "\\")
        for v in _ENUM_VALUE.findall(column_type.partition("(")[2])
    ]


# --- widening ---------------------------------------------------------------------------------


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
    old_family, old_rank = WIDENING_RANKS.get(old, (None, 0))
    new_family, new_rank = WIDENING_RANKS.get(new, (None, 0))
    if old_family and old_family == new_family:
        return "widen" if new_rank > old_rank else "incompatible"
    if old_family == "integer" and (parts := _numeric_parts(new)):
        return "widen" if parts[0] - parts[1] >= old_rank else "incompatible"
    old_num, new_num = _numeric_parts(old), _numeric_parts(new)
    if old_num and new_num:
        fits = new_num[1] >= old_num[1] and new_num[0] - new_num[1] >= old_num[0] - old_num[1]
        return "widen" if fits else "incompatible"
    old_len, new_len = _char_length(old), _char_length(new)
    if old_len and new_len:
        return "widen" if new_len > old_len else "incompatible"
    if old_len and new == "text":
        return "widen"
    return "incompatible"
