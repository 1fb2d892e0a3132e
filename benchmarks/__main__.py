"""`python -m benchmarks run --rows 1000000`: the benchmark suite (see benchmarks/README.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.dataset import parse_size as _size
from benchmarks.profile import find_py_spy
from benchmarks.project import compile_project
from benchmarks.servers import BenchServers
from benchmarks.suite import RESULTS_DIR, Options, Suite, log

PARTS = ("floors", "full", "incremental", "peers", "deletes", "ftp", "tables")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="generate the data, measure floors and syncs, report")
    run.add_argument("--rows", type=_size, default=1_000_000, help="legacy table rows (1M)")
    run.add_argument("--files", type=int, default=200, help="FTP corpus files (200)")
    run.add_argument("--lines", type=_size, default=50_000, help="lines per file (50k)")
    run.add_argument("--gzip-every", type=int, default=5, help="every Nth file gzipped (5)")
    run.add_argument("--repeats", type=int, default=3, help="runs per measurement (3)")
    run.add_argument(
        "--ftp-repeats", type=int, default=1, help="runs of the (long) FTP measurements (1)"
    )
    run.add_argument("--tables", type=int, default=200, help="tables of the `tables` part (200)")
    run.add_argument(
        "--table-rows", type=_size, default=1000, help="rows per table of the `tables` part (1000)"
    )
    run.add_argument("--only", default=",".join(PARTS), help=f"subset of {','.join(PARTS)}")
    run.add_argument("--mysql-db", default="sa_bench_src", help="MariaDB database to (re)fill")
    run.add_argument("--results", type=Path, default=RESULTS_DIR, help="output directory")
    run.add_argument("--keep", action="store_true", help="keep the PostgreSQL databases")
    run.add_argument(
        "--profile", action="store_true", help="also profile one sync of each kind with py-spy"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    parts = frozenset(p.strip() for p in args.only.split(",") if p.strip())
    unknown = parts - set(PARTS)
    if (
        unknown
        or min(args.repeats, args.ftp_repeats, args.rows, args.table_rows) < 1
        or args.tables < 2
    ):
        print(
            f"bad arguments: parts {sorted(unknown)}, repeats/rows must be >= 1, tables >= 2",
            file=sys.stderr,
        )
        return 2
    opts = Options(
        rows=args.rows, files=args.files, lines=args.lines, gzip_every=args.gzip_every,
        repeats=args.repeats, ftp_repeats=args.ftp_repeats, mysql_db=args.mysql_db, parts=parts,
        results_dir=args.results, keep=args.keep, tables=args.tables, table_rows=args.table_rows,
    )  # fmt: skip
    py_spy = find_py_spy() if args.profile else None
    if args.profile and py_spy is None:
        print("--profile needs py-spy on PATH (uv tool install py-spy)", file=sys.stderr)
        return 2
    opts.py_spy = py_spy
    compile_project()
    servers = BenchServers.from_env()
    try:
        report = Suite(opts, servers).run()
    finally:
        servers.stop()
    print(report.table())
    print("where the project's time goes (medians):\n" + report.details())
    print("checks:\n" + report.checks_text())
    print("targets (issue 6, this run's medians):\n" + report.targets_text())
    print("".join(f"  [floor] {line}\n" for line in report.floor_context()), end="")
    print("".join(f"  [peer] {line}\n" for line in report.peer_lines()), end="")
    print("issue 18 targets, verdicts (this run's medians):\n" + report.verdicts_text())
    print(
        "the floors behind them, alone against the same limits (met: the floor leaves room;"
        " NOT MET: out of reach for any sync doing this work):\n" + report.floor_verdicts_text()
    )
    path = report.write_json(opts.results_dir)
    log(f"results written to {path}")
    if not report.ok:
        log("FAILED: the loaded data does not match the source")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
