"""Log sources: which remote files land in which table, and how they are read.

With no project config there is one source, `machine_logs`: every file under the FTP
resource's directory, format detected per file. More sources come from the `ftp` section of the
project YAML (see docs/ftp.md). Parsing the config is pure: no server is contacted.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from typing import Any

from sync_assets.core.pg import check_identifier
from sync_assets.core.settings import ConfigError, parse_bool
from sync_assets.ftp.formats import FORMAT_NAMES
from sync_assets.project_config import section

DEFAULT_SOURCE = "machine_logs"
TARGET_SCHEMA_ENV = "FTP_TARGET_SCHEMA"
DEFAULT_TARGET_SCHEMA = "machine_logs"
FORMATS = frozenset(FORMAT_NAMES)
DEFAULT_NULLS = ("", "NaN", "nan", "NAN", "-", "NULL", "null", "N/A", "n/a", "NA")
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Thousands separators a source may configure (never guessed), and the decimal each implies.
THOUSANDS = (".", ",", "'", " ")
_IMPLIED_DECIMAL = {".": ",", ",": "."}


@dataclass(frozen=True)
class SourceConfig:
    """One log source. `directory=None` means the FTP resource's directory (FTP_DIR)."""

    name: str = DEFAULT_SOURCE
    directory: str | None = None
    recursive: bool = True
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    format: str = "auto"
    delimiter: str | None = None
    encoding: str | None = None
    decimal: str | None = None
    # `1.234,5`: the separator between groups of three digits; None: numbers have none.
    thousands: str | None = None
    skip_lines: int = 0
    header: bool = True
    null_values: tuple[str, ...] = DEFAULT_NULLS
    regex: str | None = None
    timezone: str = "UTC"
    schema: str = DEFAULT_TARGET_SCHEMA
    table: str = ""
    # Stable-file rule: loaded only if older than min_age and unchanged across a wait.
    min_age_seconds: float = 10.0
    stable_seconds: float = 2.0
    # A last line without newline is taken only once the file is this old (else it waits).
    final_line_seconds: float = 300.0
    # Transient FTP failures: attempts and first backoff (doubles each time).
    retries: int = 4
    retry_backoff_seconds: float = 1.0
    chunk_lines: int = 20_000
    # Files loaded at once, each with its own PostgreSQL connection, FTP session and
    # transaction (1: one after another).
    parallel_files: int = 2
    # How long a run waits for another run of the same source before refusing.
    lock_wait_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.thousands is None:
            return
        if self.decimal is None and self.thousands in _IMPLIED_DECIMAL:
            object.__setattr__(self, "decimal", _IMPLIED_DECIMAL[self.thousands])
        _check_thousands(self.name, self.thousands, self.decimal, self.delimiter)

    @property
    def table_name(self) -> str:
        return self.table or self.name

    def wants(self, relative_path: str) -> bool:
        """Does a file (path relative to the source directory) belong to this source?"""
        base = relative_path.rsplit("/", 1)[-1]
        if not any(_glob(relative_path, base, g) for g in self.include):
            return False
        return not any(_glob(relative_path, base, g) for g in self.exclude)


def _glob(relative_path: str, base: str, pattern: str) -> bool:
    target = relative_path if "/" in pattern else base
    return fnmatch.fnmatchcase(target, pattern)


def _check_thousands(name: str, thousands: str, decimal: str | None, delimiter: str | None) -> None:
    """A thousands separator must differ from the decimal separator and the delimiter; a
    comma needs a configured delimiter (it cannot be told from a comma delimiter)."""
    where = f"ftp source {name!r}: thousands {thousands!r}"
    if thousands not in THOUSANDS:
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, THOUSANDS))}")
    if thousands == decimal:
        raise ConfigError(f"{where} is also the decimal separator")
    if thousands == delimiter:
        raise ConfigError(f"{where} is also the delimiter")
    if thousands == "," and delimiter is None:
        raise ConfigError(f"{where} needs an explicit `delimiter` other than ','")


def target_schema() -> str:
    return os.environ.get(TARGET_SCHEMA_ENV) or DEFAULT_TARGET_SCHEMA


def _as_tuple(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"ftp source option `{key}` must be a string or a list of strings")


