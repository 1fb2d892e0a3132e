"""Directory listings: MLSD facts, and LIST lines in Unix (`ls -l`) and MS-DOS/IIS formats.

LIST times have no seconds (and old Unix entries no time at all), so each entry records its
mtime precision: comparisons with the ledger allow for it, and a precise MDTM is asked for
when it matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}

_UNIX_RE = re.compile(
    r"^(?P<mode>[-dlbcps])[-rwxsStTlL@+.]{9}\S*\s+\d+\s+\S+\s+(?:\S+\s+)?(?P<size>\d+)\s+"
    r"(?P<mon>[A-Za-z]{3})\s+(?P<day>\d{1,2})\s+(?:(?P<hh>\d{1,2}):(?P<mm>\d{2})|(?P<year>\d{4}))"
    r" (?P<name>.+)$"
)
_DOS_RE = re.compile(
    r"^(?P<mon>\d{2})-(?P<day>\d{2})-(?P<year>\d{2,4})\s+(?P<hh>\d{1,2}):(?P<mm>\d{2})"
    r"(?P<ampm>[AaPp][Mm])?\s+(?:(?P<dir><DIR>)|(?P<size>\d+))\s+(?P<name>.+)$"
)


@dataclass(frozen=True)
class RemoteEntry:
    """One directory entry. `mtime` is UTC; `precision` is how many seconds it may be off."""

    name: str
    is_dir: bool
    size: int
    mtime: datetime | None
    precision: int = 1


@dataclass(frozen=True)
class RemoteFile:
    """A file found under a source: full remote path and path relative to the source root."""

    path: str
    relative: str
    size: int
    mtime: datetime | None
    precision: int = 1
    # A LIST line's time exactly as listed (the server's zone, `precision` seconds wide);
    # None from MLSD/SFTP. `mtime` is it corrected to UTC when the offset is known.
    listed: datetime | None = None

    def same_as(self, size: int, mtime: datetime | None) -> bool:
        """Same size, and mtime equal within this listing's precision."""
        if size != self.size:
            return False
        if mtime is None or self.mtime is None:
            return mtime is None and self.mtime is None
        if self.precision <= 1:
            return abs((mtime - self.mtime).total_seconds()) < 1
        # LIST truncates the time: the ledger's precise mtime falls in [listed, listed+prec).
        delta = (mtime - self.mtime).total_seconds()
        return -1 < delta < self.precision


def parse_mlsd_time(value: str | None) -> datetime | None:
    """MLSD/MDTM `YYYYMMDDHHMMSS[.sss]` (always UTC by RFC 3659)."""
    if not value:
        return None
    digits = value.strip().split(".")[0]
    try:
        return datetime.strptime(digits[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_list_line(line: str, now: datetime | None = None) -> RemoteEntry | None:
    """Parse one LIST line (Unix or MS-DOS format); None for totals/links/unknown lines."""
    line = line.rstrip("\r\n")
    if not line or line.lower().startswith("total "):
        return None
    unix = _UNIX_RE.match(line)
    if unix:
        return _unix_entry(unix, now or datetime.now(UTC))
    dos = _DOS_RE.match(line)
    if dos:
        return _dos_entry(dos)
    return None


def _unix_entry(match: re.Match[str], now: datetime) -> RemoteEntry | None:
    mode = match["mode"]
    if mode not in "-d":
        return None  # links, devices: never data files we can trust the size of
    month = _MONTHS.get(match["mon"].lower())
    if month is None:
        return None
    day = int(match["day"])
    if match["year"]:
        mtime, precision = datetime(int(match["year"]), month, day, tzinfo=UTC), 86400
    else:
        # `ls -l` omits the year for entries from the last ~6 months.
        mtime = datetime(now.year, month, day, int(match["hh"]), int(match["mm"]), tzinfo=UTC)
        if (mtime - now).days > 1:
            mtime = mtime.replace(year=now.year - 1)
        precision = 60
    name = match["name"]
    return RemoteEntry(name, mode == "d", int(match["size"]), mtime, precision)


def _dos_entry(match: re.Match[str]) -> RemoteEntry:
    year = int(match["year"])
    if year < 100:
        year += 2000 if year < 70 else 1900
    hour = int(match["hh"])
    ampm = (match["ampm"] or "").lower()
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm == "am" and hour == 12:
        hour = 0
    mtime = datetime(year, int(match["mon"]), int(match["day"]), hour, int(match["mm"]), tzinfo=UTC)
    is_dir = match["dir"] is not None
    return RemoteEntry(match["name"], is_dir, 0 if is_dir else int(match["size"]), mtime, 60)


def entry_from_mlsd(name: str, facts: dict[str, str]) -> RemoteEntry | None:
    kind = facts.get("type", "").lower()
    if kind not in ("file", "dir"):
        return None  # cdir/pdir/os-specific entries
    size = int(facts.get("size") or 0)
    return RemoteEntry(name, kind == "dir", size, parse_mlsd_time(facts.get("modify")), 1)
