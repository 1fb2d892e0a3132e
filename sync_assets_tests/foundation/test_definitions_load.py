"""The code location loads with no variable set and every server down; secrets never leak."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from sync_assets.resources import FTPResource, PostgresResource

REPO_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Zebra-Quartz-9931!"  # distinctive, so a leak is found by plain search


def _bare_env(**extra: str) -> dict[str, str]:
    """An environment with none of the project's variables (only what Python needs)."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    env.update(extra)
    return env


def _python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """This interpreter with `args`, in the bare environment."""
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=_bare_env(), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_dagster_definitions_validate_with_no_variable_set(tmp_path: Path) -> None:
    result = _python("-m", "dagster", "definitions", "validate", "-m", "sync_assets.definitions",
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Validation successful" in result.stderr + result.stdout


def test_definitions_load_in_process_with_validate_loadable() -> None:
    from sync_assets.definitions import defs

    dg.Definitions.validate_loadable(defs)


@dg.asset
def _probe(context: dg.AssetExecutionContext, postgres: PostgresResource) -> None:
    context.log.info(f"resource in use: {postgres!r}")
    with postgres.connection() as conn:
        conn.execute("SELECT 1")


def _event_text(result: dg.ExecuteInProcessResult) -> str:
    records = result.all_events
    return "\n".join(str(event) for event in records)


def test_missing_variable_fails_the_run_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POSTGRES_HOST", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    from sync_assets.resources import build_resources

    with pytest.raises(Exception, match="POSTGRES_HOST"):
        dg.materialize([_probe], resources={"postgres": build_resources()["postgres"]})


def test_password_absent_from_repr_event_log_and_error(pg_server, pg_dbname) -> None:
    """A failing run (nothing listens on the port) and its events never show the password."""
    bad = PostgresResource(
        host="127.0.0.1", port="1", database=pg_dbname, user="postgres", password=PASSWORD
    )
    result = dg.materialize([_probe], resources={"postgres": bad}, raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("_probe")
    assert failure is not None
    message = str(failure.error)
    assert "cannot connect to PostgreSQL" in message
    assert PASSWORD not in message
    assert PASSWORD not in _event_text(result)
    assert PASSWORD not in repr(bad)


def test_password_absent_from_a_successful_runs_events(pg_server, pg_dbname) -> None:
    ok = PostgresResource(
        host=pg_server.host,
        port=str(pg_server.port),
        database=pg_dbname,
        user=pg_server.user,
        password=PASSWORD,  # trust auth accepts any password: the run succeeds
    )
    result = dg.materialize([_probe], resources={"postgres": ok})
    assert result.success
    assert PASSWORD not in _event_text(result)


def test_the_heap_is_frozen_at_exit_after_logging_flushes_still_run(tmp_path: Path) -> None:
    """The code location's processes skip CPython's shutdown collections (gc.freeze at exit);
    exit handlers registered before it still run after it, and see the frozen heap."""
    script = (
        "import atexit, gc, logging, sys\n"
        "log = logging.getLogger('probe')\n"
        "log.addHandler(logging.FileHandler(sys.argv[1]))\n"
        "atexit.register(lambda: log.warning('frozen=%s', gc.get_freeze_count() > 0))\n"
        "import sync_assets.definitions\n"
        "assert gc.get_freeze_count() == 0  # nothing changes before the exit\n"
    )
    log_file = tmp_path / "exit.log"
    result = _python("-c", script, str(log_file), cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert log_file.read_text().strip() == "frozen=True"


def test_definitions_load_imports_no_heavy_library_it_does_not_use(tmp_path: Path) -> None:
    """Every run worker and step process loads the definitions: the libraries only some runs
    need (paramiko for SFTP, numpy for the FTP fast path, pandas nowhere) wait until used."""
    script = (
        "import sys\n"
        "import sync_assets.definitions\n"
        "print(sorted(m for m in ('paramiko', 'numpy', 'pandas') if m in sys.modules))\n"
    )
    result = _python("-c", script, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_an_sftp_client_still_imports_paramiko_when_asked_for() -> None:
    from sync_assets.ftp.retry import RetryPolicy
    from sync_assets.ftp.sessions import open_client

    client = open_client(FTPResource(protocol="sftp", host="sftp.invalid"), RetryPolicy(1))
    assert type(client).__name__ == "SFTPClient"
    assert "paramiko" in sys.modules


def test_a_config_file_is_validated_without_searching_for_sources(tmp_path: Path) -> None:
    """With a config file, loading the definitions validates it (a mistake still fails the
    load) without pydantic's attribute-docstring search, whose `inspect.getmodule` walk over
    every loaded module cost most of the models' build in each process."""
    config = tmp_path / "sync_assets.yaml"
    config.write_text("mysql:\n  defaults:\n    batch_rows: 5000\n", encoding="utf-8")
    script = (
        "import inspect, dagster\n"
        "calls = []\n"
        "original = inspect.getmodule\n"
        "inspect.getmodule = lambda *a, **k: calls.append(a) or original(*a, **k)\n"
        "import sync_assets.definitions\n"
        "print(len(calls))\n"
    )
    env = _bare_env(SYNC_ASSETS_CONFIG=str(config))
    ok = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.strip().splitlines()[-1] == "0"
    config.write_text("mysql:\n  defaults:\n    batch_rows: 0\n", encoding="utf-8")
    bad = subprocess.run([sys.executable, "-c", "import sync_assets.definitions"], cwd=REPO_ROOT,
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode != 0 and "mysql.defaults.batch_rows" in bad.stderr
