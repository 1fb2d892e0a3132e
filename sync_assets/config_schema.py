"""Typed models of the project's YAML config: every mistake found at load, each with its path.

`validate_config(data)` returns all errors at once (`ftp.sources.press.encoding: unknown
encoding 'cp1525'`); `json_schema()` is the schema published for editors
(schema/sync_assets.schema.json, kept current by a test). The models check values only: the
sides still build their options from the raw mapping (ftp/config.py, mysql/config.py), so a
valid file behaves exactly as before.
"""

from __future__ import annotations

import ast
import codecs
import fnmatch
import inspect
import json
import re
from pathlib import Path
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

from sync_assets.core.pg import MAX_IDENTIFIER_BYTES
from sync_assets.core.settings import FALSE_WORDS, TRUE_WORDS
from sync_assets.ftp.formats import FORMAT_NAMES

SCHEMA_ID = "https://github.com/sync-assets/sync_assets/schema/sync_assets.schema.json"
_SOURCE_NAME = r"^[a-z_][a-z0-9_]{0,62}$"


def _bool(value: Any) -> Any:
    """The spellings parse_bool accepts (yes/no/on/off/1/0...); anything else is refused."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:  # includes "", as parse_bool reads it
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


def _table_name(value: str) -> str:
    # The rule of core.pg.check_identifier: the name is quoted, so only these limits apply.
    if not value or "\x00" in value or len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise ValueError(f"table name {value!r} must be 1 to 63 bytes without NUL")
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
    Literal[FORMAT_NAMES],  # the format registry's names, and auto
    BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
]


class _Strict(BaseModel):
    # No `use_attribute_docstrings`: on Python < 3.13 pydantic finds each class's source by
    # walking the import's frames through `inspect.getmodule`, which scans every loaded module;
    # with Dagster loaded that is most of this module's import, paid by every process that
    # loads the definitions with a config file. Only the JSON Schema shows the docstrings, and
    # `json_schema()` adds them itself.
    model_config = ConfigDict(extra="forbid", strict=False)


class FTPSourceOptions(_Strict):
    """Options of one log source (or of `ftp.defaults`); all optional."""

    directory: str | None = None
    """Remote directory (default: FTP_DIR)."""
    recursive: Bool | None = None
    """Also load files in subdirectories (default true)."""
    include: Globs | None = None
    """Globs of files to load (a glob with '/' matches the relative path, else the name)."""
    exclude: Globs | None = None
    """Globs of files to leave alone."""
    format: Format | None = None
    """auto (detected per file), csv, tsv, jsonl or text."""
    delimiter: Annotated[str, AfterValidator(_delimiter)] | None = None
    """One character (default: detected among ; , TAB |)."""
    encoding: Encoding | None = None
    """A Python codec name such as utf-8 or cp1252 (default: detected)."""
    decimal: Literal[".", ","] | None = None
    """Decimal separator (default: detected; ',' when thousands is '.', '.' when it is ',')."""
    thousands: Literal[".", ",", "'", " "] | None = None
    """Thousands separator of numbers such as 1.234,5 (default: none; never detected)."""
    skip_lines: Annotated[int, Field(ge=0, strict=True)] | None = None
    """Preamble lines before the header."""
    header: Bool | None = None
    """The first line names the columns (default true)."""
    null_values: Strings | None = None
    """Values read as NULL."""
    regex: Regex | None = None
    """For text files: named groups become columns."""
    timezone: TimeZone | None = None
    """IANA time zone of timestamps without an offset (default UTC)."""
    table: Annotated[str, AfterValidator(_table_name)] | None = None
    """Target table (default: the source name)."""
    min_age_seconds: Seconds | None = None
    """A file is loaded only once it is this old (default 10)."""
    stable_seconds: Seconds | None = None
    """Pause between the two looks that confirm a file is unchanged (default 2)."""
    final_line_seconds: Seconds | None = None
    """A last line without newline is taken once the file is this old (default 300)."""
    retries: Annotated[int, Field(ge=0, le=20, strict=True)] | None = None
    """Attempts of an FTP command on transient errors (default 4)."""
    retry_backoff_seconds: Annotated[float, Field(ge=0, le=600, strict=True)] | None = None
    """First pause between those attempts, doubling (default 1)."""
    chunk_lines: Annotated[int, Field(ge=1, le=10_000_000, strict=True)] | None = None
    """Lines per write (default 20000)."""
    parallel_files: Annotated[int, Field(ge=1, le=64, strict=True)] | None = None
    """Files loaded at once, each with its own sessions (default 2)."""


class FTPSection(_Strict):
    defaults: FTPSourceOptions | None = None
    """Options merged under every source."""
    sources: dict[Annotated[str, Field(pattern=_SOURCE_NAME)], FTPSourceOptions | None] | None = (
        None
    )
    """Log sources by name (lower-case; asset logs/<name>)."""


class MySQLTableOptions(_Strict):
    """Options of one MySQL table (or of `mysql.defaults`); all optional."""

    mode: Literal["auto", "incremental", "full_refresh"] | None = None
    """auto: incremental when a primary key and a cursor column exist."""
    cursor_column: str | None = None
    """Default: the one column with ON UPDATE CURRENT_TIMESTAMP."""
    overlap_seconds: Annotated[int, Field(ge=0, strict=True)] | None = None
    """Re-read window below the watermark (default 300)."""
    deletes: Literal["auto", "always", "off"] | None = None
    """auto: compare keys when the counts differ."""
    max_delete_fraction: Annotated[float, Field(gt=0, le=1, strict=True)] | None = None
    """Guard: never delete more than this share of the copy (default 0.5)."""
    batch_rows: Annotated[int, Field(ge=1, le=1_000_000, strict=True)] | None = None
    """Rows per COPY chunk (default 5000)."""
    lock_wait_seconds: Seconds | None = None
    """Wait for a run already syncing the table, then fail (default 30)."""
    fast_reader: Bool | None = None
    """Bulk row-packet reader (default true)."""
    verify_values: Bool | None = None
    """Compare every value with the MySQL snapshot (asset check; default false)."""


class MySQLSection(_Strict):
    defaults: MySQLTableOptions | None = None
    """Options for every table."""
    tables: dict[str, MySQLTableOptions | None] | None = None
    """Options by MySQL table name (matched without regard to case)."""


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


def _attribute_docstrings() -> dict[str, dict[str, str]]:
    """Per model class of this module, the string under each annotated attribute."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    found: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        docs = found.setdefault(node.name, {})
        for stmt, after in zip(node.body, node.body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return found


def json_schema() -> str:
    """The JSON Schema of the file, as committed under schema/: each option described by the
    docstring under it."""
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **ProjectConfig.model_json_schema(),
    }
    docs = _attribute_docstrings()
    for name, model in (("ProjectConfig", schema), *schema.get("$defs", {}).items()):
        for field, text in docs.get(name, {}).items():
            model["properties"][field].setdefault("description", text)
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
