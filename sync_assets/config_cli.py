"""`sync-assets config check [FILE]` (for operators' CI) and `sync-assets config schema`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from sync_assets import project_config
from sync_assets.config_schema import json_schema, validate_config
from sync_assets.core.settings import ConfigError


def _side_checks(data: dict[str, Any]) -> list[str]:
    """What the sides check across entries: one source per table, table keys vs tables."""
    from sync_assets.ftp.config import load_sources
    from sync_assets.mysql import config as mysql_config

    errors: list[str] = []
    try:
        load_sources(data.get("ftp") or {})
    except ConfigError as exc:
        errors.append(str(exc))
    tables = mysql_config.configured_tables()  # MYSQL_TABLES or the stored list, if known
    if tables:
        try:
            mysql_config.check_table_keys(data.get("mysql") or {}, tables)
        except ConfigError as exc:
            errors.append(str(exc))
    return errors


def check_file(path: Path) -> list[str]:
    """Every error of the config file at `path` ([] when it is valid)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        return [f"cannot read the config: {exc}"]
    data = {} if data is None else data
    if not isinstance(data, dict):
        return ["the top level must be a mapping with `mysql`/`ftp` keys"]
    return validate_config(data) or _side_checks(data)


def run_check(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else project_config.config_path()
    if path is None:
        print(f"no config file (${project_config.CONFIG_ENV} unset, no ./sync_assets.yaml)")
        return 0
    errors = check_file(path)
    for error in errors:
        print(f"{path}: {error}", file=sys.stderr)
    if errors:
        print(f"{path}: {len(errors)} error(s)", file=sys.stderr)
        return 1
    print(f"{path}: ok")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(json_schema())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    config = subparsers.add_parser("config", help="check the YAML config, or print its JSON Schema")
    actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate a config file; exit 1 listing every error",
        description="Validate FILE (default: $SYNC_ASSETS_CONFIG, else ./sync_assets.yaml):"
        " every error with its path; table keys are matched to MYSQL_TABLES (or the stored"
        " table list) when known.",
    )
    check.add_argument("file", nargs="?", metavar="FILE")
    check.set_defaults(func=run_check)
    schema = actions.add_parser("schema", help="print the JSON Schema of the config file")
    schema.set_defaults(func=run_schema)
