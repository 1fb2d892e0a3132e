"""Value verification (`verify_values: true`): every value of the copy against the snapshot."""

from __future__ import annotations

import psycopg
import pymysql
from psycopg import sql

from sync_assets.core.pg import copy_statement, ident
from sync_assets.mysql.job import Job, temp_table
from sync_assets.mysql.plan import Plan
from sync_assets.mysql.stream import copy_query
from sync_assets.mysql.types import row_expression
from sync_assets.mysql.upsert_sql import staged_value


def verify_values(job: Job, pg: psycopg.Connection, my: pymysql.Connection, plan: Plan) -> None:
    """Compare every value of the PostgreSQL table with the MySQL snapshot, in PostgreSQL's
    own types: the snapshot's rows go into a temporary table, then EXCEPT ALL both ways.

    Still inside the read snapshot and the writing transaction, so a difference is a real one
    (e.g. a change an incremental run could not see), never a race with new writes."""
    check = temp_table(pg, "_sync_verify", plan.mappings)
    copy_stmt = copy_statement(check, [m.target for m in plan.mappings])
    select = f"SELECT {row_expression(plan.mappings)} FROM {job.source_sql}"
    with pg.cursor() as cur:
        options = job.options
        copy_query(my, select, (), cur, copy_stmt, options.batch_rows, options.fast_reader)
    source = sql.SQL("SELECT {} FROM {} AS s").format(
        sql.SQL(", ").join(staged_value(m, "s") for m in plan.mappings), check
    )
    copied = sql.SQL("SELECT {} FROM {} AS t").format(
        sql.SQL(", ").join(sql.SQL("t.{}").format(ident(m.target)) for m in plan.mappings),
        job.target_ident,
    )
    pk = [i for i, m in enumerate(plan.mappings) if m.target in set(job.pk_targets)] or [0]
    keys = sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in pk)
    rows = pg.execute(
        sql.SQL(
            "WITH d ({}) AS (({} EXCEPT ALL {}) UNION ALL ({} EXCEPT ALL {})),"
            " k AS (SELECT DISTINCT {} FROM d)"
            " SELECT (SELECT count(*) FROM k), k.* FROM k LIMIT 5"
        ).format(
            sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in range(len(plan.mappings))),
            source,
            copied,
            copied,
            source,
            keys,
        )
    ).fetchall()
    job.report.mismatched_rows = int(rows[0][0]) if rows else 0
    job.report.mismatch_sample = [", ".join(str(v) for v in row[1:]) for row in rows]
