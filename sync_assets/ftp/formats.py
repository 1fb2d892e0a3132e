"""Log formats: one class per format (detection, parsing, fast path), in one registry.

CSV/TSV, JSON Lines and text (+regex); gzip is transparent. A record is one physical line,
except in CSV where a quoted field may hold line breaks (ftp/quoting.py); each record has a
line number (its first line's) and raw text for the rejects table. A record is turned into
fields or a mapping of column name to string (or None): typing happens later, against the
table's column types. A new format is one class here and one line in `LOG_FORMATS`.

Over 400 lines on purpose: it is the one registry of formats, each format's detection (with
the value sampling of sampling.py), column naming and line parsing side by side.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import IO, ClassVar, Protocol

from sync_assets.core.pg import MAX_IDENTIFIER_BYTES, short_hash, with_suffix
from sync_assets.core.settings import ConfigError
from sync_assets.ftp.quoting import outside_quotes, sample_records
from sync_assets.ftp.sampling import ValueSample, blocks, fill, further_texts
from sync_assets.ftp.transcode import UTF16_BOMS, is_utf16


class FormatSettings(Protocol):
    """What detection and parsing read of a source (`ftp.config.SourceConfig` is one): the
    registry stays below the configuration that names its formats, with no import back."""

    @property
    def format(self) -> str: ...
    @property
    def delimiter(self) -> str | None: ...
    @property
    def encoding(self) -> str | None: ...
    @property
    def decimal(self) -> str | None: ...
    @property
    def thousands(self) -> str | None: ...
    @property
    def skip_lines(self) -> int: ...
    @property
    def header(self) -> bool: ...
    @property
    def null_values(self) -> tuple[str, ...]: ...
    @property
    def regex(self) -> str | None: ...


SAMPLE_BYTES = 64 * 1024
DELIMITERS = (";", ",", "\t", "|")
PROVENANCE = ("_source_file", "_file_version", "_line_number", "_file_mtime", "_run_id")


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
    thousands: str | None = None  # only ever from the source's configuration

    @property
    def log_format(self) -> LogFormat:
        """The registry's class for this file's kind (what it reads, whether COPY can)."""
        return FORMATS_BY_KIND[self.kind]

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
    """The file's encoding: the configured one, else from its BOM or its bytes. UTF-16 is
    always resolved to its byte order (`utf-16-le`/`-be`), so a file resumed past its BOM
    is read the same way; `utf-16` configured without a BOM: the order the NULs show."""
    if configured:
        try:
            name = codecs.lookup(configured).name
        except LookupError:  # the configuration's fault, not a file's: the run stops
            raise ConfigError(f"unknown encoding {configured!r} (option `encoding`)") from None
        return _utf16_order(sample) if name == "utf-16" else name
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith(tuple(UTF16_BOMS.values())) and not sample.startswith(codecs.BOM_UTF32_LE):
        return _utf16_order(sample)
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


def _utf16_order(sample: bytes) -> str:
    """utf-16-le or -be: the BOM's, else the one whose NULs (ASCII text) fall where a high
    byte is; little-endian (what Windows writes) when nothing tells."""
    for name, bom in UTF16_BOMS.items():
        if sample.startswith(bom):
            return name
    head = sample[:4096]
    return "utf-16-be" if head[0::2].count(0) > head[1::2].count(0) else "utf-16-le"


def _is_binary(sample: bytes, encoding: str) -> bool:
    """NUL bytes in the head; in UTF-16, NUL characters (its ASCII has NUL bytes)."""
    if is_utf16(encoding):
        return "\x00" in sample[:4096].decode(encoding, errors="replace")
    return b"\x00" in sample[:4096]


def _detect_delimiter(lines: Sequence[str]) -> str | None:
    """The candidate found the same (non-zero) number of times on most records (outside
    quotes; a quoted line break joins lines into one record, as the reader will)."""
    best: tuple[int, str] | None = None
    for delim in DELIMITERS:
        counts = [outside_quotes(r).count(delim) for r in sample_records(list(lines), delim)]
        if not counts or counts[0] == 0:
            continue
        agree = sum(1 for c in counts if c == counts[0])
        if agree * 2 > len(counts) and (best is None or agree > best[0]):
            best = (agree, delim)
    return best[1] if best else None


@dataclass(frozen=True)
class Detection:
    """How a file is read, and the values sampled per column (csv) to type new columns."""

    fmt: FileFormat
    values: Mapping[str, Sequence[str]] = field(default_factory=dict)


def detect_format(
    name: str, sample: bytes, source: FormatSettings, compressed: bool = False
) -> FileFormat:
    """Decide how to read a file from its name, the source's options and its first bytes."""
    return detect(name, sample, source, compressed).fmt


