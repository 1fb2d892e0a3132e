"""LIST parsing (Unix `ls -l` and MS-DOS/IIS formats) and MLSD facts: pure unit tests."""

from datetime import UTC, datetime

import pytest

from sync_assets.ftp.listing import RemoteFile, entry_from_mlsd, parse_list_line, parse_mlsd_time

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_unix_recent_file_has_minute_precision() -> None:
    entry = parse_list_line("-rw-r--r--   1 owner group     1234 Nov 27 09:15 log 1.csv", NOW)
    assert entry is not None
    assert (entry.name, entry.is_dir, entry.size) == ("log 1.csv", False, 1234)
    assert entry.mtime == datetime(2026, 11, 27, 9, 15, tzinfo=UTC)
    assert entry.precision == 60


def test_unix_old_file_has_year_and_day_precision() -> None:
    entry = parse_list_line("-rw-r--r-- 1 ftp ftp 99 Mar  3  2024 old;file.txt", NOW)
    assert entry is not None
    assert entry.name == "old;file.txt"
    assert entry.mtime == datetime(2024, 3, 3, tzinfo=UTC)
    assert entry.precision == 86400


def test_unix_date_in_the_future_means_last_year() -> None:
    entry = parse_list_line("-rw-r--r-- 1 u g 5 Dec 30 23:59 x.log", NOW)
    assert entry is not None and entry.mtime is not None
    assert entry.mtime.year == 2025


def test_unix_directory_without_group_column_and_symlink_skipped() -> None:
    directory = parse_list_line("drwxr-xr-x  2 owner  4096 Jan  1 10:00 sub dir", NOW)
    assert directory is not None and directory.is_dir and directory.name == "sub dir"
    assert parse_list_line("lrwxrwxrwx 1 u g 7 Jan 1 10:00 link -> target", NOW) is None
    assert parse_list_line("total 12", NOW) is None


def test_unix_name_with_leading_dots_and_non_ascii() -> None:
    entry = parse_list_line('-rw-r--r-- 1 u g 10 Nov 28 10:00 ..Grüße "q".csv', NOW)
    assert entry is not None and entry.name == '..Grüße "q".csv'


@pytest.mark.parametrize(
    ("line", "name", "is_dir", "size", "mtime"),
    [
        ("11-27-26  09:15PM                 1234 machine A.csv", "machine A.csv", False, 1234,
         datetime(2026, 11, 27, 21, 15, tzinfo=UTC)),
        ("01-02-2025  12:05AM       <DIR>          archive", "archive", True, 0,
         datetime(2025, 1, 2, 0, 5, tzinfo=UTC)),
        ("03-04-99  13:30                  7 y2k.log", "y2k.log", False, 7,
         datetime(1999, 3, 4, 13, 30, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_ms_dos_iis_format(line, name, is_dir, size, mtime) -> None:
    entry = parse_list_line(line, NOW)
    assert entry is not None
    assert (entry.name, entry.is_dir, entry.size, entry.mtime) == (name, is_dir, size, mtime)


def test_unknown_line_is_ignored() -> None:
    assert parse_list_line("this is not a listing line", NOW) is None


def test_mlsd_facts() -> None:
    entry = entry_from_mlsd("a.csv", {"type": "file", "size": "12", "modify": "20261128101112"})
    assert entry is not None and entry.size == 12
    assert entry.mtime == datetime(2026, 11, 28, 10, 11, 12, tzinfo=UTC)
    assert entry_from_mlsd(".", {"type": "cdir"}) is None
    assert parse_mlsd_time("20261128101112.123") == datetime(2026, 11, 28, 10, 11, 12, tzinfo=UTC)


def test_list_precision_tolerates_truncated_minutes() -> None:
    listed = RemoteFile("/a", "a", 10, datetime(2026, 1, 1, 10, 5, tzinfo=UTC), precision=60)
    assert listed.same_as(10, datetime(2026, 1, 1, 10, 5, 42, tzinfo=UTC))
    assert not listed.same_as(10, datetime(2026, 1, 1, 10, 6, 1, tzinfo=UTC))
    assert not listed.same_as(11, datetime(2026, 1, 1, 10, 5, 42, tzinfo=UTC))