def _number(raw: dict[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"ftp source option `{key}` must be a number >= 0, got {value!r}")
    return float(value)


def _whole(raw: dict[str, Any], key: str, default: int, minimum: int = 0) -> int:
    """A count option: an integer >= `minimum` (2.5 or 0 workers are refused, not rounded)."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"ftp source option `{key}` must be an integer >= {minimum}, got {value!r}"
        )
    return value


def parse_source(name: str, raw: dict[str, Any], defaults: dict[str, Any]) -> SourceConfig:
    """One source from its YAML mapping merged over the section's `defaults`."""
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"ftp source name {name!r} must be lower-case letters, digits and underscores"
        )
    merged = {**defaults, **(raw or {})}
    known = {
        "directory",
        "recursive",
        "include",
        "exclude",
        "format",
        "delimiter",
        "encoding",
        "decimal",
        "thousands",
        "skip_lines",
        "header",
        "null_values",
        "regex",
        "timezone",
        "table",
        "min_age_seconds",
        "stable_seconds",
        "final_line_seconds",
        "retries",
        "retry_backoff_seconds",
        "chunk_lines",
        "parallel_files",
    }
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ConfigError(f"ftp source {name!r}: unknown option(s) {', '.join(unknown)}")
    fmt = str(merged.get("format", "auto")).lower()
    if fmt not in FORMATS:
        raise ConfigError(f"ftp source {name!r}: format must be one of {sorted(FORMATS)}")
    regex = merged.get("regex")
    if regex is not None:
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            raise ConfigError(f"ftp source {name!r}: invalid regex: {exc}") from None
        if not compiled.groupindex:
            raise ConfigError(f"ftp source {name!r}: regex needs named groups (?P<name>...)")
    decimal = merged.get("decimal")
    if decimal not in (None, ".", ","):
        raise ConfigError(f"ftp source {name!r}: decimal must be '.' or ','")
    table = str(merged.get("table") or name)
    check_identifier(table, "ftp table name")
    nulls = merged.get("null_values")
    return SourceConfig(
        name=name,
        directory=merged.get("directory"),
        recursive=parse_bool(f"ftp.{name}.recursive", merged.get("recursive"), True),
        include=_as_tuple(merged.get("include", "*"), "include") or ("*",),
        exclude=_as_tuple(merged.get("exclude"), "exclude"),
        format=fmt,
        delimiter=merged.get("delimiter"),
        encoding=merged.get("encoding"),
        decimal=decimal,
        thousands=merged.get("thousands"),
        skip_lines=_whole(merged, "skip_lines", 0),
        header=parse_bool(f"ftp.{name}.header", merged.get("header"), True),
        null_values=DEFAULT_NULLS if nulls is None else _as_tuple(nulls, "null_values"),
        regex=regex,
        timezone=str(merged.get("timezone", "UTC")),
        schema=target_schema(),
        table=table,
        min_age_seconds=_number(merged, "min_age_seconds", 10.0),
        stable_seconds=_number(merged, "stable_seconds", 2.0),
        final_line_seconds=_number(merged, "final_line_seconds", 300.0),
        retries=_whole(merged, "retries", 4),
        retry_backoff_seconds=_number(merged, "retry_backoff_seconds", 1.0),
        chunk_lines=_whole(merged, "chunk_lines", 20_000, minimum=1),
        parallel_files=_whole(merged, "parallel_files", 2, minimum=1),
    )


def load_sources(ftp_section: dict[str, Any] | None = None) -> list[SourceConfig]:
    """Sources from the project config (`ftp: {defaults: {...}, sources: {name: {...}}}`)."""
    cfg = section("ftp") if ftp_section is None else ftp_section
    defaults = cfg.get("defaults") or {}
    sources = cfg.get("sources")
    if not sources:
        return [parse_source(DEFAULT_SOURCE, {}, defaults)]
    if not isinstance(sources, dict):
        raise ConfigError("ftp.sources must be a mapping of source name to options")
    parsed = [parse_source(str(name), raw or {}, defaults) for name, raw in sources.items()]
    tables: dict[str, str] = {}
    for source in parsed:
        other = tables.setdefault(source.table_name, source.name)
        if other != source.name:  # one writer per table: line numbering and locks rely on it
            raise ConfigError(
                f"ftp sources {other!r} and {source.name!r} both write table "
                f"{source.table_name!r}; give each source its own table"
            )
    return parsed
