"""The MySQL table list reaches every process that loads the definitions.

A code server loads the list from its state file; a run worker (or a Kubernetes run pod) is a
fresh process with no state file. Each side runs in its own interpreter here, through the same
Dagster calls the code server (initial load) and `dagster api execute_run` (reconstruction from
the run's stored load data) make.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from sync_assets.cli import main
from sync_assets.devtools.servers import ServerInfo
from sync_assets.mysql import config
from sync_assets_tests.mysql.conftest import run_sql

CODE_SERVER = """
import sys
from dagster._core.definitions.reconstruct import (
    ReconstructableRepository, initialize_repository_def_from_pointer)
from dagster._serdes import serialize_value
recon = ReconstructableRepository.for_module("sync_assets.definitions", "defs")
repo = initialize_repository_def_from_pointer(recon.pointer)
keys = sorted(k.to_user_string() for k in repo.asset_graph.get_all_asset_keys())
print(serialize_value(repo.repository_load_data))
print("\\n".join(keys))
"""

RUN_WORKER = """
import sys
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._serdes import deserialize_value
load_data = deserialize_value(sys.stdin.readline())
recon = ReconstructableRepository.for_module("sync_assets.definitions", "defs")
repo = recon.with_repository_load_data(load_data).get_definition()
print("\\n".join(sorted(k.to_user_string() for k in repo.asset_graph.get_all_asset_keys())))
"""


def _env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYSQL_", "SYNC_ASSETS_"))}
    env["SYNC_ASSETS_STATE_DIR"] = str(state_dir)
    return env


def _python(code: str, state_dir: Path, cwd: Path, stdin: str = "") -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], input=stdin, capture_output=True, text=True,
        env=_env(state_dir), cwd=cwd, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_a_fresh_process_without_state_loads_the_code_servers_mysql_assets(tmp_path: Path) -> None:
    server_state = tmp_path / "code-server-state"
    server_state.mkdir()
    (server_state / config.STATE_FILE_NAME).write_text(
        json.dumps({"database": "legacy", "tables": ["Orders", "customer"]})
    )
    load_data, *server_keys = _python(CODE_SERVER, server_state, tmp_path).splitlines()
    assert {"legacy/orders", "legacy/customer", "mysql/orders"} <= set(server_keys)

    empty_state = tmp_path / "run-pod-state"  # does not exist: a pod with no volume
    worker_keys = _python(RUN_WORKER, empty_state, tmp_path, stdin=load_data + "\n").splitlines()
    assert worker_keys == server_keys

    # Without the carried list the same fresh process would see no MySQL asset at all.
    bare = _python(RUN_WORKER, empty_state, tmp_path, stdin="null\n").splitlines()
    assert not any(key.startswith(("legacy/", "mysql/")) for key in bare)


def test_refresh_keeps_a_copy_in_postgres_that_a_fresh_container_restores_when_mysql_is_down(
    monkeypatch, tmp_path: Path, mysql_server: ServerInfo, src, src_db: str,
    pg_server: ServerInfo, pg_dbname: str, capsys,
) -> None:  # fmt: skip
    run_sql(src, "CREATE TABLE a (id INT PRIMARY KEY)", "CREATE TABLE `B c` (id INT)")
    for name, value in {
        "MYSQL_HOST": mysql_server.host, "MYSQL_PORT": str(mysql_server.port),
        "MYSQL_USER": mysql_server.user, "MYSQL_PASSWORD": mysql_server.password,
        "MYSQL_DB": src_db, "POSTGRES_HOST": pg_server.host,
        "POSTGRES_PORT": str(pg_server.port), "POSTGRES_USER": pg_server.user,
        "POSTGRES_PASSWORD": pg_server.password, "POSTGRES_DB": pg_dbname,
        "SYNC_ASSETS_STATE_DIR": str(tmp_path / "first"),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MYSQL_TABLES", raising=False)
    assert main(["refresh-mysql"]) == 0
    assert "kept a copy of the list in PostgreSQL" in capsys.readouterr().out

    # A new container: no state file, MySQL down. The list comes back from PostgreSQL.
    monkeypatch.setenv("SYNC_ASSETS_STATE_DIR", str(tmp_path / "fresh"))
    monkeypatch.setenv("MYSQL_PORT", "9")
    assert main(["refresh-mysql"]) == 2  # still an error: the list may be out of date
    assert "restored the last known list (2 table(s))" in capsys.readouterr().out
    assert config.stored_table_list() == ["B c", "a"]
