"""Small helpers shared by test packages: opt-in tiers, a PostgreSQL role owning its database."""

from __future__ import annotations

import pytest
from psycopg import sql

from sync_assets.devtools.servers import ServerInfo
from sync_assets_tests.conftest import pg_admin_connect


def skip_tier_unless_selected(items: list[pytest.Item], config: pytest.Config, marker: str,
                              how: str) -> None:  # fmt: skip
    """Tests marked `marker` run only when `-m` names it (a tier of its own)."""
    if marker in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason=f"{marker} tier: run {how}")
    for item in items:
        if item.get_closest_marker(marker) is not None:
            item.add_marker(skip)


def create_owned_database(server: ServerInfo, name: str, password: str) -> None:
    """A login role `name` with a password, owning database `name` (what the postgres image
    gives the old container's POSTGRES_USER): no other privilege."""
    with pg_admin_connect(server) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(name)
            )
        )


def drop_owned_database(server: ServerInfo, name: str) -> None:
    with pg_admin_connect(server) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
