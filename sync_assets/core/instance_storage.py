"""Dagster's own storage in PostgreSQL, connected with the same settings as the sync.

dagster.yaml cannot read a password from a file nor pass `sslmode` from a variable (its
`params` are literal), so this storage builds its URL from `postgres_params_from_env` at
instance load (no I/O at import): POSTGRES_HOST/PORT/USER, POSTGRES_PASSWORD or
POSTGRES_PASSWORD_FILE, POSTGRES_SSLMODE, POSTGRES_SSLROOTCERT. In dagster.yaml:

    storage:
      custom:
        module: sync_assets.core.instance_storage
        class: EnvPostgresStorage
        config:
          db_name: {env: DAGSTER_PG_DB}

The UI's instance page shows this config (variable names), never the URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import get_conn_string

from sync_assets.core.settings import postgres_params_from_env

if TYPE_CHECKING:
    from dagster._serdes import ConfigurableClassData

# dagster-postgres 0.29 closes psycopg 3 connections it means to keep: psycopg2 is what it expects.
DEFAULT_SCHEME = "postgresql+psycopg2"


def postgres_url_from_env(
    db_name: str, scheme: str = DEFAULT_SCHEME, prefix: str = "POSTGRES"
) -> str:
    """The SQLAlchemy URL of `db_name` from the `<prefix>_*` variables (password encoded)."""
    params = postgres_params_from_env(prefix=prefix)
    query = {"sslmode": params["sslmode"]}
    if "sslrootcert" in params:
        query["sslrootcert"] = params["sslrootcert"]
    return get_conn_string(
        username=params["user"],
        password=params["password"] or "",
        hostname=params["host"],
        db_name=db_name,
        port=str(params["port"]),
        params=query,
        scheme=scheme,
    )


class EnvPostgresStorage(DagsterPostgresStorage):
    """`DagsterPostgresStorage` whose connection comes from the POSTGRES_* variables."""

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {
            "db_name": dg.StringSource,
            "scheme": dg.Field(dg.StringSource, is_required=False, default_value=DEFAULT_SCHEME),
            "env_prefix": dg.Field(str, is_required=False, default_value="POSTGRES"),
        }

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> EnvPostgresStorage:
        url = postgres_url_from_env(
            config_value["db_name"], config_value["scheme"], config_value["env_prefix"]
        )
        return cls(postgres_url=url, inst_data=inst_data)
