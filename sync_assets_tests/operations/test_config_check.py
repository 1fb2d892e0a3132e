"""Bad configuration is refused when the code location loads, every error at once with its
path; the JSON Schema is current; `sync-assets config check` serves operators' CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sync_assets.config_schema import json_schema, validate_config
from sync_assets.core.settings import ConfigError
from sync_assets.definitions import build_definitions
from sync_assets.mysql import config as mysql_config

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO_ROOT / "schema" / "sync_assets.schema.json"
CLI = str(Path(sys.executable).with_name("sync-assets"))

BAD_CONFIG = """\
mysql:
  defaults:
    verify_values: "maybe"
  tables:
    orders: {mode: fast, max_delete_fraction: 2, batch_rows: 0}
ftp:
  defaults: {timezone: Europe/Berlni}
  sources:
    press:
      encoding: cp1525
      delimiter: ";;"
      include: ["[abc*.csv"]
      regex: "(?P<ts>"
      parallel_files: 0
      header: sometimes
      colour: red
    Robots: {}
"""
EXPECTED_ERRORS = [
    "mysql.defaults.verify_values: must be true or false",
    "mysql.tables.orders.mode: must be one of",
    "mysql.tables.orders.max_delete_fraction:",
    "mysql.tables.orders.batch_rows:",
    "ftp.defaults.timezone: unknown time zone 'Europe/Berlni'",
    "ftp.sources.press.encoding: unknown encoding 'cp1525'",
    "ftp.sources.press.delimiter: delimiter must be one character",
    "ftp.sources.press.include.0: glob '[abc*.csv' has an unclosed '['",
    "ftp.sources.press.regex: invalid regex",
    "ftp.sources.press.parallel_files:",
    "ftp.sources.press.header: must be true or false",
    "ftp.sources.press.colour: unknown option",
    "ftp.sources.Robots: name 'Robots'",
]


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MYSQL_TABLES", "SYNC_ASSETS_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SYNC_ASSETS_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "sync_assets.yaml"
    monkeypatch.setenv("SYNC_ASSETS_CONFIG", str(path))
    return path


def test_the_code_location_refuses_a_bad_file_with_every_error_and_its_path(
    config_file: Path,
) -> None:
    config_file.write_text(BAD_CONFIG)
    with pytest.raises(ConfigError) as raised:
        build_definitions()
    message = str(raised.value)
    assert f"{len(EXPECTED_ERRORS)} error(s)" in message
    for expected in EXPECTED_ERRORS:
        assert expected in message


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("encoding", "utf-8"),
        ("encoding", "cp1252"),
        ("timezone", "Europe/Berlin"),
        ("delimiter", "\t"),
        ("include", "*.csv"),
        ("include", ["logs/*.csv", "*.txt"]),
        ("header", "no"),
        ("recursive", False),
        ("regex", r"^(?P<ts>\S+) (?P<msg>.*)$"),
        ("min_age_seconds", 0),
        ("retry_backoff_seconds", 0.5),
    ],
)
def test_valid_values_are_accepted(option: str, value: object) -> None:
    assert validate_config({"ftp": {"sources": {"press": {option: value}}}}) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [("min_age_seconds", True), ("chunk_lines", 2.5), ("skip_lines", "2"), ("decimal", ";")],
)
def test_numbers_and_choices_are_typed(option: str, value: object) -> None:
    errors = validate_config({"ftp": {"defaults": {option: value}}})
    assert len(errors) == 1 and errors[0].startswith(f"ftp.defaults.{option}:")


def _doc_examples() -> list[dict]:
    """The YAML examples of the docs: what operators copy must stay valid."""
    blocks = []
    for doc in ("docs/ftp.md", "docs/mysql.md"):
        text = (REPO_ROOT / doc).read_text()
        for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and set(data) <= {"ftp", "mysql"}:
                blocks.append(data)
    return blocks


def test_the_documented_examples_are_valid() -> None:
    examples = _doc_examples()
    assert len(examples) >= 2
    for example in examples:
        assert validate_config(example) == []


def test_table_keys_match_mysql_names_without_regard_to_case(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text("mysql:\n  tables:\n    orders:\n      mode: full_refresh\n")
    monkeypatch.setenv("MYSQL_TABLES", "Orders,Customers")
    assert mysql_config.table_options("Orders").mode == "full_refresh"
    assert mysql_config.table_options("Customers").mode == "auto"
    defs = build_definitions()
    spec = defs.resolve_assets_def(["legacy", "orders"]).specs_by_key
    description = next(iter(spec.values())).description or ""
    assert "mode full_refresh" in description


def test_a_table_key_that_matches_no_table_is_refused(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text("mysql:\n  tables:\n    ordrs:\n      mode: full_refresh\n")
    monkeypatch.setenv("MYSQL_TABLES", "Orders")
    with pytest.raises(ConfigError, match=r"mysql\.tables\.ordrs: no such table .*Orders"):
        build_definitions()


def test_the_committed_json_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text() == json_schema(), (
        "regenerate with: sync-assets config schema > schema/sync_assets.schema.json"
    )


def test_config_check_lists_every_error_and_exits_non_zero(
    config_file: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CONFIG)
    done = _check(bad)
    assert done.returncode == 1
    for expected in EXPECTED_ERRORS:
        assert expected in done.stderr


def test_config_check_accepts_a_valid_file_and_checks_table_keys(
    config_file: Path, tmp_path: Path
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_doc_examples()[0]) + "mysql:\n  tables:\n    orders: {}\n")
    done = _check(good, MYSQL_TABLES="Orders")
    assert done.returncode == 0, done.stderr
    done = _check(good, MYSQL_TABLES="customers")
    assert done.returncode == 1
    assert "mysql.tables.orders: no such table" in done.stderr


def _check(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
