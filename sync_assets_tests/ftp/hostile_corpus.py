"""A generated corpus of good and hostile log files for the per-file isolation tests.

Good files have known rows (id, value, ts) so their values can be checked exactly; each odd
file says what it may end as: `loaded` (possibly with rejects) or `failed` with a reason.
"""

from __future__ import annotations

import codecs
import gzip
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

HEADER = "id;value;ts"
BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)
LOADED = frozenset({"loaded", "rejected"})
FAILED = frozenset({"failed"})
ANY_END = LOADED | FAILED


@dataclass
class Expect:
    """What a file may end as in the ledger after one run."""

    statuses: frozenset[str]
    reason: str | None = None  # a failed file's error contains this
    rows: list[tuple[int, float | None, datetime]] | None = None  # a good file's exact rows
    rejected_lines: set[int] | None = None  # exactly these line numbers are rejects
    min_rows: int = 0


@dataclass
class Corpus:
    files: dict[str, bytes] = field(default_factory=dict)
    expect: dict[str, Expect] = field(default_factory=dict)

    def add(self, name: str, content: bytes, expect: Expect) -> None:
        assert name not in self.files, name
        self.files[name] = content
        self.expect[name] = expect

    @property
    def good(self) -> list[str]:
        return [n for n, e in self.expect.items() if e.rows is not None]


def good_rows(k: int) -> list[tuple[int, float | None, datetime]]:
    """File k's rows: 50 ids, value id/4 (exact in binary; NULL for every tenth id)."""
    first = (k + 1) * 1000
    return [
        (i, None if i % 10 == 0 else i / 4, BASE_TIME + timedelta(seconds=i))
        for i in range(first, first + 50)
    ]


def good_file(k: int) -> tuple[str, bytes]:
    """Good files in five shapes: plain, gzip, CRLF, UTF-8 BOM, TSV; half with decimal comma."""
    shape = k % 5
    delimiter = "\t" if shape == 4 else ";"
    comma = k % 2 == 1
    lines = [HEADER.replace(";", delimiter)]
    for i, value, ts in good_rows(k):
        text = "NaN" if value is None else f"{value}".replace(".", "," if comma else ".")
        lines.append(delimiter.join([str(i), text, ts.strftime("%Y-%m-%d %H:%M:%S")]))
    newline = "\r\n" if shape == 2 else "\n"
    body = (newline.join(lines) + newline).encode()
    name = f"{k:03d}_good.{'tsv' if shape == 4 else 'csv'}"
    if shape == 1:
        return name + ".gz", gzip.compress(body, mtime=0)
    if shape == 3:
        return name, codecs.BOM_UTF8 + body
    return name, body


def _csv(*lines: str) -> bytes:
    return ("\n".join([HEADER, *lines]) + "\n").encode()


TS = "2026-11-28 10:00:00"


def build(huge_line_bytes: int) -> Corpus:
    corpus = Corpus()
    for k in range(40):
        name, content = good_file(k)
        corpus.add(name, content, Expect(LOADED, rows=good_rows(k)))
    rng = random.Random(19)
    odd = _odd_files(rng)
    line = b"1;" + b"7" * huge_line_bytes + b";" + TS.encode() + b"\n"
    odd["huge_single_line.csv"] = (
        _csv() + line + _csv(f"2;1;{TS}")[len(HEADER) + 1 :],
        Expect(FAILED, reason="longer than"),
    )
    # Interleave the odd files with the good ones in listing order.
    for index, (name, (content, expect)) in enumerate(sorted(odd.items())):
        corpus.add(f"{index % 40:03d}_odd_{name}", content, expect)
    return corpus


