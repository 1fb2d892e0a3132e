"""Format detection and line parsing: CSV/TSV, JSON Lines, text (+regex); gzip is transparent.

Every physical line is one record (machine logs do not quote newlines), so each data line has a
line number and raw text for the rejects table. A line is turned into a mapping of column name
to string (or None): typing happens later, against the table's column types.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sync_assets.core.pg import MAX_IDENTIFIER_BYTES, short_hash, with_suffix
from sync_assets.core.settings import ConfigError
from sync_assets.ftp.config import SourceConfig

SAMPLE_BYTES = 64 * 1024
DELIMITERS = (";", ",", "\t", "|")
PROVENANCE = ("_source_file", "_file_version", "_line_number", "_file_mtime", "_run_id")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_DECIMAL_POINT = re.compile(r"^[+-]?\d+\.\d+$")


class UnparsableFileError(ValueError):
    """The file as a whole cannot be read (binary, broken gzip, no usable header)."""


class RejectedLine(ValueError):  # noqa: N818 (it is a verdict, not a crash)
    """One line cannot be loaded; the message is the reason stored in the rejects table."""


@dataclass(frozen=True)
class FileFormat:
    """How one file is read. Stored in the ledger so that a resumed file is read the same way."""

    kind: str  # csv | jsonl | text
    encoding: str
    delimiter: str = ","
    decimal: str = "."
    columns: tuple[str, ...] = ()
    regex: str | None = None
    compressed: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> FileFormat:
        data = json.loads(text)
        data["columns"] = tuple(data.get("columns") or ())
        return FileFormat(**data)


def is_gzip(name: str, head: bytes) -> bool:
    return head[:2] == b"\x1f\x8b" or name.lower().endswith(".gz")


def detect_encoding(sample: bytes, configured: str | None) -> str:
    if configured:
        try:
            return codecs.lookup(configured).name
        except LookupError:  # the configuration's fault, not a file's: the run stops
            raise ConfigError(f"unknown encoding {configured!r} (option `encoding`)") from None
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    cut = sample.rfind(b"\n")
    complete = sample if cut < 0 or len(sample) < SAMPLE_BYTES else sample[: cut + 1]
    try:
        complete.decode("utf-8")
    except UnicodeDecodeError:
        # cp1252 is what Western European machines write; latin-1 decodes every byte.
        try:
            complete.decode("cp1252")
        except UnicodeDecodeError:
            return "latin-1"
        return "cp1252"
    return "utf-8"


_KIND_BY_SUFFIX = {".csv": "csv", ".tsv": "csv", ".tab": "csv", ".jsonl": "jsonl"}
_KIND_BY_SUFFIX |= {".ndjson": "jsonl", ".json": "jsonl", ".log": "text", ".txt": "text"}


def _kind_from_name(name: str) -> str | None:
    lower = name.lower().removesuffix(".gz")
    for suffix, kind in _KIND_BY_SUFFIX.items():
        if lower.endswith(suffix):
            return kind
    return None


def _detect_delimiter(lines: Sequence[str]) -> str | None:
    """The candidate found the same (non-zero) number of times on most lines."""
    best: tuple[int, str] | None = None
    for delim in DELIMITERS:
        counts = [line.count(delim) for line in lines]
        if not counts or counts[0] == 0:
            continue
        agree = sum(1 for c in counts if c == counts[0])
        if agree * 2 > len(counts) and (best is None or agree > best[0]):
            best = (agree, delim)
    return best[1] if best else None


def _detect_decimal(rows: Sequence[Sequence[str]], delimiter: str) -> str:
    if delimiter == ",":
        return "."
    comma = point = 0
    for row in rows:
        for value in row:
            value = value.strip()
            comma += bool(_DECIMAL_COMMA.match(value))
            point += bool(_DECIMAL_POINT.match(value))
    return "," if comma > point else "."


def detect_format(
    name: str, sample: bytes, source: SourceConfig, compressed: bool = False
) -> FileFormat:
    """Decide how to read a file from its name, the source's options and its first bytes."""
    if b"\x00" in sample[:4096]:
        raise UnparsableFileError("binary content (NUL bytes): not a text log file")
    encoding = detect_encoding(sample, source.encoding)
    text = sample.decode(encoding, errors="replace")
    lines = [ln for ln in text.splitlines()[source.skip_lines :] if ln.strip()][:50]
    if len(sample) >= SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the sample may have cut the last line
    kind = source.format
    if kind == "tsv":
        kind = "csv"
    if kind == "auto":
        kind = "text" if source.regex else (_kind_from_name(name) or _kind_from_content(lines))
    if kind == "jsonl" or kind == "text":
        regex = source.regex if kind == "text" else None
        return FileFormat(kind, encoding, regex=regex, compressed=compressed)
    delimiter = source.delimiter or ("\t" if source.format == "tsv" else None)
    if name.lower().removesuffix(".gz").endswith((".tsv", ".tab")) and not delimiter:
        delimiter = "\t"
    delimiter = delimiter or _detect_delimiter(lines) or ","
    rows = [_sample_fields(ln, delimiter) for ln in lines[1 if source.header else 0 :]]
    decimal = source.decimal or _detect_decimal(rows, delimiter)
    return FileFormat("csv", encoding, delimiter, decimal, compressed=compressed)


