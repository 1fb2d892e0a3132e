"""Detection from fields that hold values (past an empty stretch), thousands separators:
pure unit tests on files shaped like real machine exports."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest

from sync_assets.core.settings import ConfigError
from sync_assets.ftp.config import SourceConfig, load_sources
from sync_assets.ftp.formats import (
    SAMPLE_BYTES,
    FileFormat,
    detect,
    detect_format,
    detect_stream,
)
from sync_assets.ftp.sampling import KEPT_VALUES, READ_BLOCK, blocks, further_texts
from sync_assets.ftp.types import (
    BIGINT,
    DOUBLE,
    TEXT,
    BadValue,
    converter_for,
    infer_type,
    numeric_in_text,
)

SOURCE = SourceConfig()
START = datetime(2026, 11, 27, 22, 0)


def night_then_day(empty: int, valued: int, gap: str = "", delimiter: str = ";") -> bytes:
    """A press export: `empty` lines of a night without production (energy `gap`), then
    `valued` lines with decimal-comma energy; the counter and the machine always hold values."""
    lines = [delimiter.join(["Zeit", "Maschine", "Energie", "Zähler"])]
    for i in range(empty + valued):
        stamp = (START + timedelta(seconds=10 * i)).strftime("%d.%m.%Y %H:%M:%S")
        energy = gap if i < empty else f"{100 + i % 50},{i % 10}"
        lines.append(delimiter.join([stamp, "Presse 1", energy, str(i)]))
    return ("\n".join(lines) + "\n").encode()


def test_a_night_without_values_does_not_decide_the_decimal_separator() -> None:
    data = night_then_day(empty=3000, valued=500)
    assert data.index(b"Presse 1;1") > SAMPLE_BYTES  # the first value is past the head
    # The head alone holds no value of `Energie`: nothing says comma (the old verdict: ".").
    assert detect_format("press.csv", data[:SAMPLE_BYTES], SOURCE).decimal == "."
    stream = io.BytesIO(data)
    detection = detect_stream("press.csv", stream, SOURCE)
    assert detection.fmt.decimal == ","
    assert stream.tell() == 0  # left at its start for the load
    energy = detection.values["Energie"]
    assert energy and all("," in v for v in energy)
    assert infer_type(energy, detection.fmt.decimal) == DOUBLE
    assert infer_type(detection.values["Zähler"], ",") == BIGINT


@pytest.mark.parametrize("gap", ["-", "NULL", "n/a", "NaN", "  "])
def test_null_sentinels_are_not_values(gap: str) -> None:
    detection = detect_stream("press.csv", io.BytesIO(night_then_day(2500, 100, gap)), SOURCE)
    assert detection.fmt.decimal == ","
    assert gap not in detection.values["Energie"]
    assert infer_type(detection.values["Energie"], ",") == DOUBLE


def test_sentinels_of_the_source_are_the_ones_skipped() -> None:
    """`--` is a value unless the source names it a sentinel."""
    data = night_then_day(2500, 100, "--")
    assert "--" in detect_stream("a.csv", io.BytesIO(data), SOURCE).values["Energie"]
    own = SourceConfig(null_values=("", "--"))
    detection = detect_stream("a.csv", io.BytesIO(data), own)
    assert "--" not in detection.values["Energie"] and detection.fmt.decimal == ","


def test_reading_on_stops_once_every_column_has_values() -> None:
    data = night_then_day(empty=3000, valued=200_000)  # ~9 MB
    stream = io.BytesIO(data)
    detection = detect("press.csv", stream.read(SAMPLE_BYTES), SOURCE, more=blocks(stream))
    assert detection.fmt.decimal == ","
    assert stream.tell() == SAMPLE_BYTES + READ_BLOCK  # one block past the head, not the file


def test_the_look_ahead_is_bounded() -> None:
    """Past the bound nothing more is read: a column still without value decides nothing."""
    data = night_then_day(empty=20_000, valued=100)
    stream = io.BytesIO(data)
    head = stream.read(SAMPLE_BYTES)
    bounded = detect("a.csv", head, SOURCE, more=blocks(stream, limit=READ_BLOCK // 4))
    assert bounded.fmt.decimal == "." and "Energie" not in bounded.values
    assert stream.tell() == SAMPLE_BYTES + READ_BLOCK // 4
    assert detect_stream("a.csv", io.BytesIO(data), SOURCE).fmt.decimal == ","


def test_a_small_file_is_read_from_its_head_alone() -> None:
    data = night_then_day(empty=40, valued=5)
    assert len(data) < SAMPLE_BYTES
    assert detect_format("press.csv", data, SOURCE).decimal == ","


def test_kept_values_are_bounded_per_column() -> None:
    detection = detect_stream("a.csv", io.BytesIO(night_then_day(0, 5000)), SOURCE)
    assert {len(v) for v in detection.values.values()} == {KEPT_VALUES}


def test_mixed_columns_each_keep_their_own_values() -> None:
    """Text, an integer counter, decimal-comma values, version strings with points and a
    column empty throughout (no values: its type is not settled by this file)."""
    rows = [
        f"{i};Schicht {'ABC'[i % 3]};{i % 7},{i % 9};V1.{i % 4}.2;;{'ja' if i % 2 else 'nein'}"
        for i in range(3000)
    ]
    data = ("id;Schicht;Druck;Firmware;Kommentar;Aktiv\n" + "\n".join(rows) + "\n").encode()
    detection = detect_stream("m.csv", io.BytesIO(data), SOURCE)
    assert (detection.fmt.delimiter, detection.fmt.decimal) == (";", ",")
    values = detection.values
    assert "Kommentar" not in values
    assert infer_type(values["id"], ",") == BIGINT
    assert infer_type(values["Druck"], ",") == DOUBLE
    assert infer_type(values["Firmware"], ",") == TEXT
    assert infer_type(values["Schicht"], ",") == TEXT


def test_point_decimals_win_over_a_few_commas_and_a_comma_delimiter_means_points() -> None:
    rows = [f"{i};{i}.5;{'1,5' if i == 7 else 'x'}" for i in range(100)]
    data = ("a;b;c\n" + "\n".join(rows) + "\n").encode()
    assert detect_format("p.csv", data, SOURCE).decimal == "."
    assert detect_format("c.csv", b"a,b\n1,2\n3,4\n", SOURCE).decimal == "."


def test_without_header_the_values_are_named_by_position() -> None:
    body = b"".join(b"%d;;\n" % i for i in range(3000)) + b"5;12,5;x\n" * 30
    detection = detect_stream("h.csv", io.BytesIO(body), SourceConfig(header=False))
    assert detection.fmt.decimal == ","
    assert set(detection.values) == {"column_1", "column_2", "column_3"}
    assert detection.values["column_2"][0] == "12,5"


def test_a_character_cut_between_blocks_stays_whole() -> None:
    text = "a;b\n" + "x;Straße\n" * 3
    raw = text.encode("utf-8")
    cut = raw.index("ß".encode()) + 1  # inside the two bytes of ß
    # The head ends inside the first data line: that line is continued, not lost.
    texts = list(further_texts(raw[:5], [raw[5:cut], raw[cut:]], "utf-8"))
    assert "\n".join(texts).split("\n") == ["x;Straße"] * 3


def test_configured_decimal_is_never_overridden() -> None:
    data = night_then_day(3000, 100)
    fmt = detect_stream("a.csv", io.BytesIO(data), SourceConfig(decimal=".")).fmt
    assert fmt.decimal == "."


# --- text columns that would have been numeric ---------------------------------------------


def test_text_columns_whose_values_would_be_numeric_are_named() -> None:
    table = {"Energie": TEXT, "Maschine": TEXT, "Zähler": BIGINT}
    sampled = {"Energie": ["12,5", "13,0"], "Maschine": ["Presse 1"], "Zähler": ["1"]}
    assert numeric_in_text(table, sampled, ",") == [("Energie", DOUBLE)]
    assert numeric_in_text(table, {"Energie": ["1", "2"]}, ",") == [("Energie", BIGINT)]
    assert numeric_in_text(table, {"Neu": ["1"]}, ",") == []  # not in the table: typed anew
    assert numeric_in_text(table, {"Energie": ["12,5"]}, ".") == []  # as text it is right


# --- thousands separators ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("thousands", "decimal", "value", "expected"),
    [
        (".", ",", "1.234,5", "1234.5"),
        (".", ",", "-12.345.678,25", "-12345678.25"),
        (".", ",", "12,5", "12.5"),
        (".", ",", " 7 ", "7"),
        (",", ".", "1,234.5", "1234.5"),
        ("'", ".", "1'234'567.5", "1234567.5"),
        (" ", ",", "1 234,5", "1234.5"),
    ],
)
def test_thousands_separators_in_doubles(thousands, decimal, value, expected) -> None:
    assert converter_for(DOUBLE, decimal, thousands)(value) == expected


def test_thousands_separators_in_integers_and_misplaced_ones() -> None:
    assert converter_for(BIGINT, ",", ".")("12.345.678") == "12345678"
    for value in ("1.5", "1.23,4", "12.34", "1..234", ".234"):
        with pytest.raises(BadValue, match="misplaced thousands separator"):
            converter_for(DOUBLE, ",", ".")(value)
    assert infer_type(["1.234", "5", "12.000"], ",", thousands=".") == BIGINT
    assert infer_type(["1.234,5", "5"], ",", thousands=".") == DOUBLE
    # Without the option, 1.234 is a point decimal (never guessed to be a thousand).
    assert converter_for(DOUBLE, ".")("1.234") == "1.234"


def test_thousands_option_and_its_invalid_combinations() -> None:
    press = load_sources({"sources": {"press": {"thousands": ".", "delimiter": ";"}}})[0]
    assert (press.thousands, press.decimal) == (".", ",")
    assert SourceConfig(thousands=",", delimiter=";").decimal == "."
    assert SourceConfig(thousands="'").decimal is None  # the decimal is still detected
    bad = [
        ({"thousands": ",", "decimal": ","}, "also the decimal separator"),
        ({"thousands": ".", "decimal": "."}, "also the decimal separator"),
        ({"thousands": "'", "delimiter": "'"}, "also the delimiter"),
        ({"thousands": " ", "delimiter": " "}, "also the delimiter"),
        ({"thousands": ","}, "explicit `delimiter`"),
        ({"thousands": "_"}, "must be one of"),
    ]
    for options, message in bad:
        with pytest.raises(ConfigError, match=message):
            load_sources({"sources": {"press": options}})


def test_a_thousands_source_reads_line_by_line_and_keeps_its_option() -> None:
    source = SourceConfig(thousands=".", delimiter=";")
    data = b"t;v\n1;1.234,5\n2;12,5\n"
    fmt = detect_format("a.csv", data, source)
    assert (fmt.decimal, fmt.thousands) == (",", ".")
    with_columns = FileFormat(**{**fmt.__dict__, "columns": ("t", "v")})
    assert not with_columns.log_format.fast_path_applies(with_columns)
    assert FileFormat.from_json(with_columns.to_json()) == with_columns
    plain = detect_format("a.csv", data, SourceConfig())
    plain = FileFormat(**{**plain.__dict__, "columns": ("t", "v")})
    assert plain.thousands is None and plain.log_format.fast_path_applies(plain)


def test_past_the_head_ragged_lines_are_skipped_and_quoted_ones_read() -> None:
    """Past the head: a line of another width (a reject later) gives no value; a block with
    quotes is read line by line, its quoted fields whole."""
    night = b"".join(b"%d;;x\n" % i for i in range(6000))
    ragged = b"1;9.5;x;extra\n" * 30  # point decimals, but on lines of the wrong width
    quoted = b'2;"12,5";"a;b"\n' * 30
    detection = detect_stream("r.csv", io.BytesIO(b"a;b;c\n" + night + ragged + quoted), SOURCE)
    assert detection.fmt.decimal == ","
    assert set(detection.values["b"]) == {"12,5"}  # unquoted, from the whole field
