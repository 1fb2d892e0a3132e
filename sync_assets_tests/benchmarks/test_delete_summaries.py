"""The key-summary probe (`benchmarks.delete_summaries`) on a small generated table: every
shape summarises the same keys (gaps and an emptied bucket included), and the agreement check
catches a range read that differs from the grouped scan."""

from __future__ import annotations

from benchmarks import dataset, delete_summaries
from benchmarks.servers import BenchServers
from sync_assets.devtools.servers import ServerInfo

ROWS = 3_000


def test_every_summary_shape_sees_the_same_keys(
    pg_server: ServerInfo, mysql_server: ServerInfo, source_db: str
) -> None:
    servers = BenchServers(pg_server, mysql_server)
    with servers.mysql_connect(source_db) as conn, conn.cursor() as cur:
        dataset.generate(conn, source_db, ROWS)
        # An emptied 512-key bucket (1024..1535), scattered gaps, and the first and last key.
        cur.execute(
            f"DELETE FROM `{dataset.TABLE}` WHERE id BETWEEN 1024 AND 1535 OR id % 37 = 0"
            f" OR id IN (1, {ROWS})"
        )
        cur.execute(f"SELECT COUNT(*) FROM `{dataset.TABLE}`")
        remaining = cur.fetchone()[0]
    out = delete_summaries.run_mysql(servers, source_db, rounds=1)
    assert out["agree"] == {"counts": True, "ranges_equal_grouped": True}
    assert set(out["shapes"]) == {
        "count", "count_primary", "count_xor_key", "count_xor_hash", "summary_grouped",
        "ranges_union", "ranges_union_count", "bitmap64_grouped",
    }  # fmt: skip
    assert 0 < remaining < ROWS - 512


def test_agreement_catches_a_differing_bucket() -> None:
    """Bucket 1 holds keys 512..1023: one key fewer in the range reads than in the grouped
    scan (same count elsewhere) must not pass, nor a count that differs."""
    results: dict[str, list[tuple[int, ...]]] = {
        "count": [(3,)],
        "count_primary": [(3,)],
        "count_xor_key": [(3, 0)],
        "count_xor_hash": [(3, 0)],
        "summary_grouped": [(0, 1, 11), (1, 2, 22)],
        "ranges_union": [(0, 1, 11), (1, 2, 22), (2, 0, 0)],
        "ranges_union_count": [(0, 1), (1, 2), (2, 0)],
        "bitmap64_grouped": [(0, 0b1), (8, 0b11)],
    }
    assert delete_summaries.agreement(results) == {"counts": True, "ranges_equal_grouped": True}
    results["ranges_union"][1] = (1, 2, 23)
    assert not delete_summaries.agreement(results)["ranges_equal_grouped"]
    results["bitmap64_grouped"][1] = (8, 0b1)
    assert not delete_summaries.agreement(results)["counts"]
