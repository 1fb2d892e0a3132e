"""Issue 18's targets, each judged on one run's medians against what it is compared with in
the same run (a floor or a peer), for the table `scripts/bench` prints last.

A target is a `TargetCheck`: a name, a limit, and a function reading its figure (and what
it was compared with) from the report. `ISSUE_18_TARGETS` is the list the table is made of;
a new benchmark row gets its verdict from one more entry (see benchmarks/README.md).
A target whose rows the run did not measure is listed as not measured, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class Report(Protocol):
    """The run's medians as the checks read them (`benchmarks.report.Report` is one; the
    report imports this module, so nothing is imported back)."""

    @property
    def rows(self) -> Mapping[str, Any]: ...
    def wall_of(self, key: str) -> float | None: ...
    def extra_of(self, key: str, name: str) -> float | None: ...


@dataclass(frozen=True)
class Figure:
    """A measured value and, in words, the same-run figure(s) it was compared with."""

    value: float
    compared: str


FigureFn = Callable[[Report], Figure | None]


@dataclass(frozen=True)
class TargetCheck:
    key: str
    target: str
    figure: FigureFn
    limit: float
    at_most: bool = True  # met when value <= limit (else value >= limit)
    unit: str = "x"  # how the value prints: "x" ratio, "%" share, " s", " MB"

    def show(self, value: float) -> str:
        if self.unit == "%":
            return f"{value:.1%}"
        if self.unit == "x":
            return f"{value:.2f}x"
        return f"{value:.2f}{self.unit}" if self.unit == " s" else f"{value:.0f}{self.unit}"

    def judge(self, report: Report) -> dict[str, Any] | None:
        fig = self.figure(report)
        if fig is None or fig.value != fig.value:  # not measured, or NaN
            return None
        met = fig.value <= self.limit if self.at_most else fig.value >= self.limit
        return {"key": self.key, "target": self.target, "value": fig.value, "limit": self.limit,
                "met": met, "measured": self.show(fig.value), "compared": fig.compared}  # fmt: skip


# --- figures read from the report -------------------------------------------------------------


def wall_ratio(ours: str, theirs: str, label: str, throughput: bool = False) -> FigureFn:
    """Our median wall over another row's (a floor or a peer); with `throughput`, the
    inverse: our throughput as a share of theirs on the same data."""

    def figure(r: Report) -> Figure | None:
        mine, other = r.wall_of(ours), r.wall_of(theirs)
        if not (mine and other):
            return None
        value = other / mine if throughput else mine / other
        return Figure(value, f"{label} {other:.2f} s, ours {mine:.2f} s")

    return figure


def step_over_wall(ours: str, theirs: str, label: str) -> FigureFn:
    """Our step work (start-up excluded) over a peer's whole wall."""

    def figure(r: Report) -> Figure | None:
        work, other = r.extra_of(ours, "step_seconds"), r.wall_of(theirs)
        if not (work and other):
            return None
        return Figure(work / other, f"{label} {other:.2f} s wall, our step work {work:.2f} s")

    return figure


def first_row(row: str) -> FigureFn:
    """Launch → first row copied, with the definitions' load time beside it."""

    def figure(r: Report) -> Figure | None:
        value = r.extra_of(row, "launch_to_first_row")
        if value is None:
            return None
        defs = r.extra_of(row, "launch_to_definitions")
        said = f"of it, launch → definitions built {defs:.2f} s" if defs else "no floor"
        return Figure(value, said)

    return figure


def startup_over(floor: str, ours: str, label: str) -> FigureFn:
    """The floor plus Dagster's own start-up (launch -> step start of `ours`), over the
    floor: what a sync with no overhead of its own would reach through Dagster."""

    def figure(r: Report) -> Figure | None:
        base, startup = r.wall_of(floor), r.extra_of(ours, "launch_to_step_start")
        if not (base and startup):
            return None
        return Figure((base + startup) / base, f"{label} {base:.2f} s + start-up {startup:.2f} s")

    return figure


def throughput_less(ours: str, fixed: str, theirs: str, label: str) -> FigureFn:
    """Our throughput as a share of another row's, with a fixed part of our wall (the extra
    `fixed`, e.g. the stable-file rule's wait) stated apart, as Dagster's start-up is."""

    def figure(r: Report) -> Figure | None:
        mine, part, other = r.wall_of(ours), r.extra_of(ours, fixed), r.wall_of(theirs)
        if not (mine and other) or part is None or part >= mine:
            return None
        said = f"{label} {other:.2f} s, ours {mine:.2f} s less {part:.2f} s"
        return Figure(other / (mine - part), said)

    return figure


