"""The project's YAML configuration (per-table MySQL options, FTP log sources) and state dir.

Reading a local file is the only I/O allowed at definitions load; servers are never contacted.
Path: $SYNC_ASSETS_CONFIG, else ./sync_assets.yaml, else no file (built-in defaults).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from sync_assets.core.settings import ConfigError

CONFIG_ENV = "SYNC_ASSETS_CONFIG"
STATE_DIR_ENV = "SYNC_ASSETS_STATE_DIR"
DEFAULT_CONFIG_NAME = "sync_assets.yaml"


def config_path() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV} points to {explicit!r}, which is not a file")
        return path
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.is_file() else None


def load_project_config() -> dict[str, Any]:
    """The parsed YAML mapping ({} when there is no file). Sections: `mysql`, `ftp`."""
    path = config_path()
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with `mysql`/`ftp` keys")
    check_config(data, path)
    return data


def check_config(data: Any, path: Path | str) -> None:
    """Refuse the whole file with every error at once, each with its path in the file."""
    from sync_assets.config_schema import validate_config  # models import this module's users

    errors = validate_config(data)
    if errors:
        listed = "\n".join(f"  {error}" for error in errors)
        raise ConfigError(f"{path}: {len(errors)} error(s) in the config:\n{listed}")


def section(name: str) -> dict[str, Any]:
    value = load_project_config().get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"the `{name}` section of the project config must be a mapping")
    return value


def state_dir() -> Path:
    """Where refresh steps store discovered state (e.g. the MySQL table list)."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    dagster_home = os.environ.get("DAGSTER_HOME")
    base = Path(dagster_home) if dagster_home else Path.cwd()
    return base / ".sync_assets_state"
