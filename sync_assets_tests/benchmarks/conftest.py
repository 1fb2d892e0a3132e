"""Fixtures shared by the benchmark harness's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync_assets.devtools.servers import ServerInfo
from sync_assets_tests.conftest import create_mysql_database, drop_mysql_database


@pytest.fixture
def source_db(request: pytest.FixtureRequest, mysql_server: ServerInfo) -> Iterator[str]:
    """A fresh MariaDB database for a generated table (named after the test module), dropped
    afterwards."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    name = create_mysql_database(mysql_server, f"sa_bench_{module}")
    yield name
    drop_mysql_database(mysql_server, name)