def detect_stream(
    name: str, stream: IO[bytes], source: FormatSettings, compressed: bool = False
) -> Detection:
    """`detect` on the stream's head, reading on (bounded, see sampling.py) while the head
    does not settle every column; the stream is left at its start."""
    detection = detect(name, stream.read(SAMPLE_BYTES), source, compressed, blocks(stream))
    stream.seek(0)
    return detection


def detect(
    name: str,
    sample: bytes,
    source: FormatSettings,
    compressed: bool = False,
    more: Iterable[bytes] = (),
) -> Detection:
    """The format from the name, the source's options and the first bytes (`sample`); the
    values of a delimited file's columns from the sample, then from `more` (the bytes after
    it) while some column has too few values."""
    encoding = detect_encoding(sample, source.encoding)
    if _is_binary(sample, encoding):
        raise UnparsableFileError("binary content (NUL bytes): not a text log file")
    text = sample.decode(encoding, errors="replace")
    complete = [ln for ln in text.splitlines()[source.skip_lines :] if ln.strip()]
    cut = len(sample) >= SAMPLE_BYTES
    if cut and len(complete) > 1:
        complete = complete[:-1]  # the sample may have cut the last line
    lines = complete[:50]
    log_format = configured_format(source.format)
    if log_format is None:  # auto
        log_format = (
            TextFormat() if source.regex else (format_for_name(name) or sniff_format(lines))
        )
    fmt = log_format.detect(name, lines, source, encoding, compressed)
    further = further_texts(sample, more, encoding) if cut else iter(())
    return log_format.sample_values(fmt, complete, further, source)


def configured_format(name: str) -> LogFormat | None:
    """The format a source's `format` option names; None for `auto` (detected per file)."""
    return None if name == AUTO else LOG_FORMATS[name]


def format_for_name(name: str) -> LogFormat | None:
    """The format a file name's suffix (before any .gz) says, if any."""
    lower = name.lower().removesuffix(".gz")
    for log_format in LOG_FORMATS.values():
        if lower.endswith(log_format.suffixes):
            return log_format
    return None


def sniff_format(lines: Sequence[str]) -> LogFormat:
    """The first format (in SNIFF_ORDER) whose look the sample lines have."""
    return next(f for f in SNIFF_ORDER if f.looks_like(lines))


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
        # Chosen once per file: no dispatch per line.
        self.parse: Callable[[str], dict[str, str | None]] = fmt.log_format.line_parser(self)

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

    def parse_csv(self, line: str) -> dict[str, str | None]:
        return dict(zip(self.fmt.columns, self.parse_fields_checked(line), strict=True))

    def parse_jsonl(self, line: str) -> dict[str, str | None]:
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

    def parse_text(self, line: str) -> dict[str, str | None]:
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


# --- the registry -------------------------------------------------------------------------

AUTO = "auto"


class LogFormat:
    """One kind of log file: how it is recognised, detected in detail, and parsed."""

    name: ClassVar[str]  # the source option's value (`format: ...`)
    kind: ClassVar[str]  # FileFormat.kind, stored in the ledger
    suffixes: ClassVar[tuple[str, ...]] = ()  # file names that say this format
    # Positional fields under a header's column names (else each line names its columns).
    fixed_columns: ClassVar[bool] = False
    # Whether a clean chunk may go as COPY csv straight into the table (ftp/fastpath.py).
    fast_path: ClassVar[bool] = False
    # Whether a quoted field may hold line breaks (RFC 4180): records span lines (quoting.py).
    quoted_line_breaks: ClassVar[bool] = False

    def looks_like(self, lines: Sequence[str]) -> bool:
        """Whether sampled lines (format `auto`, no telling suffix) look like this format."""
        return False

    def detect(
        self,
        name: str,
        lines: Sequence[str],
        source: FormatSettings,
        encoding: str,
        compressed: bool,
    ) -> FileFormat:
        return FileFormat(self.kind, encoding, compressed=compressed)

    def sample_values(
        self, fmt: FileFormat, lines: Sequence[str], further: Iterator[str], source: FormatSettings
    ) -> Detection:
        """`fmt` completed from the values of the sampled `lines` (and `further` ones)."""
        return Detection(fmt)

    def line_parser(self, parser: LineParser) -> Callable[[str], dict[str, str | None]]:
        """The parser's method that reads one line of this format."""
        raise NotImplementedError

    def fast_path_applies(self, fmt: FileFormat) -> bool:
        """Whether a file read as `fmt` can take the fast path: it needs its columns, and
        numbers with a thousands separator are read (and their grouping checked) line by
        line only."""
        return self.fast_path and bool(fmt.columns) and fmt.thousands is None


