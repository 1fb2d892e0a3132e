"""Medians over repeats, ratios to the floors, the printed table and the JSON file."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from benchmarks.measure import Measurement
from benchmarks.verdicts import FLOORS_OF_TARGETS, ISSUE_18_TARGETS, judge_all, verdict_table

MB = 1_000_000
PHASES = (
    "launch_to_definitions",
    "launch_to_step_start",
    "launch_to_first_row",
    "step_seconds",
    "launch_to_step_end",
    "launch_to_runner_done",
)
ALSO_IN_TARGETS = ("full_vs_sling", "incremental_vs_sling", "no_change_vs_sling", "deletes")
METADATA_SHOWN = (
    "mode", "rows_read", "rows_inserted", "rows_updated", "rows_deleted", "files_loaded",
    "rows_loaded", "rows_rejected", "duration_seconds", "stable_wait_seconds",
)  # fmt: skip


def _shown(value: float | None, spec: str) -> str:
    """A figure, or a dash where the row did not measure it (an in-process measurement has
    no CPU or RSS of its own; a row without data bytes no MB/s)."""
    return "—" if value is None or value != value else format(value, spec)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def code_version() -> dict[str, str]:
    """The commit measured, and whether the engines' files differed from it (shared tree)."""
    repo = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "unknown"

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_engine_files": git("status", "--porcelain", "--", "sync_assets"),
    }


def _median_of(extras: list[dict[str, Any]], name: str) -> float:
    values = [float(e[name]) for e in extras if e.get(name) is not None]
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    """One line of the table: a measured thing, its repeats, and what it is compared with."""

    key: str
    label: str
    rows: int
    data_bytes: int
    samples: list[Measurement] = field(default_factory=list)
    floor: str | None = None  # key of the row this one is compared with
    notes: dict[str, Any] = field(default_factory=dict)

    def median(self, attr: str) -> float:
        values = [float(getattr(m, attr)) for m in self.samples if getattr(m, attr) is not None]
        return statistics.median(values) if values else float("nan")

    @property
    def wall(self) -> float:
        return self.median("wall")

    def to_json(self) -> dict[str, Any]:
        samples = [
            {k: v for k, v in asdict(m).items() if k not in {"stdout", "stderr"}}
            for m in self.samples
        ]
        return {
            "key": self.key,
            "label": self.label,
            "rows": self.rows,
            "bytes": self.data_bytes,
            "floor": self.floor,
            "median": {
                a: self.median(a)
                for a in (
                    "wall",
                    "cpu",
                    "peak_rss",
                    "server_cpu",
                    "extra_server_cpu",
                    "first_row",
                    "load_before",
                )
            },
            "samples": samples,
            "notes": self.notes,
        }


