"""Issue 18's verdict table (benchmarks/verdicts.py), on hand-made medians: no server."""

from __future__ import annotations

from benchmarks.measure import Measurement
from benchmarks.report import Report, Row
from benchmarks.verdicts import ISSUE_18_TARGETS, Figure, TargetCheck, verdict_table


def _row(key: str, *walls: float, rss_mb: int = 100, **extra: float) -> Row:
    samples = [Measurement(w, 1.0, rss_mb * 2**20, 1.0, None, 0, extra=dict(extra)) for w in walls]
    return Row(key, key, 1, 1, samples=samples)


def _report(*rows: Row) -> Report:
    report = Report(args={})
    for r in rows:
        report.add(r)
    return report


def _verdicts(report: Report) -> dict[str, tuple[float, bool]]:
    return {v["key"]: (round(v["value"], 3), v["met"]) for v in report.verdicts()}


def test_every_target_is_judged_on_medians_against_its_same_run_comparison() -> None:
    report = _report(
        _row("raw_pipe", 4.0, 5.0, 6.0),  # median 5
        _row("full_sync", 6.0, 6.5, 9.0, launch_to_first_row=1.2, launch_to_definitions=0.8),
        _row("operator_full_sync", 7.0, launch_to_first_row=1.7),
        _row("sling_full", 10.0),
        _row("incremental", 3.0, step_seconds=1.0, launch_to_first_row=1.6),
        _row("sling_incremental", 2.0),
        _row("no_change", 2.5, step_seconds=0.2, rss_mb=260),
        _row("sling_no_change", 0.4),
        _row("deletes_keys", 60.0),
        _row("deletes_ranges", 6.0),
        _row("ftp_floor", 8.0),
        _row("ftp_sync", 10.0),
        _row("many_tables_one", 8.0),
        _row("many_tables", 40.0, 70.0, 50.0),  # median 50
    )
    report.rows["many_tables"].notes.update(
        per_table_overhead_s=0.211, per_table_client_cpu_s=0.05, tables=200, table_rows=1000
    )
    assert _verdicts(report) == {
        "full_vs_pipe": (1.3, True),  # 6.5 / 5: the limit itself is met
        "operator_full_vs_pipe": (1.4, False),
        "full_vs_sling": (0.65, False),
        "incremental_vs_sling": (0.5, True),
        "no_change_vs_sling": (0.5, True),
        "first_row_full": (1.2, True),
        "first_row_operator_full": (1.7, False),
        "first_row_incremental": (1.6, False),
        "deletes": (0.1, True),
        "ftp": (0.8, True),  # at least: 8 / 10
        "many_tables": (50.0, True),
        "peak_rss": (260, False),
    }
    text = report.verdicts_text()
    assert "NOT MET  Sling 10.00 s, ours 6.50 s" in text
    assert "met      raw pipe 5.00 s, ours 6.50 s" in text
    assert "highest of 5 syncs: no_change" in text  # the row that set the peak is named
    assert "of it, launch → definitions built 0.80 s" in text
    assert "one-table run 8.00 s; per table 0.211 s wall, 0.050 client CPU-s" in text
    assert "not measured" not in text


def test_targets_without_their_rows_are_listed_as_not_measured() -> None:
    report = _report(_row("full_sync", 7.0, step_seconds=5.0), _row("raw_pipe", 5.0))
    assert set(_verdicts(report)) == {"full_vs_pipe", "peak_rss"}
    assert _verdicts(report)["full_vs_pipe"] == (1.4, False)
    text = report.verdicts_text()
    assert "not measured in this run:" in text
    assert "full sync <= 0.6x Sling's" in text.split("not measured in this run:")[1]
    # Issue 6's list keeps showing the issue 18 targets it showed before, and only those.
    assert [t["target"] for t in report.targets() if "Sling" in t["target"]] == []


def test_a_new_benchmark_row_gets_its_verdict_from_one_entry() -> None:
    """The hook for another row (e.g. 200 tables): one TargetCheck in the list."""

    def wall(r: Report) -> Figure | None:
        w = r.wall_of("many_tables")
        return None if w is None else Figure(w, "no peer")

    checks = [*ISSUE_18_TARGETS, TargetCheck("many", "200 tables <= 60 s", wall, 60, unit=" s")]
    report = _report(_row("many_tables", 61.0, rss_mb=300))
    text = verdict_table(report, checks)
    assert "200 tables <= 60 s" in text and "61.00 s  NOT MET" in text
    # Its memory counts toward the RSS target too.
    assert "highest of 1 syncs: many_tables" in report.verdicts_text()


def test_nan_figures_are_not_judged() -> None:
    report = _report(_row("full_sync", float("nan")), _row("raw_pipe", 5.0))
    assert "full_vs_pipe" not in _verdicts(report)


def test_a_many_tables_run_smaller_than_the_target_is_not_judged() -> None:
    report = _report(_row("many_tables_one", 8.0), _row("many_tables", 12.0))
    report.rows["many_tables"].notes.update(tables=5, table_rows=100)
    assert "many_tables" not in _verdicts(report)
    assert "200 tables x 1,000 rows in one run <= 60 s" in report.verdicts_text()  # not measured


def test_each_targets_floor_is_judged_alone_against_the_targets_limit() -> None:
    report = _report(
        _row("raw_pipe", 4.0),
        _row("full_sync", 6.0, launch_to_step_start=1.0),
        _row("operator_full_sync", 7.0, launch_to_step_start=2.0),
        _row("incremental", 3.0, launch_to_step_start=1.2),
        _row("incremental_mariadb", 0.6),
        _row("incremental_exact", 0.45),
        _row("sling_incremental", 1.0),
        _row("no_change_mariadb", 0.2),
        _row("no_change_exact", 0.3),
        _row("sling_no_change", 0.5),
        _row("deletes_keys", 2.0),
        _row("deletes_ranges", 0.5, source_count_seconds=0.3),
        _row("deletes_grouped_count", 0.18),
        _row("ftp_floor", 8.0),
        _row("ftp_floor_like", 12.0),
        _row("ftp_sync", 14.0, stable_wait_seconds=1.8),
    )
    floors = {v["key"]: (round(v["value"], 3), v["met"]) for v in report.floor_verdicts()}
    assert floors == {
        "full_vs_pipe": (1.25, True),  # (4 + 1) / 4: the pipe plus start-up leaves room
        "operator_full_vs_pipe": (1.5, False),  # (4 + 2) / 4: out of reach through the CLI
        "incremental_vs_sling": (0.6, False),
        "incremental_exact_vs_sling": (0.45, True),  # the exact run by hand leaves room
        "no_change_vs_sling": (0.4, True),
        "no_change_exact_vs_sling": (0.6, False),  # 0.3 / 0.5
        "first_row_incremental": (1.2, True),
        "first_row_operator_full": (2.0, False),
        "deletes": (0.15, False),  # 0.3 / 2: the count alone is over 10%
        "deletes_grouped": (0.09, True),  # 0.18 / 2: a grouped scan would leave room
        "ftp": (0.667, False),  # 8 / 12: the sync's table costs a third more than the bare one
        "ftp_like": (0.857, True),  # 12 / 14
        "ftp_like_steady": (0.984, True),  # 12 / (14 - 1.8): the rule's wait stated apart
    }
    text = report.floor_verdicts_text()
    assert "raw pipe 4.00 s + start-up 2.00 s" in text
    assert "COUNT(*) 0.30 s, full key stream 2.00 s" in text
    assert "full key stream 2.00 s, ours 0.18 s" in text
    assert "like for like 12.00 s, ours 14.00 s less 1.80 s" in text