class CsvFormat(LogFormat):
    name = kind = "csv"
    suffixes = (".csv",)
    fixed_columns = True
    fast_path = True
    quoted_line_breaks = True
    default_delimiter: ClassVar[str | None] = None

    def looks_like(self, lines: Sequence[str]) -> bool:
        return _detect_delimiter(lines) is not None

    def detect(
        self,
        name: str,
        lines: Sequence[str],
        source: FormatSettings,
        encoding: str,
        compressed: bool,
    ) -> FileFormat:
        delimiter = source.delimiter or self.default_delimiter
        if not delimiter and format_for_name(name) is LOG_FORMATS["tsv"]:
            delimiter = "\t"
        delimiter = delimiter or _detect_delimiter(lines) or ","
        decimal = source.decimal or "."  # else decided by sample_values
        return FileFormat(
            self.kind,
            encoding,
            delimiter,
            decimal,
            compressed=compressed,
            thousands=source.thousands,
        )

    def sample_values(
        self, fmt: FileFormat, lines: Sequence[str], further: Iterator[str], source: FormatSettings
    ) -> Detection:
        """The values of each column, past empty stretches; the decimal separator from them
        (unless configured): `12,5` against `12.5`, a point when no value shows either."""
        if not lines:
            return Detection(fmt)
        delimiter = fmt.delimiter
        if source.header:
            try:
                names = header_columns(lines[0], delimiter)
            except UnparsableFileError:
                return Detection(fmt)  # the loader fails the file with this reason
            data = lines[1:]
        else:
            width = len(_sample_fields(lines[0], delimiter))
            names = tuple(f"column_{i}" for i in range(1, width + 1))
            data = lines
        sample = ValueSample(len(names), source.null_values, delimiter)
        fill(sample, data, further, lambda line: _sample_fields(line, delimiter))
        if source.decimal is None and delimiter != ",":
            fmt = replace(fmt, decimal=sample.decimal() or ".")
        return Detection(fmt, sample.by_name(names))

    def line_parser(self, parser: LineParser) -> Callable[[str], dict[str, str | None]]:
        return parser.parse_csv


class TsvFormat(CsvFormat):
    """CSV with a tab by default (stored as `csv`: the delimiter is in the FileFormat)."""

    name = "tsv"
    suffixes = (".tsv", ".tab")
    default_delimiter = "\t"


class JsonLinesFormat(LogFormat):
    name = kind = "jsonl"
    suffixes = (".jsonl", ".ndjson", ".json")

    def looks_like(self, lines: Sequence[str]) -> bool:
        return bool(lines) and all(ln.lstrip().startswith("{") for ln in lines[:5])

    def line_parser(self, parser: LineParser) -> Callable[[str], dict[str, str | None]]:
        return parser.parse_jsonl


class TextFormat(LogFormat):
    """One `line` column, or the named groups of the source's regex."""

    name = kind = "text"
    suffixes = (".log", ".txt")

    def looks_like(self, lines: Sequence[str]) -> bool:
        return True  # whatever else a file is not

    def detect(
        self,
        name: str,
        lines: Sequence[str],
        source: FormatSettings,
        encoding: str,
        compressed: bool,
    ) -> FileFormat:
        return FileFormat(self.kind, encoding, regex=source.regex, compressed=compressed)

    def line_parser(self, parser: LineParser) -> Callable[[str], dict[str, str | None]]:
        return parser.parse_text


# By the `format` option's value; suffixes are tried in this order.
LOG_FORMATS: dict[str, LogFormat] = {
    f.name: f for f in (CsvFormat(), TsvFormat(), JsonLinesFormat(), TextFormat())
}
# By the kind stored in a FileFormat (tsv is stored as csv).
FORMATS_BY_KIND: dict[str, LogFormat] = {
    f.kind: f for f in LOG_FORMATS.values() if f.name == f.kind
}
# Content sniffing (format `auto`, no telling suffix): the first that fits.
SNIFF_ORDER = (LOG_FORMATS["jsonl"], LOG_FORMATS["csv"], LOG_FORMATS["text"])
FORMAT_NAMES = (AUTO, *LOG_FORMATS)
