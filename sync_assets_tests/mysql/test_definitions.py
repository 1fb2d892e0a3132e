"""Definitions: tables from MYSQL_TABLES or the stored discovery, no I/O at load, lineage."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import psycopg
import pymysql
import pytest

from sync_assets.cli import main
from sync_assets.core.settings import ConfigError
from sync_assets.devtools.servers import ServerInfo
from sync_assets.mysql import config
from sync_assets.mysql.definitions import GROUP, POOL, SOURCE_GROUP, build_mysql_defs
from sync_assets.mysql.naming import NameCollisionError, asset_name
from sync_assets.resources import MySQLResource, PostgresResource, build_resources
from sync_assets_tests.mysql.conftest import run_sql


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("SYNC_ASSETS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)  # no ./sync_assets.yaml unless a test writes one
    for name in ("MYSQL_TABLES", "MYSQL_TARGET_SCHEMA", "SYNC_ASSETS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    # Servers that do not exist: building the definitions must not try to reach them.
    monkeypatch.setenv("MYSQL_HOST", "127.0.0.1")
    monkeypatch.setenv("MYSQL_PORT", "9")
    return tmp_path


def _graph(defs: dg.Definitions) -> dg.AssetGraph:
    return dg.Definitions.merge(
        defs, dg.Definitions(resources=build_resources())
    ).resolve_asset_graph()


def test_no_tables_means_no_assets() -> None:
    assert not list(_graph(build_mysql_defs()).get_all_asset_keys())


def test_assets_from_mysql_tables_with_lineage_and_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYSQL_TABLES", "Orders, customer ,Order Details")
    defs = build_mysql_defs()
    graph = _graph(defs)
    assert {a.op.pool for a in defs.assets if isinstance(a, dg.AssetsDefinition)} == {POOL}
    odd = asset_name("order details")
    assert odd.startswith("order_details_")
    for name in ("orders", "customer", odd):
        node = graph.get(dg.AssetKey(["legacy", name]))
        assert node.kinds == {"postgres"} and node.group_name == GROUP
        assert node.parent_keys == {dg.AssetKey(["mysql", name])}
        source = graph.get(dg.AssetKey(["mysql", name]))
        assert source.kinds == {"mysql"} and source.group_name == SOURCE_GROUP
        assert not source.is_materializable
        assert [k.name for k in node.check_keys] == ["row_count_matches_source"]


def test_per_table_options_from_yaml(monkeypatch: pytest.MonkeyPatch, isolated_env: Path) -> None:
    (isolated_env / "sync_assets.yaml").write_text(
        "mysql:\n  defaults:\n    overlap_seconds: 60\n"
        "  tables:\n    orders:\n      mode: full_refresh\n      max_delete_fraction: 0.9\n"
    )
    orders = config.table_options("orders")
    assert (orders.mode, orders.overlap_seconds, orders.max_delete_fraction) == (
        "full_refresh", 60, 0.9,
    )  # fmt: skip
    assert config.table_options("other").mode == "auto"
    (isolated_env / "sync_assets.yaml").write_text("mysql:\n  tables:\n    t:\n      mode: fast\n")
    monkeypatch.setenv("MYSQL_TABLES", "t")
    with pytest.raises(ConfigError, match=r"mysql\.tables\.t\.mode: must be one of"):
        build_mysql_defs()
    (isolated_env / "sync_assets.yaml").write_text("mysql:\n  tables:\n    t:\n      speed: 1\n")
    with pytest.raises(ConfigError, match=r"mysql\.tables\.t\.speed: unknown option"):
        build_mysql_defs()


def test_tables_colliding_after_lower_casing_are_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MYSQL_TABLES", "Dup,dup")
    with pytest.raises(NameCollisionError, match="'Dup' and 'dup' both become 'dup'"):
        build_mysql_defs()


def test_refresh_mysql_stores_base_tables_for_the_definitions(
    monkeypatch: pytest.MonkeyPatch,
    mysql_server: ServerInfo,
    src: pymysql.Connection,
    src_db: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_sql(
        src,
        "CREATE TABLE a (id INT PRIMARY KEY)",
        "CREATE TABLE `B c` (id INT)",
        "CREATE VIEW v AS SELECT id FROM a",
    )
    monkeypatch.setenv("MYSQL_HOST", mysql_server.host)
    monkeypatch.setenv("MYSQL_PORT", str(mysql_server.port))
    monkeypatch.setenv("MYSQL_USER", mysql_server.user)
    monkeypatch.setenv("MYSQL_PASSWORD", mysql_server.password)
    monkeypatch.setenv("MYSQL_DB", src_db)
    assert main(["refresh-mysql", "-v"]) == 0
    assert "stored 2 table(s)" in capsys.readouterr().out
    assert json.loads(config.state_file().read_text())["tables"] == ["B c", "a"]

    # MySQL goes away: the definitions still load from the stored list.
    monkeypatch.setenv("MYSQL_PORT", "9")
    keys = set(_graph(build_mysql_defs()).get_all_asset_keys())
    assert dg.AssetKey(["legacy", "a"]) in keys and dg.AssetKey(["mysql", "a"]) in keys
    assert dg.AssetKey(["legacy", "v"]) not in keys  # views are not copied
    assert main(["refresh-mysql"]) == 2  # a clear error, not a traceback

    run_sql(src, "CREATE TABLE `A` (id INT)")
    monkeypatch.setenv("MYSQL_PORT", str(mysql_server.port))
    assert main(["refresh-mysql"]) == 2
    assert "both become 'a'" in capsys.readouterr().err


def test_selecting_one_table_touches_only_that_table(
    monkeypatch: pytest.MonkeyPatch,
    src: pymysql.Connection,
    src_resource: MySQLResource,
    pg_resource: PostgresResource,
    pg_conn: psycopg.Connection,
    target_schema: str,
) -> None:
    run_sql(src, "CREATE TABLE one (id INT PRIMARY KEY)", "CREATE TABLE two (id INT PRIMARY KEY)")
    run_sql(src, "INSERT INTO one VALUES (1)", "INSERT INTO two VALUES (2)")
    monkeypatch.setenv("MYSQL_TABLES", "one,two")
    monkeypatch.setenv("MYSQL_TARGET_SCHEMA", target_schema)
    assets = [a for a in build_mysql_defs().assets if isinstance(a, dg.AssetsDefinition)]
    result = dg.materialize(
        assets,
        resources={"mysql": src_resource, "postgres": pg_resource},
        selection=[dg.AssetKey(["legacy", "one"])],
    )
    assert [e.asset_key for e in result.get_asset_materialization_events()] == [
        dg.AssetKey(["legacy", "one"])
    ]
    tables = pg_conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        (target_schema,),
    ).fetchall()
    assert tables == [("one",)]
