"""Column types inferred from the data, and per-type converters to COPY text values.

A new column's type is inferred from the first chunk that has it: integer (bigint), double,
boolean, timestamp (timestamptz; naive times are read in the source's time zone), else text.
A value that does not fit its column's type makes the line a reject, except that an integer
column met with decimals is widened to double precision.

Numbers are read with the file's decimal separator and, when the source configures one, its
thousands separator (`1.234,5`): never guessed. A value with the thousands separator must group
its digits by three (`1.5` with thousands `.` is a reject, not 15).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

BIGINT = "bigint"
DOUBLE = "double precision"
BOOLEAN = "boolean"
TIMESTAMP = "timestamp with time zone"
TEXT = "text"

_INT_RE = re.compile(r"^[+-]?\d{1,19}$")
_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1
_FLOAT_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_TS_HINT = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}|$)|^\d{2}\.\d{2}\.\d{4}|^\d{4}/\d{2}/\d{2}"
)
_DMY_RE = re.compile(r"^(\d{2})\.(\d{2})\.(\d{4})(.*)$")
_YMD_SLASH_RE = re.compile(r"^(\d{4})/(\d{2})/(\d{2})(.*)$")
_TRUE = frozenset({"true", "t", "yes", "y", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "off"})


class BadValue(ValueError):  # noqa: N818 (a verdict on one value)
    pass


class OutOfRange(BadValue):
    """Shaped like the type but beyond its range: the column type stays, the line is rejected."""


Converter = Callable[[str], str]


def to_int(value: str) -> str:
    value = value.strip()
    # 19 digits reach 2**63 - 1 (e.g. nanosecond epochs); the range check keeps it a bigint.
    if not _INT_RE.match(value) or not _BIGINT_MIN <= int(value) <= _BIGINT_MAX:
        raise BadValue(f"not an integer: {value[:40]!r}")
    return value


def int_converter(thousands: str | None = None) -> Converter:
    if not thousands:
        return to_int
    ungroup = _ungrouper(thousands, None)

    def to_grouped_int(value: str) -> str:
        return to_int(ungroup(value))

    return to_grouped_int


def _ungrouper(thousands: str, decimal: str | None) -> Callable[[str], str]:
    """Removes the thousands separators of a value whose digits are grouped by three."""
    sep, dec = re.escape(thousands), re.escape(decimal) if decimal else None
    fraction = rf"(?:{dec}\d+)?" if dec else ""
    grouped = re.compile(rf"^[+-]?\d{{1,3}}(?:{sep}\d{{3}})+{fraction}$")

    def ungroup(value: str) -> str:
        text = value.strip()
        if thousands not in text:
            return text
        if not grouped.match(text):
            raise BadValue(f"misplaced thousands separator {thousands!r}: {value[:40]!r}")
        return text.replace(thousands, "")

    return ungroup


def float_converter(decimal: str, thousands: str | None = None) -> Converter:
    ungroup = _ungrouper(thousands, decimal) if thousands else None

    def to_float(value: str) -> str:
        text = value.strip() if ungroup is None else ungroup(value)
        if decimal == ",":
            text = text.replace(",", ".")
        if not _FLOAT_RE.match(text):
            raise BadValue(f"not a number: {value[:40]!r}")
        number = float(text)
        mantissa = text.lower().partition("e")[0]
        if math.isinf(number) or (number == 0.0 and mantissa.strip("+-0.")):
            # PostgreSQL refuses what overflows or underflows double precision.
            raise OutOfRange(f"out of range for double precision: {value[:40]!r}")
        return text

    return to_float


def to_bool(value: str) -> str:
    """What PostgreSQL's boolean input accepts (so the COPY fast path and the line path agree):
    1/0 and any unambiguous prefix of true/false/yes/no/on/off."""
    word = value.strip().lower()
    if word == "1" or word in _TRUE or _is_prefix(word, ("true", "yes"), ("on",)):
        return "t"
    if word == "0" or word in _FALSE or _is_prefix(word, ("false", "no"), ("off",)):
        return "f"
    raise BadValue(f"not a boolean: {value[:40]!r}")


def _is_prefix(word: str, one_letter_ok: tuple[str, ...], two_letters: tuple[str, ...]) -> bool:
    """`o` is ambiguous (on/off), so those two need at least two letters, as in PostgreSQL."""
    if not word:
        return False
    return any(w.startswith(word) for w in one_letter_ok) or (
        len(word) >= 2 and any(w.startswith(word) for w in two_letters)
    )


def parse_timestamp(value: str) -> datetime:
    text = value.strip()
    match = _DMY_RE.match(text) or _YMD_SLASH_RE.match(text)
    if match:
        a, b, c, rest = match.groups()
        text = f"{c}-{b}-{a}{rest}" if len(c) == 4 else f"{a}-{b}-{c}{rest}"
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise BadValue(f"not a timestamp: {value[:40]!r}") from None


def to_timestamp(value: str) -> str:
    return parse_timestamp(value).isoformat(sep=" ")


def to_text(value: str) -> str:
    return value


def converter_for(pg_type: str, decimal: str, thousands: str | None = None) -> Converter:
    if pg_type in (BIGINT, "integer", "smallint"):
        return int_converter(thousands)
    if pg_type in (DOUBLE, "numeric", "real"):
        return float_converter(decimal, thousands)
    if pg_type == BOOLEAN:
        return to_bool
    if pg_type.startswith("timestamp"):
        return to_timestamp
    return to_text


def infer_type(
    values: Iterable[str], decimal: str, tolerance: float = 0.1, thousands: str | None = None
) -> str:
    """The narrowest type that accepts the sample values, allowing a few bad ones.

    A stray bad value (e.g. "oops" in a temperature column) must not turn a numeric column
    into text: the type is kept if at most `tolerance` of the values do not fit; those lines
    become rejects. Text when no type fits well enough or there is no value.
    """
    sample = list(values)
    if not sample:
        return TEXT
    allowed_misses = int(len(sample) * tolerance)
    for pg_type in (BIGINT, DOUBLE, BOOLEAN, TIMESTAMP):
        misses = 0
        for value in sample:
            if not _fits(pg_type, value, decimal, thousands):
                misses += 1
                if misses > allowed_misses:
                    break
        else:
            return pg_type
    return TEXT


def _fits(pg_type: str, value: str, decimal: str, thousands: str | None) -> bool:
    if pg_type == TIMESTAMP and not _TS_HINT.match(value.strip()):
        return False  # fromisoformat alone would take "2024" or "20240101" as dates
    try:
        converter_for(pg_type, decimal, thousands)(value)
    except OutOfRange:
        return True  # the type is right; the value itself becomes a reject
    except BadValue:
        return False
    return True


def numeric_in_text(
    table_types: Mapping[str, str],
    sampled: Mapping[str, Sequence[str]],
    decimal: str,
    thousands: str | None = None,
) -> list[tuple[str, str]]:
    """(column, type) of the table's `text` columns whose sampled values in a file would have
    made them numeric: their values are loaded as text, and the run says so (a text column is
    never retyped: that would rewrite the whole table)."""
    found = []
    for column, values in sampled.items():
        if table_types.get(column) == TEXT and values:
            would_be = infer_type(values, decimal, thousands=thousands)
            if would_be in (BIGINT, DOUBLE):
                found.append((column, would_be))
    return found
