"""Environment-variable parsing with errors that name the variable (and never echo secrets)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

from sync_assets.core.secrets import SecretFileError, resolve_secret

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


def secret_setting(variable: str, value: str | None, file_path: str | None) -> str:
    """A secret from `variable` or from the file named by `variable`_FILE; a bad file or both
    set is a `ConfigError` naming the variables (never the content)."""
    try:
        return resolve_secret(variable, value, file_path)
    except SecretFileError as exc:
        raise ConfigError(str(exc)) from None


# --- PostgreSQL connection parameters (the sync's resource and Dagster's storage) --------------

PG_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
PG_DEFAULT_SSLMODE = "prefer"  # libpq's default: TLS when the server offers it, unverified


def parse_choice(name: str, raw: str | None, choices: tuple[str, ...], default: str) -> str:
    """One of `choices` (case-insensitive); empty means `default`; else an error naming `name`."""
    word = (raw or "").strip().lower()
    if not word:
        return default
    if word not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return word


def postgres_params(
    *,
    host: str | None,
    port: str | int | None,
    user: str | None,
    password: str | None = None,
    password_file: str | None = None,
    sslmode: str | None = None,
    sslrootcert: str | None = None,
    prefix: str = "POSTGRES",
) -> dict[str, Any]:
    """libpq keyword parameters (host, port, user, password, sslmode[, sslrootcert]).

    `password_file` is the Docker/Kubernetes secrets convention (`POSTGRES_PASSWORD_FILE`); the
    password is None when neither is set (libpq then uses trust, .pgpass or PGPASSWORD).
    `sslmode` and `sslrootcert` have libpq's meanings; `sslrootcert` may be `system`.
    """
    secret = secret_setting(f"{prefix}_PASSWORD", password, password_file)
    params: dict[str, Any] = {
        "host": require(f"{prefix}_HOST", host),
        "port": parse_int(f"{prefix}_PORT", port, 5432, 1),
        "user": require(f"{prefix}_USER", user),
        "password": secret or None,
        "sslmode": parse_choice(f"{prefix}_SSLMODE", sslmode, PG_SSLMODES, PG_DEFAULT_SSLMODE),
    }
    if sslrootcert:
        params["sslrootcert"] = sslrootcert
    return params


def postgres_params_from_env(
    environ: Mapping[str, str] | None = None, prefix: str = "POSTGRES"
) -> dict[str, Any]:
    """`postgres_params` read from `<prefix>_HOST`, `_PORT` (5432), `_USER`, `_PASSWORD` or
    `_PASSWORD_FILE`, `_SSLMODE` (prefer) and `_SSLROOTCERT`; the database name is the caller's.
    """
    env = os.environ if environ is None else environ
    return postgres_params(
        host=env.get(f"{prefix}_HOST"),
        port=env.get(f"{prefix}_PORT"),
        user=env.get(f"{prefix}_USER"),
        password=env.get(f"{prefix}_PASSWORD"),
        password_file=env.get(f"{prefix}_PASSWORD_FILE"),
        sslmode=env.get(f"{prefix}_SSLMODE"),
        sslrootcert=env.get(f"{prefix}_SSLROOTCERT"),
        prefix=prefix,
    )