def _odd_files(rng: random.Random) -> dict[str, tuple[bytes, Expect]]:
    files: dict[str, tuple[bytes, Expect]] = {
        "unbalanced_quote.csv": (
            _csv(f'1;"2,5;{TS}', f"2;3;{TS}"),
            Expect(LOADED, rejected_lines={2}, min_rows=1),
        ),
        "multiline_quote.csv": (
            _csv('1;"first line', f'second line";{TS}', f"3;4;{TS}"),
            Expect(LOADED, min_rows=1),
        ),
        # The example of issue 19, comma-separated: the good line loads, whatever the quoted one.
        "issue_example.csv": (
            b'id,text,n\n1,"first line\nsecond line",10\n2,ok,20\n',
            Expect(LOADED, min_rows=1),
        ),
        "quote_in_last_byte.csv": (_csv(f"1;2;{TS}")[:-1] + b'"', Expect(LOADED)),
        "quote_only.csv": (b'"', Expect(ANY_END)),
        "nul_in_head.csv": (_csv(f"1;2\x00;{TS}"), Expect(FAILED, reason="binary")),
        "nul_after_4k.csv": (
            _csv(*[f"{i};{i};{TS}" for i in range(200)], f"999;1\x00;{TS}"),
            Expect(LOADED, rejected_lines={202}, min_rows=200),
        ),
        "mixed_encodings.csv": (
            b"id;value;ts;note\n1;1;"
            + TS.encode()
            + ";Grüße\n".encode()
            + b"2;2;"
            + TS.encode()
            + b";Gr\xfc\xdfe\n",
            Expect(LOADED),
        ),
        "mixed_encodings_late.csv": (
            _csv(*[f"{i};{i};{TS}" for i in range(4000)]) + b"5000;1;" + TS.encode() + b"\xfc\n",
            Expect(LOADED, min_rows=4000),
        ),
        "header_only.csv": (_csv(), Expect(LOADED)),
        "end_of_copy_marker.csv": (
            _csv(f"1;1;{TS}", "\\.", f"2;2;{TS}"),
            Expect(LOADED, rejected_lines={3}, min_rows=2),
        ),
        "empty.csv": (b"", Expect(LOADED)),
        "only_newlines.csv": (b"\n\n\n\n", Expect(LOADED)),
        "cr_only_line_ends.csv": (_csv(f"1;2;{TS}").replace(b"\n", b"\r"), Expect(ANY_END)),
        "ragged_rows.csv": (
            _csv(
                f"1;2;{TS}", "2;3", f"3;4;{TS};extra", ";;;;;;", *[f"{i};1;{TS}" for i in range(9)]
            ),
            Expect(LOADED, rejected_lines={3, 4, 5}, min_rows=10),
        ),
        "not_gzip.csv.gz": (b"id;value\n1;2\n", Expect(FAILED, reason="gzip")),
        "truncated.csv.gz": (
            gzip.compress(_csv(*[f"{i};{i};{TS}" for i in range(3000)]))[:2000],
            Expect(FAILED, reason="end-of-stream"),
        ),
        "gzip_of_garbage.csv.gz": (gzip.compress(rng.randbytes(20_000)), Expect(ANY_END)),
        "numeric_overflow.csv": (
            _csv(
                f"99999999999999999999;1;{TS}",
                f"1;1e999;{TS}",
                f"2;-1e-999;{TS}",
                f"9223372036854775807;1;{TS}",
                f"-9223372036854775809;1;{TS}",
            ),
            # Integers beyond bigint widen the column to double (documented), so they load.
            Expect(LOADED, rejected_lines={3, 4}, min_rows=3),
        ),
        "dates_year_0_and_9999.csv": (
            _csv(
                "1;1;0000-01-01 00:00:00",
                "2;1;9999-12-31 23:59:59",
                "3;1;0001-01-01 00:00:00+14:00",
                "4;1;9999-12-31 23:59:59-05:00",
            ),
            Expect(LOADED, rejected_lines={2}, min_rows=3),
        ),
        # All valid for PostgreSQL: the fast path, whose newest-record sample meets year 10000
        # in UTC (9999-12-31 at -05:00).
        "dates_9999_fast_path.csv": (
            _csv(*[f"{i};1;9999-12-31 23:59:59-05:00" for i in range(10)]),
            Expect(LOADED, rejected_lines=set(), min_rows=10),
        ),
        "header_bad_quote.csv": (b'id;"value;ts\n1;2;3\n', Expect(FAILED, reason="quoting")),
        "too_many_columns.csv": (
            (";".join(f"c{i}" for i in range(1700)) + "\n" + ";".join("1" * 1700) + "\n").encode(),
            Expect(FAILED, reason="1600"),
        ),
        "long_and_hostile_names.csv": (
            ("x" * 300 + ';"a"");DROP TABLE t;--";_source_file;_line_number\n1;2;3;4\n').encode(),
            Expect(LOADED, rejected_lines=set(), min_rows=1),
        ),
        "duplicate_names.csv": (b"id;id;id\n1;2;3\n", Expect(LOADED, min_rows=1)),
        "utf16_with_bom.csv": (_csv(f"1;2;{TS}").decode().encode("utf-16"), Expect(ANY_END)),
        "events.jsonl": (
            b'{"id": 1, "value": 2.5, "ts": "2026-11-28 10:00:00"}\n'
            b"{not json\n[1, 2]\n"
            b'{"id": "abc", "nested": {"a": [1, {"b": null}]}}\n'
            b'{"id": 123456789012345678901234567890}\n'
            b'{"key\\u0000nul": "v\\u0000"}\n',
            Expect(LOADED, min_rows=1),
        ),
        "sentinels_and_specials.csv": (
            _csv(
                f"-;NaN;{TS}",
                "NULL;n/a;",
                f"1;Infinity;{TS}",
                "2;-inf;now",
                "3;nan;epoch",
                f" 4 ; 5,5 ;{TS}",
            ),
            Expect(LOADED),
        ),
        "many_rejects.csv": (
            _csv(*[f"x{i};y;z" for i in range(3000)], f"1;1;{TS}"),
            Expect(LOADED, min_rows=1),
        ),
        "long_line_1mb.csv": (
            _csv(f"1;{'9' * 1_000_000};{TS}", f"2;2;{TS}"),
            Expect(LOADED, rejected_lines={2}, min_rows=1),
        ),
        "backslashes_and_tabs.csv": (
            b"id;value;ts;note\n1;1;"
            + TS.encode()
            + b";a\\b\tc\\N\n2;2;"
            + TS.encode()
            + b";\\.\n",
            Expect(LOADED, rejected_lines=set(), min_rows=2),
        ),
        "delimiters_mixed.csv": (b"a,b;c|d\n1,2;3|4\n5;6,7\n", Expect(ANY_END)),
        "empty.csv.gz": (b"", Expect(ANY_END)),
        "empty_gzip_member.csv.gz": (gzip.compress(b""), Expect(LOADED)),
        "grows_while_read.csv": (
            _csv(*[f"{i};{i};{TS}" for i in range(100)]),
            Expect(LOADED, rejected_lines=set(), min_rows=100),
        ),
        "shrinks_while_read.csv": (
            _csv(*[f"{i};{i};{TS}" for i in range(100)]),
            Expect(frozenset({"unstable"})),
        ),
        "text_without_regex.log": (
            b"line one\n\x1b[31mred\x1b[0m\n" + "ünïcödé\n".encode(),
            Expect(LOADED, min_rows=3),
        ),
    }
    for seed in range(12):
        data = random.Random(seed).randbytes(rng.randint(1, 30_000))
        files[f"random_bytes_{seed:02d}.csv"] = (data, Expect(ANY_END))
        without_nul = data.replace(b"\x00", b"\x01")
        files[f"random_no_nul_{seed:02d}.csv"] = (without_nul, Expect(ANY_END))
    for seed in range(6):
        files[f"random_text_{seed:02d}.csv"] = (
            _random_text(random.Random(100 + seed)),
            Expect(ANY_END),
        )
    return files


def _random_text(rng: random.Random) -> bytes:
    """Lines built from CSV-ish pieces: quotes, delimiters, numbers, dates, odd characters."""
    pieces = [
        '"',
        '""',
        ";",
        ",",
        "\t",
        "1",
        "-7",
        "1,5",
        "2.5e3",
        "1e999",
        TS,
        "0000-01-01",
        "true",
        "NaN",
        "-",
        "\\",
        "é",
        "\u2028",
        "\r",
        " ",
        "abc",
        "\x7f",
        "9" * 25,
    ]
    lines = [HEADER]
    for _ in range(rng.randint(1, 300)):
        lines.append("".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))))
    return ("\n".join(lines) + "\n").encode()


CHANGES = {
    "grows_while_read.csv": lambda old: old + f"100;100;{TS}\n".encode(),
    "shrinks_while_read.csv": lambda old: _csv(f"7;7;{TS}"),
}
