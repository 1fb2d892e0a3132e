"""Pure logic: widening rules, names, ENUM parsing, options."""

from __future__ import annotations

import pytest

from sync_assets.core.pg import derived_name
from sync_assets.core.settings import ConfigError
from sync_assets.mysql.config import table_options
from sync_assets.mysql.naming import NameCollisionError, asset_name, lower_names, mq
from sync_assets.mysql.types import (
    SourceColumn,
    UnsupportedTypeError,
    enum_values,
    map_column,
    type_change,
)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("smallint", "integer", "widen"),
        ("integer", "numeric(20,0)", "widen"),
        ("bigint", "integer", "incompatible"),
        ("integer", "numeric(12,2)", "widen"),
        ("integer", "numeric(9,0)", "incompatible"),
        ("numeric(5,2)", "numeric(12,4)", "widen"),
        ("numeric(5,2)", "numeric(5,3)", "incompatible"),
        ("real", "double precision", "widen"),
        ("character(3)", "character(10)", "widen"),
        ("character(3)", "text", "widen"),
        ("text", "integer", "incompatible"),
        ("boolean", "smallint", "incompatible"),
        ("timestamp", "timestamp", "same"),
    ],
)
def test_type_change(old: str, new: str, expected: str) -> None:
    assert type_change(old, new) == expected


def test_names() -> None:
    assert mq("a`b") == "`a``b`"
    assert lower_names(["Id", "Name"], "column") == {"Id": "id", "Name": "name"}
    with pytest.raises(NameCollisionError, match="'Id' and 'ID' both become 'id'"):
        lower_names(["Id", "ID"], "column")
    long = "x" * 70
    assert len(derived_name(long, "pkey").encode()) == 63
    assert derived_name(long, "pkey") != derived_name("y" * 70, "pkey")
    assert derived_name("t", "pkey") == "t_pkey"
    assert asset_name("orders") == "orders"
    assert asset_name("my table") != asset_name("my-table")


def test_enum_values_as_information_schema_spells_them() -> None:
    assert enum_values("enum('G','PG-13','it''s','a,b','back\\\\slash','')") == [
        "G",
        "PG-13",
        "it's",
        "a,b",
        "back\\slash",
        "",
    ]


def test_unknown_type_is_refused_with_its_name() -> None:
    col = SourceColumn("c", "vector", "vector(3)", True)
    with pytest.raises(UnsupportedTypeError, match="column 'c' of table 't' has type 'vector"):
        map_column(col, "c", table="t")


def test_options_validation() -> None:
    section = {"defaults": {"overlap_seconds": 10}, "tables": {"t": {"deletes": "always"}}}
    options = table_options("t", section)
    assert (options.overlap_seconds, options.deletes, options.mode) == (10, "always", "auto")
    with pytest.raises(ConfigError, match="max_delete_fraction"):
        table_options("t", {"tables": {"t": {"max_delete_fraction": 0}}})
    with pytest.raises(ConfigError, match="must be a mapping"):
        table_options("t", {"tables": ["t"]})
