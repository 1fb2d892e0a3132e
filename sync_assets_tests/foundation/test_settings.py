"""Pure logic: boolean/int parsing, secret masking, redaction."""

from __future__ import annotations

import pytest

from sync_assets.core.secrets import redact
from sync_assets.core.settings import ConfigError, parse_bool, parse_int
from sync_assets.resources import FTPResource, MySQLResource, PostgresResource


@pytest.mark.parametrize("raw", ["true", "TRUE", "1", "yes", "Yes", "on", " y "])
def test_parse_bool_true_spellings(raw: str) -> None:
    assert parse_bool("DELETE_AFTER_SYNC", raw) is True


@pytest.mark.parametrize("raw", ["false", "False", "0", "no", "off", "n", ""])
def test_parse_bool_false_spellings(raw: str) -> None:
    assert parse_bool("DELETE_AFTER_SYNC", raw) is False


@pytest.mark.parametrize("raw", ["maybe", "2", "tru", "yes!"])
def test_parse_bool_rejects_anything_else_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"DELETE_AFTER_SYNC must be one of .*" + raw[:2]):
        parse_bool("DELETE_AFTER_SYNC", raw)


def test_delete_after_sync_on_the_ftp_resource() -> None:
    assert FTPResource(delete_after_sync="Yes").should_delete_after_sync is True
    with pytest.raises(ConfigError, match="DELETE_AFTER_SYNC"):
        _ = FTPResource(delete_after_sync="sometimes").should_delete_after_sync


def test_parse_int_names_the_variable() -> None:
    assert parse_int("MYSQL_PORT", None, 3306) == 3306
    assert parse_int("MYSQL_PORT", "3307", 3306) == 3307
    with pytest.raises(ConfigError, match="MYSQL_PORT must be an integer, got 'abc'"):
        parse_int("MYSQL_PORT", "abc", 3306)


@pytest.mark.parametrize("cls", [PostgresResource, MySQLResource, FTPResource])
def test_repr_and_str_mask_the_password(cls: type) -> None:
    resource = cls(host="h", user="u", password="Pa55-Distinctive!")
    assert "Pa55-Distinctive!" not in repr(resource)
    assert "Pa55-Distinctive!" not in str(resource)
    assert "***" in repr(resource)


def test_missing_required_field_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="MYSQL_HOST is not set"):
        MySQLResource(host="", database="d", user="u").connect()


def test_redact_masks_every_secret() -> None:
    assert redact("login a:S3cret@h failed (S3cret)", ["S3cret", None, ""]) == (
        "login a:***@h failed (***)"
    )
