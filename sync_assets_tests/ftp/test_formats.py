"""Format detection, header cleaning and type inference: pure unit tests."""

import pytest

from sync_assets.ftp.config import SourceConfig, load_sources
from sync_assets.ftp.formats import UnparsableFileError, detect_format, header_columns
from sync_assets.ftp.types import (
    BIGINT,
    BOOLEAN,
    DOUBLE,
    TEXT,
    TIMESTAMP,
    BadValue,
    float_converter,
    infer_type,
    to_timestamp,
)

SOURCE = SourceConfig()


def test_semicolon_with_decimal_comma_is_detected() -> None:
    sample = b"ts;machine;temp\n2026-01-01 10:00:00;m1;12,5\n2026-01-01 10:01:00;m1;13,25\n"
    fmt = detect_format("export.csv", sample, SOURCE)
    assert (fmt.kind, fmt.delimiter, fmt.decimal, fmt.encoding) == ("csv", ";", ",", "utf-8")


def test_encodings_bom_and_cp1252() -> None:
    assert detect_format("a.csv", b"\xef\xbb\xbfa,b\n1,2\n", SOURCE).encoding == "utf-8-sig"
    assert (
        detect_format("a.csv", "a;b\nStra\xdfe;1\n".encode("cp1252"), SOURCE).encoding == "cp1252"
    )


def test_tsv_jsonl_text_and_content_sniffing() -> None:
    assert detect_format("x.tsv", b"a\tb\n1\t2\n", SOURCE).delimiter == "\t"
    assert detect_format("x.dat", b'{"a": 1}\n{"a": 2}\n', SOURCE).kind == "jsonl"
    assert detect_format("x.log", b"started\nstopped\n", SOURCE).kind == "text"
    assert detect_format("noext", b"a|b|c\n1|2|3\n", SOURCE).delimiter == "|"


def test_binary_content_is_unparsable() -> None:
    with pytest.raises(UnparsableFileError):
        detect_format("x.csv", b"\x00\x01\x02binary", SOURCE)


def test_header_names_are_cleaned_and_unique() -> None:
    assert header_columns(' a ;;a;"x;y";_line_number', ";") == (
        "a", "column_2", "a_2", "x;y", "data_line_number",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("values", "decimal", "expected"),
    [
        (["1", "-2", "+3"], ".", BIGINT),
        (["1", "2,5"], ",", DOUBLE),
        (["1.5", "1e3"], ".", DOUBLE),
        (["true", "no"], ".", BOOLEAN),
        (["2026-01-01 10:00:00", "28.11.2026 10:00", "2026-01-01T10:00:00Z"], ".", TIMESTAMP),
        (["2026", "20260101"], ".", BIGINT),
        (["1", "x"], ".", TEXT),
        ([*(["1"] * 19), "oops"], ".", BIGINT),
        ([], ".", TEXT),
    ],
)
def test_type_inference(values: list[str], decimal: str, expected: str) -> None:
    assert infer_type(values, decimal) == expected


def test_converters() -> None:
    assert float_converter(",")("12,5") == "12.5"
    for value in ("1e999", "9" * 400, "-1e400", "1e-400"):
        with pytest.raises(BadValue, match="out of range"):
            float_converter(".")(value)
    assert float_converter(".")("0.000") == "0.000"
    assert to_timestamp("28.11.2026 10:02:03") == "2026-11-28 10:02:03"
    with pytest.raises(BadValue):
        to_timestamp("2026-13-01 10:00")


def test_config_sources_and_validation() -> None:
    sources = load_sources(
        {
            "defaults": {"min_age_seconds": 30},
            "sources": {
                "press": {"directory": "/press", "include": "*.csv", "delimiter": ";"},
                "robots": {"format": "text", "regex": r"(?P<ts>\S+) (?P<msg>.*)"},
            },
        }
    )
    assert [s.name for s in sources] == ["press", "robots"]
    assert sources[0].min_age_seconds == 30 and sources[0].include == ("*.csv",)
    assert sources[0].wants("a.csv") and not sources[0].wants("a.log")
    assert load_sources({})[0].name == "machine_logs"
    with pytest.raises(ValueError, match="unknown option"):
        load_sources({"sources": {"x": {"colour": "red"}}})
    with pytest.raises(ValueError, match="both write table"):
        load_sources({"sources": {"a": {"table": "t"}, "b": {"table": "t"}}})
    with pytest.raises(ValueError, match="named groups"):
        load_sources({"sources": {"x": {"regex": "abc"}}})
