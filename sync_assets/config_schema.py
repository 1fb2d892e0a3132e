"""Typed models of the project's YAML config: every mistake found at load, each with its path.

`validate_config(data)` returns all errors at once (`ftp.sources.press.encoding: unknown
encoding 'cp1525'`); `json_schema()` is the schema published for editors
(schema/sync_assets.schema.json, kept current by a test). The models check values only: the
sides still build their options from the raw mapping (ftp/config.py, mysql/config.py), so a
valid file behaves exactly as before.
"""

from __future__ import annotations

import codecs
import fnmatch
import json
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from sync_assets.core.settings import FALSE_WORDS, TRUE_WORDS

SCHEMA_ID = "https://github.com/sync-assets/sync_assets/schema/sync_assets.schema.json"
_SOURCE_NAME = r"^[a-z_][a-z0-9_]{0,62}$"
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$"


def _bool(value: Any) -> Any:
    """The spellings parse_bool accepts (yes/no/on/off/1/0...); anything else is refused."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS - {""}:
            return True
        if word in FALSE_WORDS - {""}:
            return False
        raise ValueError(f"must be true or false (or yes/no, on/off, 1/0), got {value!r}")
    return value


def _encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}") from None
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        hint = "an IANA name such as Europe/Berlin"
        raise ValueError(f"unknown time zone {value!r} ({hint})") from None
    return value


def _regex(value: str) -> str:
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regex: {exc}") from None
    if not compiled.groupindex:
        raise ValueError("regex needs named groups (?P<name>...), one per column")
    return value


def _glob(value: str) -> str:
    if not value or "\x00" in value:
        raise ValueError("a glob must be a non-empty string")
    if value.startswith("/"):
        raise ValueError(f"glob {value!r} is matched against paths relative to the directory")
    if value.count("[") > value.count("]"):
        raise ValueError(f"glob {value!r} has an unclosed '['")
    fnmatch.translate(value)
    return value


def _delimiter(value: str) -> str:
    if len(value) != 1 or value in '\r\n"':
        raise ValueError(f"delimiter must be one character (not a quote or newline), got {value!r}")
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Bool = Annotated[bool, BeforeValidator(_bool)]
Encoding = Annotated[str, AfterValidator(_encoding)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Regex = Annotated[str, AfterValidator(_regex)]
Globs = Annotated[list[Annotated[str, AfterValidator(_glob)]], BeforeValidator(_one_or_many)]
Strings = Annotated[list[str], BeforeValidator(_one_or_many)]
Seconds = Annotated[float, Field(ge=0, strict=True)]
Format = Annotated[
    Literal["auto", "csv", "tsv", "jsonl", "text"],
    BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, use_attribute_docstrings=True)


class FTPSourceOptions(_Strict):
    """Options of one log source (or of `ftp.defaults`); all optional."""

    directory: str | None = None
    """Remote directory (default: FTP_DIR)."""
    recursive: Bool | None = None
    include: Globs | None = None
    """Globs of files to load (a glob with '/' matches the relative path, else the name)."""
    exclude: Globs | None = None
    format: Format | None = None
    delimiter: Annotated[str, AfterValidator(_delimiter)] | None = None
    encoding: Encoding | None = None
    decimal: Literal[".", ","] | None = None
    skip_lines: Annotated[int, Field(ge=0, strict=True)] | None = None
    header: Bool | None = None
    null_values: Strings | None = None
    regex: Regex | None = None
    timezone: TimeZone | None = None
    table: Annotated[str, Field(pattern=_IDENTIFIER)] | None = None
    min_age_seconds: Seconds | None = None
    stable_seconds: Seconds | None = None
    final_line_seconds: Seconds | None = None
    retries: Annotated[int, Field(ge=0, le=20, strict=True)] | None = None
    retry_backoff_seconds: Annotated[float, Field(ge=0, le=600, strict=True)] | None = None
    chunk_lines: Annotated[int, Field(ge=1, le=10_000_000, strict=True)] | None = None
    parallel_files: Annotated[int, Field(ge=1, le=64, strict=True)] | None = None


class FTPSection(_Strict):
    defaults: FTPSourceOptions | None = None
    sources: dict[Annotated[str, Field(pattern=_SOURCE_NAME)], FTPSourceOptions | None] | None = (
        None
    )


class MySQLTableOptions(_Strict):
    """Options of one MySQL table (or of `mysql.defaults`); all optional."""

    mode: Literal["auto", "incremental", "full_refresh"] | None = None
    cursor_column: str | None = None
    overlap_seconds: Annotated[int, Field(ge=0, strict=True)] | None = None
    deletes: Literal["auto", "always", "off"] | None = None
    max_delete_fraction: Annotated[float, Field(gt=0, le=1, strict=True)] | None = None
    batch_rows: Annotated[int, Field(ge=1, le=1_000_000, strict=True)] | None = None
    lock_wait_seconds: Seconds | None = None
    fast_reader: Bool | None = None
    verify_values: Bool | None = None


class MySQLSection(_Strict):
    defaults: MySQLTableOptions | None = None
    tables: dict[str, MySQLTableOptions | None] | None = None


class ProjectConfig(_Strict):
    """The sync_assets YAML file ($SYNC_ASSETS_CONFIG or ./sync_assets.yaml)."""

    mysql: MySQLSection | None = None
    ftp: FTPSection | None = None


def _message(error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    text = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        text = "unknown option"
    elif loc and loc[-1] == "[key]":
        loc.pop()
        text = f"name {error['input']!r}: lower-case letters, digits and underscores"
    elif error["type"] == "literal_error":
        text = f"must be one of {error['ctx']['expected']}, got {error['input']!r}"
    elif error["type"] != "value_error" and not isinstance(error["input"], dict | list):
        text = f"{text}, got {error['input']!r}"
    path = ".".join(loc)
    return f"{path}: {text}" if path else text


def validate_config(data: Any) -> list[str]:
    """Every error in the parsed YAML, each prefixed with its path; [] when valid."""
    try:
        ProjectConfig.model_validate(data if data is not None else {})
    except ValidationError as exc:
        return [_message(error) for error in exc.errors()]
    return []


def json_schema() -> str:
    """The JSON Schema of the file, as committed under schema/."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **ProjectConfig.model_json_schema(),
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