def _kind_from_content(lines: Sequence[str]) -> str:
    if lines and all(ln.lstrip().startswith("{") for ln in lines[:5]):
        return "jsonl"
    return "csv" if _detect_delimiter(lines) else "text"


def split_fields(line: str, delimiter: str) -> list[str]:
    """Split one line; quotes are honoured only when present (the fast path is str.split)."""
    if '"' not in line:
        return line.split(delimiter)
    return next(csv.reader([line], delimiter=delimiter, strict=True), [])


def _sample_fields(line: str, delimiter: str) -> list[str]:
    """Fields of a sampled line for detection; a line with bad quoting (a reject later, or
    one half of a quoted line break) must not stop detection."""
    try:
        return split_fields(line, delimiter)
    except csv.Error:
        return line.split(delimiter)


def header_columns(line: str, delimiter: str) -> tuple[str, ...]:
    """Column names from a header line: trimmed, unique, non-empty, never a provenance name."""
    try:
        fields = split_fields(line, delimiter)
    except csv.Error as exc:
        raise UnparsableFileError(f"the header line has malformed quoting: {exc}") from None
    names: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(fields, 1):
        names.append(_unique(clean_column_name(raw, index), seen))
    return tuple(names)


def clean_column_name(raw: str, index: int) -> str:
    name = raw.strip().strip("\ufeff").replace("\x00", "")
    if not name:
        name = f"column_{index}"
    if name in PROVENANCE or name == "_ingested_at":
        name = f"data{name}"
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        # Two long names that share their first 63 bytes must not merge into one column.
        name = with_suffix(name, "_" + short_hash(raw))
    return name


def distinct_column_name(raw: str, index: int) -> str:
    """Like clean_column_name, but a name that had to change keeps a hash of the original.

    For JSON keys: ` a`, `a` and `a\x00` are three keys of one object, so three columns. The
    result depends on the key alone, never on the order keys were met in (one parser per file).
    """
    name = clean_column_name(raw, index)
    if name == raw or name.endswith("_" + short_hash(raw)):
        return name
    return with_suffix(name, "_" + short_hash(raw))


def _unique(name: str, seen: set[str]) -> str:
    candidate, n = name, 2
    while candidate in seen:
        candidate = with_suffix(name, f"_{n}")
        n += 1
    seen.add(candidate)
    return candidate


class LineParser:
    """Turns one decoded line into {column: value} for the file's format."""

    def __init__(self, fmt: FileFormat) -> None:
        self.fmt = fmt
        self._regex = re.compile(fmt.regex) if fmt.regex else None
        self._seen: set[str] = set(fmt.columns)
        self._jsonl_names: dict[str, str] = {}

    def parse(self, line: str) -> dict[str, str | None]:
        if self.fmt.kind == "csv":
            return self._csv(line)
        if self.fmt.kind == "jsonl":
            return self._jsonl(line)
        return self._text(line)

    def parse_fields(self, line: str) -> list[str]:
        try:
            return split_fields(line, self.fmt.delimiter)
        except csv.Error as exc:
            raise RejectedLine(f"malformed quoting: {exc}") from None

    def parse_fields_checked(self, line: str) -> list[str]:
        """CSV fields of a line, which must have exactly one value per column."""
        values = self.parse_fields(line)
        expected = len(self.fmt.columns)
        if len(values) != expected:
            raise RejectedLine(f"expected {expected} fields, found {len(values)}")
        return values

    def _csv(self, line: str) -> dict[str, str | None]:
        return dict(zip(self.fmt.columns, self.parse_fields_checked(line), strict=True))

    def _jsonl(self, line: str) -> dict[str, str | None]:
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise RejectedLine(f"invalid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise RejectedLine("a JSON line must be an object")
        return {self._jsonl_column(k): _json_value(v) for k, v in obj.items()}

    def _jsonl_column(self, key: str) -> str:
        name = self._jsonl_names.get(key)
        if name is None:
            name = distinct_column_name(key, len(self._jsonl_names) + 1)
            self._jsonl_names[key] = name
        return name

    def _text(self, line: str) -> dict[str, str | None]:
        if self._regex is None:
            return {"line": line}
        match = self._regex.search(line)
        if match is None:
            raise RejectedLine("line does not match the source's regex")
        return {clean_column_name(k, i): v for i, (k, v) in enumerate(match.groupdict().items())}


def _json_value(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)