def launch_to_step_start(row: str) -> FigureFn:
    """Dagster's part of launch -> first row: until the step starts."""

    def figure(r: Report) -> Figure | None:
        value = r.extra_of(row, "launch_to_step_start")
        return None if value is None else Figure(value, f"launch -> step start of {row}")

    return figure


def source_count_share(r: Report) -> Figure | None:
    """MariaDB's `COUNT(*)` of the table (any exact summary of its keys reads at least as
    much) as a share of the full key stream, same run."""
    count = r.extra_of("deletes_ranges", "source_count_seconds")
    stream = r.wall_of("deletes_keys")
    if count is None or not stream:
        return None
    return Figure(count / stream, f"COUNT(*) {count:.2f} s, full key stream {stream:.2f} s")


MANY_TABLES, MANY_TABLE_ROWS = 200, 1000


def many_tables(r: Report) -> Figure | None:
    """The run over every table (`tables` part), with the one-table run and the per-table
    overhead beside it."""
    mine, one = r.wall_of("many_tables"), r.wall_of("many_tables_one")
    if not (mine and one):
        return None
    notes = r.rows["many_tables"].notes
    if notes.get("tables", 0) < MANY_TABLES or notes.get("table_rows", 0) < MANY_TABLE_ROWS:
        return None  # a smaller run (`--tables`, `--table-rows`) is not the target's
    said = (
        f"one-table run {one:.2f} s; per table {notes.get('per_table_overhead_s', 0):.3f} s wall,"
        f" {notes.get('per_table_client_cpu_s', 0):.3f} client CPU-s"
    )
    return Figure(mine, said)


# Rows whose process memory the RSS target covers (absent rows are skipped).
SYNC_ROWS = [
    "full_sync",
    "incremental",
    "no_change",
    "ftp_sync",
    "many_tables",
    "many_tables_no_change",
]


def peak_rss(r: Report) -> Figure | None:
    peaks = {k: r.rows[k].median("peak_rss") / 2**20 for k in SYNC_ROWS if r.wall_of(k)}
    if not peaks:
        return None
    worst = max(peaks, key=lambda k: peaks[k])
    return Figure(peaks[worst], f"highest of {len(peaks)} syncs: {worst}")


ISSUE_18_TARGETS: list[TargetCheck] = [
    TargetCheck("full_vs_pipe", "full sync <= 1.3x the raw pipe",
                wall_ratio("full_sync", "raw_pipe", "raw pipe"), 1.3),
    TargetCheck("operator_full_vs_pipe", "full sync, operator's CLI <= 1.3x the raw pipe",
                wall_ratio("operator_full_sync", "raw_pipe", "raw pipe"), 1.3),
    TargetCheck("full_vs_sling", "full sync <= 0.6x Sling's",
                wall_ratio("full_sync", "sling_full", "Sling"), 0.6),
    TargetCheck("incremental_vs_sling", "incremental 1%: step work <= 0.5x Sling's wall",
                step_over_wall("incremental", "sling_incremental", "Sling"), 0.5),
    TargetCheck("no_change_vs_sling", "no change: step work <= 0.5x Sling's wall",
                step_over_wall("no_change", "sling_no_change", "Sling"), 0.5),
    TargetCheck("first_row_full", "full sync: launch -> first row <= 1.5 s",
                first_row("full_sync"), 1.5, unit=" s"),
    TargetCheck("first_row_operator_full", "full sync, operator's CLI: launch -> first row"
                " <= 1.5 s", first_row("operator_full_sync"), 1.5, unit=" s"),
    TargetCheck("first_row_incremental", "incremental 1%: launch -> first row <= 1.5 s",
                first_row("incremental"), 1.5, unit=" s"),
    TargetCheck("deletes", "deletes by key ranges <= 10% of the full key stream",
                wall_ratio("deletes_ranges", "deletes_keys", "full key stream"), 0.10,
                unit="%"),
    TargetCheck("ftp", "FTP ingestion >= 80% of psql \\copy's throughput",
                wall_ratio("ftp_sync", "ftp_floor", "psql \\copy", throughput=True), 0.80,
                at_most=False, unit="%"),
    TargetCheck("many_tables", "200 tables x 1,000 rows in one run <= 60 s",
                many_tables, 60, unit=" s"),
    TargetCheck("peak_rss", "peak RSS < 250 MB", peak_rss, 250, unit=" MB"),
]  # fmt: skip


