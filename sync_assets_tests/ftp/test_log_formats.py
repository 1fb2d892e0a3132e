"""The format registry: one pure test per log format (recognition, detection, parsing, and
whether the COPY fast path applies), plus the registry's own rules. No server."""

import pytest

from sync_assets.config_schema import FTPSourceOptions
from sync_assets.ftp.config import FORMATS, SourceConfig
from sync_assets.ftp.formats import (
    FORMAT_NAMES,
    LOG_FORMATS,
    FileFormat,
    LineParser,
    RejectedLine,
    configured_format,
    detect_format,
    format_for_name,
    sniff_format,
)

SOURCE = SourceConfig()


def test_csv() -> None:
    csv = LOG_FORMATS["csv"]
    assert format_for_name("press.CSV.gz") is csv
    assert sniff_format(["a;b", "1;2"]) is csv
    fmt = detect_format("x.csv", b"t;v\n1;2,5\n", SOURCE)
    assert (fmt.kind, fmt.delimiter, fmt.decimal, fmt.log_format) == ("csv", ";", ",", csv)
    with_columns = FileFormat("csv", "utf-8", ";", ",", ("t", "v"))
    assert LineParser(with_columns).parse("1;2,5") == {"t": "1", "v": "2,5"}
    with pytest.raises(RejectedLine, match="expected 2 fields, found 3"):
        LineParser(with_columns).parse("1;2;3")
    assert csv.fixed_columns
    assert csv.fast_path_applies(with_columns) and not csv.fast_path_applies(fmt)  # no header yet


def test_tsv() -> None:
    tsv = LOG_FORMATS["tsv"]
    assert format_for_name("a.tab") is tsv and format_for_name("a.tsv.gz") is tsv
    # A tab by default, stored as csv: a resumed file is read as the csv it was.
    fmt = detect_format("a.dat", b"a,b;c\n1,2;3\n", SourceConfig(format="tsv"))
    assert (fmt.kind, fmt.delimiter, fmt.log_format) == ("csv", "\t", LOG_FORMATS["csv"])
    # The name says tab even when the source says csv (and no delimiter is configured).
    assert detect_format("a.tsv", b"a;b\n1;2\n", SourceConfig(format="csv")).delimiter == "\t"
    assert tsv.fixed_columns and tsv.fast_path


def test_jsonl() -> None:
    jsonl = LOG_FORMATS["jsonl"]
    assert all(format_for_name(n) is jsonl for n in ("a.jsonl", "a.ndjson", "a.json.gz"))
    assert sniff_format(['{"a": 1}', ' {"a": 2}']) is jsonl
    fmt = detect_format("a.dat", b'{"a": 1}\n', SOURCE)
    assert (fmt.kind, fmt.regex, fmt.log_format) == ("jsonl", None, jsonl)
    parsed = LineParser(fmt).parse('{"a": 1, "b": true, "c": null, "d": [1]}')
    assert parsed == {"a": "1", "b": "true", "c": None, "d": "[1]"}
    with pytest.raises(RejectedLine, match="must be an object"):
        LineParser(fmt).parse("[1, 2]")
    assert not jsonl.fixed_columns and not jsonl.fast_path_applies(fmt)


def test_text() -> None:
    text = LOG_FORMATS["text"]
    assert format_for_name("a.log") is text and format_for_name("a.txt") is text
    assert sniff_format(["started", "stopped"]) is text
    plain = detect_format("a.log", b"started\n", SOURCE)
    assert LineParser(plain).parse("started") == {"line": "started"}
    regex = r"^(?P<level>\w+) (?P<msg>.*)$"
    fmt = detect_format("a.dat", b"INFO up\n", SourceConfig(regex=regex))  # auto + regex: text
    assert (fmt.kind, fmt.regex) == ("text", regex)
    assert LineParser(fmt).parse("WARN hot spindle") == {"level": "WARN", "msg": "hot spindle"}
    with pytest.raises(RejectedLine, match="does not match"):
        LineParser(fmt).parse("")
    assert not text.fixed_columns and not text.fast_path_applies(fmt)


def test_the_registry_names_every_option_value_once() -> None:
    assert FORMAT_NAMES == ("auto", "csv", "tsv", "jsonl", "text")
    assert frozenset(FORMAT_NAMES) == FORMATS
    assert configured_format("auto") is None
    assert all(configured_format(name) is f for name, f in LOG_FORMATS.items())
    # The config schema's choices are the registry's.
    assert FTPSourceOptions(format="JSONL").format == "jsonl"
    with pytest.raises(ValueError, match="auto"):
        FTPSourceOptions(format="xml")
    assert format_for_name("a.dat") is None
