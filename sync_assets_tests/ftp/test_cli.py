"""`sync-assets ftp-ledger` and `sync-assets reingest` against the real PostgreSQL."""

from __future__ import annotations

from sync_assets.cli import main
from sync_assets.ftp.ingest import ingest_source
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import ledger, rows, write_file


def _pg_env(monkeypatch, pg_server, pg_dbname) -> None:
    monkeypatch.setenv("POSTGRES_HOST", pg_server.host)
    monkeypatch.setenv("POSTGRES_PORT", str(pg_server.port))
    monkeypatch.setenv("POSTGRES_DB", pg_dbname)
    monkeypatch.setenv("POSTGRES_USER", pg_server.user)
    monkeypatch.setenv("POSTGRES_PASSWORD", pg_server.password or "")


def test_ledger_and_reingest_load_a_file_again_exactly_once(
    ftp_server_factory, pg_server, pg_dbname, pg_resource, pg_conn, make_source, monkeypatch,
    tmp_path, capsys,
):  # fmt: skip
    server = ftp_server_factory(mlsd=True)
    write_file(server.root, "a.csv", b"n\n1\n2\n")
    write_file(server.root, "b.csv", b"n\n3\n")
    source = make_source("cli")
    ftp = make_ftp_resource(server)
    ingest_source(ftp, pg_resource, source)
    _pg_env(monkeypatch, pg_server, pg_dbname)
    config = tmp_path / "sync_assets.yaml"
    config.write_text(f"ftp:\n  sources:\n    {source.name}: {{}}\n")
    monkeypatch.setenv("SYNC_ASSETS_CONFIG", str(config))
    monkeypatch.setenv("FTP_TARGET_SCHEMA", source.schema)

    assert main(["ftp-ledger", "--source", source.name]) == 0
    out = capsys.readouterr().out
    assert "/a.csv\t1\tloaded" in out and "/b.csv" in out

    assert main(["reingest", "--source", source.name, "/a.csv"]) == 0
    assert "/a.csv: 2 row(s) removed" in capsys.readouterr().out
    assert "/a.csv" not in ledger(pg_conn, source)
    assert ingest_source(ftp, pg_resource, source).rows_loaded == 2
    assert sorted(r[0] for r in rows(pg_conn, source, "n")) == [1, 2, 3]

    assert main(["reingest", "--source", "nope", "/a.csv"]) == 2