# The floor alone, measured in the same run, against each target's limit: a target whose
# floor misses the limit is out of reach for any sync that does the same work.
FLOORS_OF_TARGETS: list[TargetCheck] = [
    TargetCheck("full_vs_pipe", "raw pipe + Dagster's start-up (runner) <= 1.3x the pipe",
                startup_over("raw_pipe", "full_sync", "raw pipe"), 1.3),
    TargetCheck("operator_full_vs_pipe", "raw pipe + Dagster's start-up (CLI) <= 1.3x the pipe",
                startup_over("raw_pipe", "operator_full_sync", "raw pipe"), 1.3),
    TargetCheck("incremental_vs_sling", "MariaDB's part of an exact 1% run <= 0.5x Sling's wall",
                wall_ratio("incremental_mariadb", "sling_incremental", "Sling"), 0.5),
    TargetCheck("incremental_exact_vs_sling", "exact 1% run by hand (mysql | awk | psql) <= 0.5x"
                " Sling's wall", wall_ratio("incremental_exact", "sling_incremental", "Sling"),
                0.5),
    TargetCheck("no_change_vs_sling", "MariaDB's part of an exact no-change run <= 0.5x Sling's",
                wall_ratio("no_change_mariadb", "sling_no_change", "Sling"), 0.5),
    TargetCheck("no_change_exact_vs_sling", "exact no-change run by hand (mysql | awk | psql)"
                " <= 0.5x Sling's", wall_ratio("no_change_exact", "sling_no_change", "Sling"),
                0.5),
    TargetCheck("first_row_incremental", "incremental: Dagster's launch -> step start <= 1.5 s",
                launch_to_step_start("incremental"), 1.5, unit=" s"),
    TargetCheck("first_row_operator_full", "operator's CLI: launch -> step start <= 1.5 s",
                launch_to_step_start("operator_full_sync"), 1.5, unit=" s"),
    TargetCheck("deletes", "MariaDB's COUNT(*) <= 10% of the full key stream",
                source_count_share, 0.10, unit="%"),
    TargetCheck("deletes_grouped", "MariaDB's COUNT(*) per bucket (one GROUP BY scan) <= 10% of"
                " the full key stream", wall_ratio("deletes_grouped_count", "deletes_keys",
                                                   "full key stream"), 0.10, unit="%"),
    TargetCheck("ftp", "psql \\copy like for like >= 80% of the plain floor's throughput",
                wall_ratio("ftp_floor_like", "ftp_floor", "plain floor", throughput=True), 0.80,
                at_most=False, unit="%"),
    TargetCheck("ftp_like", "FTP ingestion >= 80% of the like-for-like floor's throughput",
                wall_ratio("ftp_sync", "ftp_floor_like", "like for like", throughput=True),
                0.80, at_most=False, unit="%"),
    TargetCheck("ftp_like_steady", "the same, the stable-file rule's wait stated apart",
                throughput_less("ftp_sync", "stable_wait_seconds", "ftp_floor_like",
                                "like for like"), 0.80, at_most=False, unit="%"),
]  # fmt: skip


def judge_all(report: Report, checks: list[TargetCheck]) -> list[dict[str, Any]]:
    """The verdict of every check whose figure this run measured."""
    return [v for c in checks if (v := c.judge(report)) is not None]


def verdict_table(report: Report, checks: list[TargetCheck]) -> str:
    """One line per measured target (figure, met / NOT MET, what it was compared with), then
    the targets this run did not measure."""
    verdicts = judge_all(report, checks)
    width = max([len(v["target"]) for v in verdicts] + [6])
    lines = [
        f"  {'target':<{width}} {'figure':>9}  {'verdict':<8} compared with (same run)",
        *(
            f"  {v['target']:<{width}} {v['measured']:>9}  "
            f"{'met' if v['met'] else 'NOT MET':<8} {v['compared']}"
            for v in verdicts
        ),
    ]
    measured = {v["key"] for v in verdicts}
    missing = [c.target for c in checks if c.key not in measured]
    if missing:
        lines.append("  not measured in this run: " + "; ".join(missing))
    return "\n".join(lines)
