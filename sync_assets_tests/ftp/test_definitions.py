"""The Dagster side: keys, kinds, groups, deps, a materialisation's metadata and its check."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from sync_assets.ftp.definitions import (
    CHECK_NAME,
    build_ftp_defs,
    build_log_asset,
    build_source_spec,
)
from sync_assets.resources import build_resources
from sync_assets_tests.conftest import make_ftp_resource
from sync_assets_tests.ftp.conftest import write_file


def _graph() -> dg.AssetGraph:
    defs = dg.Definitions.merge(build_ftp_defs(), dg.Definitions(resources=build_resources()))
    return defs.resolve_asset_graph()


def test_default_definitions_without_config(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # no sync_assets.yaml here
    monkeypatch.delenv("SYNC_ASSETS_CONFIG", raising=False)
    graph = _graph()
    asset = graph.get(dg.AssetKey(["logs", "machine_logs"]))
    assert asset.kinds == {"postgres"} and asset.group_name == "machine_logs"
    assert dg.AssetKey(["ftp", "machine_logs"]) in asset.parent_keys
    assert graph.get(dg.AssetKey(["ftp", "machine_logs"])).kinds == {"ftp"}


def test_sources_from_the_project_config(monkeypatch, tmp_path) -> None:
    config = tmp_path / "sync_assets.yaml"
    config.write_text("ftp:\n  sources:\n    press: {include: '*.csv'}\n    robots: {}\n")
    monkeypatch.setenv("SYNC_ASSETS_CONFIG", str(config))
    monkeypatch.setenv("FTP_TARGET_SCHEMA", "plant")
    keys = _graph().get_all_asset_keys()
    assert {k.to_user_string() for k in keys} == {
        "ftp/press", "ftp/robots", "logs/press", "logs/robots",
    }  # fmt: skip


def test_materialisation_reports_metadata_and_warns_on_rejects(
    ftp_server_factory, pg_resource, make_source
) -> None:
    server = ftp_server_factory(mlsd=True)
    write_file(server.root, "a.csv", b"ts;v\n2026-11-28 10:00:00;1\n2026-11-28 10:05:00;x;y\n")
    source = make_source("dagster")
    result = dg.materialize(
        [build_source_spec(source), build_log_asset(source)],
        resources={"postgres": pg_resource, "ftp": make_ftp_resource(server)},
    )
    assert result.success
    materialization = result.asset_materializations_for_node(f"logs__{source.name}")[0]
    meta = materialization.metadata
    assert meta["files_seen"].value == 1 and meta["files_loaded"].value == 1
    assert meta["rows_loaded"].value == 1 and meta["rows_rejected"].value == 1
    assert meta["dagster/row_count"].value == 1
    assert meta["dagster/relation_identifier"].value.endswith(
        f"{source.schema}.{source.table_name}"
    )
    columns = {c.name: c.type for c in meta["dagster/column_schema"].schema.columns}
    assert columns["ts"] == "timestamp with time zone" and columns["v"] == "bigint"
    assert meta["newest_record"].value == datetime(2026, 11, 28, 10, tzinfo=UTC).timestamp()
    assert meta["lag_seconds"].value > 0
    assert 0 <= meta["stable_wait_seconds"].value < 1  # stable_seconds 0: next to no wait
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    check = checks[CHECK_NAME]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