@dataclass
class Report:
    args: dict[str, Any]
    rows: dict[str, Row] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def add(self, row: Row) -> Row:
        self.rows[row.key] = row
        return row

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks[name] = {"ok": ok, "detail": detail}

    @property
    def ok(self) -> bool:
        """Every check of this project's output passed (a peer's check is reported, not
        judged: its type mapping is its own business)."""
        return all(c["ok"] for name, c in self.checks.items() if not name.startswith("peer:"))

    def ratio(self, row: Row) -> float | None:
        floor = self.rows.get(row.floor or "")
        if floor is None or not floor.samples or not row.samples:
            return None
        return row.wall / floor.wall

    # --- output ----------------------------------------------------------------------------

    def _figures(self, row: Row) -> tuple[float, float, float, float, float, float, float | None]:
        """wall s, rows/s, MB/s, CPU s, server CPU s, peak RSS MB, ratio to the floor."""
        wall = row.wall
        return (
            wall,
            row.rows / wall,
            row.data_bytes / MB / wall,
            row.median("cpu"),
            row.median("server_cpu"),
            row.median("peak_rss") / 2**20,
            self.ratio(row),
        )

    def table(self) -> str:
        header = (
            f"{'what':<46} {'wall s':>8} {'rows/s':>10} {'MB/s':>7} {'CPU s':>7} "
            f"{'srv CPU':>7} {'peak MB':>8} {'x floor':>8} {'load':>5}  floor"
        )
        lines = [header, "-" * len(header)]
        for row in self.rows.values():
            if not row.samples:
                continue
            wall, rate, mb_s, cpu, server_cpu, rss_mb, ratio = self._figures(row)
            lines.append(
                f"{row.label:<46} {wall:>8.2f} {rate:>10,.0f} {mb_s:>7.1f} {cpu:>7.2f} "
                f"{server_cpu:>7.2f} {rss_mb:>8.0f} "
                f"{'' if ratio is None else f'{ratio:.2f}':>8} {row.median('load_before'):>5.1f}"
                f"  {row.floor or ''}"
            )
        return "\n".join(lines)

    def markdown(self) -> str:
        """The same table in Markdown (for docs/performance.md); also stored in the JSON."""
        lines = [
            "| what | wall s | rows/s | MB/s | CPU s | server CPU s | peak RSS MB | x floor |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for row in self.rows.values():
            if not row.samples:
                continue
            wall, rate, mb_s, cpu, server_cpu, rss_mb, ratio = self._figures(row)
            floor = self.rows[row.floor].label if ratio is not None and row.floor else ""
            cells = (
                _shown(mb_s if row.data_bytes else None, ".1f"),
                _shown(cpu, ".2f"),
                _shown(server_cpu, ".2f"),
                _shown(rss_mb or None, ".0f"),
            )
            lines.append(
                f"| {_md_cell(row.label)} | {wall:.2f} | {rate:,.0f} | {' | '.join(cells)} | "
                f"{'' if ratio is None else f'{ratio:.2f} ({_md_cell(floor)})'} |"
            )
        return "\n".join(lines)

    def details(self) -> str:
        """Where the project's time goes (medians of the runner's phase stamps) and what the
        run's metadata said it did."""
        lines = []
        for row in self.rows.values():
            extras = [m.extra for m in row.samples if m.extra]
            if not extras:
                continue
            phases = ", ".join(
                f"{name.replace('launch_to_', 'launch→')} {_median_of(extras, name):.2f}s"
                for name in PHASES
                if _median_of(extras, name) == _median_of(extras, name)  # not NaN
            )
            lines.append(f"  {row.label}: {phases or 'no phase stamps (CLI run)'}")
            if row.median("extra_server_cpu") > 0:
                lines.append(f"      of srv CPU, FTP server: {row.median('extra_server_cpu'):.2f}s")
            for asset, meta in (extras[-1].get("metadata") or {}).items():
                said = ", ".join(f"{k}={meta[k]}" for k in METADATA_SHOWN if k in meta)
                lines.append(f"      {asset}: {said}")
        return "\n".join(lines)

    def extra_of(self, key: str, name: str) -> float | None:
        row = self.rows.get(key)
        if row is None:
            return None
        value = _median_of([m.extra for m in row.samples if m.extra], name)
        return None if value != value else value  # NaN: not measured

    def wall_of(self, key: str) -> float | None:
        row = self.rows.get(key)
        return row.wall if row is not None and row.samples else None

    def targets(self) -> list[dict[str, Any]]:
        """Issue 6's targets, judged on this run's medians (a target whose rows were not
        measured in this run is left out)."""
        found: list[dict[str, Any]] = []

        def judge(target: str, value: float | None, limit: float, text: str, less: bool = True):
            if value is not None:
                met = value <= limit if less else value >= limit
                found.append({"target": target, "value": value, "limit": limit, "met": met,
                              "measured": text.format(value=value)})  # fmt: skip

        full, pipe = self.wall_of("full_sync"), self.wall_of("raw_pipe")
        if full and pipe:
            judge("full sync <= 1.8x the raw pipe", full / pipe, 1.8, "{value:.2f}x")
            judge("full sync <= 1.3x the raw pipe (stretch)", full / pipe, 1.3, "{value:.2f}x")
        incremental, idle = self.wall_of("incremental"), self.wall_of("no_change")
        if incremental and full:
            judge("incremental 1% <= 5% of the full sync, wall (Dagster start-up included)",
                  incremental / full, 0.05, "{value:.1%}")  # fmt: skip
        work_full, work_incr = (
            self.extra_of(k, "step_seconds") for k in ("full_sync", "incremental")
        )
        if work_full and work_incr:
            judge("incremental 1% <= 5% of the full sync, step work (start-up excluded)",
                  work_incr / work_full, 0.05, "{value:.1%}")  # fmt: skip
        if idle:
            judge("no change: < 2 s of step work", self.extra_of("no_change", "step_seconds"), 2.0,
                  "{value:.2f} s")  # fmt: skip
        syncs = ("full_sync", "incremental", "no_change", "ftp_sync")
        peaks = [self.rows[k].median("peak_rss") / 2**20 for k in syncs if self.wall_of(k)]
        if peaks:
            judge("peak RSS of a sync < 250 MB", max(peaks), 250, "{value:.0f} MB")
        # Issue 18's targets that this list showed before the verdict table existed.
        found += [v for v in self.verdicts() if v["key"] in ALSO_IN_TARGETS]
        ftp, ftp_floor = self.wall_of("ftp_sync"), self.wall_of("ftp_floor")
        if ftp and ftp_floor:
            judge("FTP ingestion >= 50% of psql \\copy's throughput", ftp_floor / ftp, 0.5,
                  "{value:.0%}", less=False)  # fmt: skip
        return found

    def floor_context(self) -> list[str]:
        """How far the incremental target is from physics: the hand-made incremental's own
        share of the full sync (the same changed rows, no overlap window, no counts), the
        sync's step work over that floor and over the exact incremental by hand."""
        hand = self.wall_of("incremental_floor")
        work_full, work_incr = (
            self.extra_of(k, "step_seconds") for k in ("full_sync", "incremental")
        )
        lines = []
        if hand and work_full:
            full = self.wall_of("full_sync") or float("nan")
            lines.append(
                f"hand-made incremental (mysql | psql upsert, changed rows only): {hand:.2f} s"
                f" = {hand / work_full:.1%} of the full sync's step work, {hand / full:.1%} of its"
                " wall"
            )
        if hand and work_incr:
            lines.append(
                f"incremental sync's step work / the hand-made incremental: {work_incr / hand:.2f}x"
            )
        exact = self.wall_of("incremental_exact")
        if exact and work_incr:
            ratio = work_incr / exact
            lines.append(f"incremental step work / the exact incremental by hand: {ratio:.2f}x")
        return lines + self.deletes_context()

    def peer_lines(self) -> list[str]:
        """Our time over each peer's, same run, same data (below 1: we are faster)."""
        pairs = (
            ("full sync", "full_sync", "sling_full", "Sling"),
            ("full sync", "full_sync", "pgloader_full", "pgloader"),
            ("incremental 1%", "incremental", "sling_incremental", "Sling"),
            ("no change", "no_change", "sling_no_change", "Sling"),
        )
        lines = []
        for what, ours, theirs, peer in pairs:
            mine, other = self.wall_of(ours), self.wall_of(theirs)
            if not (mine and other):
                continue
            work = self.extra_of(ours, "step_seconds")
            step = f"; our step work {work:.2f} s = {work / other:.2f}x" if work else ""
            lines.append(
                f"{what}: ours {mine:.2f} s / {peer} {other:.2f} s = {mine / other:.2f}x{step}"
            )
        return lines

    def deletes_context(self) -> list[str]:
        """What the key ranges cannot avoid: reading every key once on each server. MariaDB's
        COUNT(*) in the same snapshot (the engine's `source_count`) is that floor's share."""
        keys, ranges = self.wall_of("deletes_keys"), self.wall_of("deletes_ranges")
        count = self.extra_of("deletes_ranges", "source_count_seconds")
        mysql = self.extra_of("deletes_ranges", "ranges_mysql_seconds")
        pg = self.extra_of("deletes_ranges", "ranges_pg_seconds")
        if not (keys and ranges) or count is None:  # (a tiny table's count can read 0.0 s)
            return []
        return [
            f"deletes: full key stream {keys:.2f} s, key ranges {ranges:.2f} s"
            f" (MariaDB's bucket summary {mysql or 0:.2f} s, PostgreSQL's {pg or 0:.2f} s,"
            " at once)",
            f"MariaDB's COUNT(*) of the table in the same snapshot {count:.2f} s ="
            f" {count / keys:.1%} of the key stream: every key read once, what any exact method"
            " pays at least on the source",
            *self.grouped_count_context(keys),
        ]

    def grouped_count_context(self, keys: float) -> list[str]:
        """MariaDB's cheapest summary that tells key ranges apart, as measured: one grouped
        scan of the engine's buckets, counting only."""
        grouped = self.wall_of("deletes_grouped_count")
        if grouped is None:
            return []
        return [
            f"MariaDB's COUNT(*) per bucket (one GROUP BY scan of the engine's buckets, no"
            f" checksum) {grouped:.2f} s = {grouped / keys:.1%} of the key stream: the least a"
            " grouped summary costs the source (its per-range reads cost more)"
        ]

    def verdicts(self) -> list[dict[str, Any]]:
        """Issue 18's targets judged on this run (benchmarks/verdicts.py)."""
        return judge_all(self, ISSUE_18_TARGETS)

    def verdicts_text(self) -> str:
        return verdict_table(self, ISSUE_18_TARGETS)

    def floor_verdicts(self) -> list[dict[str, Any]]:
        """Each target's floor alone, measured in this run, against the target's limit."""
        return judge_all(self, FLOORS_OF_TARGETS)

    def floor_verdicts_text(self) -> str:
        return verdict_table(self, FLOORS_OF_TARGETS)

    def targets_text(self) -> str:
        return "\n".join(
            f"  [{'met' if t['met'] else 'NOT MET'}] {t['target']}: {t['measured']}"
            for t in self.targets()
        )

    def checks_text(self) -> str:
        return "\n".join(
            f"  [{'ok' if c['ok'] else 'FAIL'}] {name}: {c['detail']}"
            for name, c in self.checks.items()
        )

    def machine(self) -> dict[str, Any]:
        return {
            "code": code_version(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average_at_end": [round(x, 2) for x in psutil.getloadavg()],
        }

    def write_json(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        stamp = self.started.replace(":", "").replace("-", "")
        path = directory / f"bench_{stamp}_{self.args.get('rows')}rows.json"
        data = {
            "started": self.started,
            "args": self.args,
            "machine": self.machine(),
            "rows": [r.to_json() for r in self.rows.values()],
            "ratios": {k: self.ratio(r) for k, r in self.rows.items() if r.floor},
            "checks": self.checks,
            "targets": self.targets(),
            "verdicts": self.verdicts(),
            "floor_verdicts": self.floor_verdicts(),
            "floor_context": self.floor_context(),
            "peers": self.peer_lines(),
            "ok": self.ok,
            "details": self.details(),
            "markdown": self.markdown(),
        }
        path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
        return path
