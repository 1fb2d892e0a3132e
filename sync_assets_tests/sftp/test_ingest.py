"""The FTP side's rules over SFTP, against a real OpenSSH server: exactly once with the ledger,
rejects, parallel files, the stable-file rule, growing files resumed at an offset (an SFTP
read at that offset), and deletes only after commit (watched on the server's file system)."""

import psycopg

from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.ftp.conftest import ledger, rejects, set_age, write_file
from sync_assets_tests.reliability.conftest import csv_file, ids_by_file
from sync_assets_tests.sftp.conftest import DeleteAudit, make_sftp_resource


def _expected(root, files: dict[str, tuple[int, int]]) -> dict[str, list[int]]:
    return {f"{root}/{name}": list(range(first, last + 1)) for name, (first, last) in files.items()}


def test_files_load_exactly_once_in_parallel_with_rejects(
    sshd, sftp_resource, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    files = {"a.csv": (1, 300), "m1/b.csv": (301, 5000), "m2/c.csv": (5001, 5100)}
    for name, (first, last) in files.items():
        write_file(sshd.root, name, csv_file(first, last))
    write_file(sshd.root, "m2/d.csv", b"id;value\n9001;1\nnot-a-number;2\n9002;3\n")
    source = make_source("sftp_once", parallel_files=3, chunk_lines=1000)

    first = ingest_source(sftp_resource, pg_resource, source)
    assert first.files_loaded == 4 and first.rows_rejected == 1
    expected = _expected(sshd.root, files) | {f"{sshd.root}/m2/d.csv": [9001, 9002]}
    assert ids_by_file(pg_conn, source) == expected
    assert [r[0:2] for r in rejects(pg_conn, source)] == [(f"{sshd.root}/m2/d.csv", 3)]
    assert {e["status"] for e in ledger(pg_conn, source).values()} == {"loaded"}

    second = ingest_source(sftp_resource, pg_resource, source)
    assert second.rows_loaded == 0 and second.files_loaded == 0 and second.bytes_read == 0
    assert ids_by_file(pg_conn, source) == expected
    assert sorted(p.name for p in sshd.root.rglob("*.csv")) == ["a.csv", "b.csv", "c.csv", "d.csv"]


def test_growing_file_resumes_at_its_offset(
    sshd, sftp_resource, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    body = csv_file(1, 1000)
    partial = b"1001;70"  # the machine is still writing this line
    path = write_file(sshd.root, "press.csv", body + partial)
    source = make_source("sftp_grow", final_line_seconds=86_400)

    first = ingest_source(sftp_resource, pg_resource, source)
    assert first.rows_loaded == 1000
    entry = ledger(pg_conn, source)[f"{sshd.root}/press.csv"]
    assert entry["offset_bytes"] == len(body)  # the partial line waits

    appended = b"07\n" + b"".join(f"{i};{i * 7}\n".encode() for i in range(1002, 1501))
    with path.open("ab") as out:
        out.write(appended)
    set_age(path, 3600)
    second = ingest_source(sftp_resource, pg_resource, source)
    (outcome,) = second.files
    assert outcome.resumed_from == len(body)
    assert outcome.bytes_read == len(partial) + len(appended)  # only the new bytes were read
    assert second.rows_loaded == 500
    assert ids_by_file(pg_conn, source) == {f"{sshd.root}/press.csv": list(range(1, 1501))}


def test_stable_file_rule_waits_for_young_files(
    sshd, sftp_resource, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    young = write_file(sshd.root, "young.csv", csv_file(1, 10), age_seconds=0)
    write_file(sshd.root, "old.csv", csv_file(11, 20))
    source = make_source("sftp_stable", min_age_seconds=600)

    first = ingest_source(sftp_resource, pg_resource, source)
    statuses = {o.path.rsplit("/", 1)[1]: o.status for o in first.files}
    assert statuses == {"old.csv": "loaded", "young.csv": "too_young"}

    set_age(young, 3600)
    second = ingest_source(sftp_resource, pg_resource, source)
    assert second.rows_loaded == 10
    assert ids_by_file(pg_conn, source) == _expected(
        sshd.root, {"old.csv": (11, 20), "young.csv": (1, 10)}
    )


def test_delete_after_commit_never_before(
    sshd, known_hosts, pg_resource, pg_conn: psycopg.Connection, make_source
) -> None:
    files = {"a.csv": (1, 200), "b.csv": (201, 20_000), "c.csv": (20_001, 20_050)}
    for name, (first, last) in files.items():
        write_file(sshd.root, name, csv_file(first, last))
    source = make_source("sftp_delete", parallel_files=2, chunk_lines=2000)
    sftp = make_sftp_resource(sshd, known_hosts, delete_after_sync="true")
    expected = _expected(sshd.root, files)
    audit = DeleteAudit(sshd.root, pg_resource, source, expected)
    try:
        report = ingest_source(sftp, pg_resource, source)
    finally:
        audit.close()
    assert sorted(report.deleted) == sorted(expected)
    assert list(sshd.root.iterdir()) == []
    assert ids_by_file(pg_conn, source) == expected
    # At each deletion (seen by inotify on the server), the file's rows were committed.
    assert sorted(path for path, _ in audit.audits) == sorted(expected)
    assert all(ok for _, ok in audit.audits), audit.audits
    assert {e["status"] for e in ledger(pg_conn, source).values()} == {"deleted"}
