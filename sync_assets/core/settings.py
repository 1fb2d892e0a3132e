"""Environment-variable parsing with errors that name the variable (and never echo secrets)."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "off", ""})


class ConfigError(ValueError):
    """A variable is missing or malformed. The message names the variable, never a secret."""


def parse_bool(name: str, raw: str | bool | None, default: bool = False) -> bool:
    """Parse the usual spellings of a boolean; anything else is a clear error naming `name`."""
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(
        f"{name} must be one of true/false/1/0/yes/no/on/off (case-insensitive), got {raw!r}"
    )


def parse_int(name: str, raw: str | int | None, default: int, minimum: int = 0) -> int:
    """Parse an integer variable such as a port; a bad value names the variable."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_or(name: str, default: Any) -> Any:
    """An `EnvVar` when the variable is set (the UI then shows its name), else the default.

    Used for optional settings, so that the code location loads with no variable set.
    """
    return dg.EnvVar(name) if name in os.environ else default


def require(name: str, value: str | None) -> str:
    """A required setting that ended up empty is a clear error naming the variable."""
    if value is None or value == "":
        raise ConfigError(f"environment variable {name} is not set (required)")
    return value
