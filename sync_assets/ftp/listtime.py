"""LIST-only servers and their listed times: local zones, minute and day precision.

A LIST line's time is whatever the server prints: often its local time (IIS, vsftpd with
`use_localtime`), to the minute, or only the day for files older than six months; MDTM is
UTC to the second (RFC 3659). Two rules keep unchanged files at one LIST per directory:

- The ledger keeps the time exactly as listed (`listed_mtime`). The same size and the same
  listed time as recorded: unchanged, whatever the zone or its daylight-saving shifts. It is
  recorded only once the listing was taken at least one precision step (60 s, or a day)
  plus LISTED_MARGIN after the version's precise mtime: by then the listed minute was over,
  so a later write shows a later minute (a same-size write within the same minute after the
  load would go unseen otherwise — which is why LIST alone never decides a version's mtime).
- Without a recorded listed time (a ledger written before it, or by an MLSD server), the
  listed time is corrected by the zone offset — FTP_LIST_TIME_OFFSET (`+05:45`, `-03:00`,
  `0`), or `auto` (the default): the MDTM of one listed file against its listed minute,
  rounded to a quarter hour, once per run and only when some file needs it.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from sync_assets.ftp.listing import RemoteFile
from sync_assets.ftp.store import LedgerEntry

LISTED_MARGIN = timedelta(seconds=60)  # clock skew between the server and us
_QUARTER = 900
_MAX_OFFSET = 14 * 3600  # UTC-12 .. UTC+14, the zones there are
_OFFSET_RE = re.compile(r"^([+-])(\d{1,2})(?::?(\d{2}))?$")


def parse_offset(raw: str) -> timedelta | None:
    """FTP_LIST_TIME_OFFSET: None for `auto`, else the zone offset of the listed times."""
    value = raw.strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("0", "utc", "gmt", "z"):
        return timedelta(0)
    match = _OFFSET_RE.match(value)
    seconds = 0
    if match:
        seconds = int(match[2]) * 3600 + int(match[3] or 0) * 60
    if not match or seconds > _MAX_OFFSET:
        raise ValueError(
            f"FTP_LIST_TIME_OFFSET={raw!r}: expected auto, 0, or a zone offset such as +02:00"
            " or -05:30 (the zone the LIST-only server prints its times in)"
        )
    return timedelta(seconds=-seconds if match[1] == "-" else seconds)


def detect_offset(listed: datetime, precise: datetime) -> timedelta | None:
    """The zone offset of a minute-precision listed time against the file's MDTM, or None
    if no plausible offset explains the pair (a file written between the two commands)."""
    # listed = floor_minute(precise + offset): offset = listed - precise + [0, 60) s.
    raw = (listed - precise).total_seconds() + 30
    offset = round(raw / _QUARTER) * _QUARTER
    if abs(offset) > _MAX_OFFSET or abs(raw - offset) > 31:
        return None
    return timedelta(seconds=offset)


def probe_file(files: list[RemoteFile]) -> RemoteFile | None:
    """The file whose MDTM tells the offset: the newest listed to the minute."""
    candidates = [f for f in files if f.listed is not None and f.precision == 60]
    return max(candidates, key=lambda f: f.listed or datetime.min, default=None)


def corrected(files: list[RemoteFile], offset: timedelta) -> list[RemoteFile]:
    """The files with their listed times turned to UTC."""
    return [
        dataclasses.replace(f, mtime=f.listed - offset) if f.listed is not None else f
        for f in files
    ]


def unchanged_by_listing(remote: RemoteFile, entry: LedgerEntry) -> bool:
    """Same size and the same listed time as the ledger recorded for this version."""
    return (
        remote.listed is not None
        and entry.listed_mtime is not None
        and remote.size == entry.size
        and remote.listed == entry.listed_mtime
    )


def listed_to_record(
    remote: RemoteFile, precise: datetime | None, listed_at: datetime
) -> datetime | None:
    """The listed time to keep for the version whose precise mtime is `precise`, or None
    while the listing may not be final for it yet (see the module's note)."""
    if remote.listed is None or precise is None:
        return None
    if listed_at < precise + timedelta(seconds=remote.precision) + LISTED_MARGIN:
        return None
    return remote.listed


def to_utc(
    files: list[RemoteFile],
    ledger: dict[str, LedgerEntry],
    offset: timedelta | None,
    modified: Callable[[str], datetime | None] | None,
    log: logging.Logger,
) -> tuple[list[RemoteFile], timedelta | None]:
    """The listed files with UTC times when the offset is known or found (`offset` None:
    auto; `modified`: MDTM of one path), and the offset for the rest of the run."""
    needed = not all(_listed_unchanged(f, ledger) for f in files)
    if offset is None and needed and modified is not None:
        offset = _detect(files, modified, log)  # one MDTM, only when some file needs it
    return (corrected(files, offset) if offset is not None else files), offset


def _listed_unchanged(remote: RemoteFile, ledger: dict[str, LedgerEntry]) -> bool:
    entry = ledger.get(remote.path)
    return entry is not None and unchanged_by_listing(remote, entry)


def _detect(
    files: list[RemoteFile], modified: Callable[[str], datetime | None], log: logging.Logger
) -> timedelta | None:
    probe = probe_file(files)
    if probe is None or probe.listed is None:
        return None
    precise = modified(probe.path)
    offset = detect_offset(probe.listed, precise) if precise is not None else None
    log.info(f"LIST times of this server: {_describe(offset)} (MDTM of {probe.path})")
    return offset


def _describe(offset: timedelta | None) -> str:
    if offset is None:
        return "zone unknown"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def listed_to_keep(
    files: list[RemoteFile],
    ledger: dict[str, LedgerEntry],
    verdicts: dict[str, str],
    listed_at: datetime,
) -> list[tuple[str, int, datetime]]:
    """(path, version, listed time) of the files found unchanged by their UTC time whose
    listed time the ledger does not have yet (the ledger dict is updated too)."""
    keep = []
    for remote in files:
        entry = ledger.get(remote.path)
        if entry is None or verdicts[remote.path] == "load":
            continue
        listed = listed_to_record(remote, entry.mtime, listed_at)
        if listed is not None and listed != entry.listed_mtime:
            keep.append((remote.path, entry.version, listed))
            entry.listed_mtime = listed
    return keep
