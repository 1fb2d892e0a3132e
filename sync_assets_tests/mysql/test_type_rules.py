"""The MySQL → PostgreSQL type rules, one case per rule (pure: no server).

Each case names a rule by its README label, gives source columns it must match, and what the
rule makes of them: PostgreSQL type, SELECT expression (for a column `c`), COPY type, widening
family and rank, cursor kind. A rule without a case fails `test_every_rule_has_a_case`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from sync_assets.mysql.catalog import SourceColumn
from sync_assets.mysql.type_rules import (
    TYPE_RULES,
    TYPE_TABLE_HEADER,
    WIDENING_RANKS,
    cursor_kind,
    normalise_pg_type,
    render_type_table,
    rule_for,
)
from sync_assets.mysql.types import map_column

REPO = Path(__file__).resolve().parents[2]
ZERO_DATE = (
    "IF(YEAR(`c`) = 0 OR MONTH(`c`) = 0 OR DAYOFMONTH(`c`) = 0"
    " OR DAYOFMONTH(`c`) > DAYOFMONTH(LAST_DAY(`c`)), x'FC4E', {})"
)


def col(data_type: str, column_type: str = "", **facts: object) -> SourceColumn:
    return SourceColumn("c", data_type, column_type or data_type, True, **facts)


@dataclass(frozen=True)
class Case:
    """What rule `rule` (its README label) makes of each of `columns`."""

    rule: str
    columns: tuple[SourceColumn, ...]
    pg_type: str
    select: str  # the SELECT expression for a column named `c`
    copy_type: str = ""  # the value's type in COPY text when not `pg_type`
    rank: tuple[str | None, int | None] = (None, None)  # widening family and rank
    cursor: str | None = None
    as_boolean: bool = False  # the plan decided the column is boolean


INT = "`c`"
CASES = [
    Case(
        "`TINYINT(1)`",
        (col("tinyint", "tinyint(1)"), col("tinyint", "tinyint(1) unsigned")),
        "boolean",
        INT,
        copy_type="smallint",
        cursor="integer",
        as_boolean=True,
    ),
    Case(
        "`TINYINT` (signed/unsigned), `SMALLINT`",
        (
            col("tinyint", "tinyint(4)"),
            col("tinyint", "tinyint(3) unsigned"),
            col("tinyint", "tinyint(1)"),
            col("smallint", "smallint(6)"),
        ),
        "smallint",
        INT,
        rank=("integer", 5),
        cursor="integer",
    ),
    Case(
        "`SMALLINT UNSIGNED`, `MEDIUMINT`, `INT`",
        (
            col("smallint", "smallint(5) unsigned"),
            col("mediumint", "mediumint(8) unsigned"),
            col("int", "int(11)"),
            col("integer", "int(11)"),
        ),
        "integer",
        INT,
        rank=("integer", 10),
        cursor="integer",
    ),
    Case(
        "`INT UNSIGNED`, `BIGINT`",
        (col("int", "int(10) unsigned"), col("bigint", "bigint(20)")),
        "bigint",
        INT,
        rank=("integer", 19),
        cursor="integer",
    ),
    Case(
        "`BIGINT UNSIGNED`",
        (col("bigint", "bigint(20) unsigned"),),
        "numeric(20,0)",
        INT,
        rank=("integer", 20),
        cursor="integer",
    ),
    Case(
        "`DECIMAL(p,s)`",
        (col("decimal", "decimal(10,2)", precision=10, scale=2),),
        "numeric(10,2)",
        INT,
    ),
    Case("`FLOAT`", (col("float"),), "real", "CAST(`c` AS DOUBLE)", rank=("float", 24)),
    Case("`DOUBLE`", (col("double"),), "double precision", INT, rank=("float", 53)),
    Case("`BIT(n)`", (col("bit", "bit(12)"),), "bit(12)", "LPAD(BIN(`c`), 12, '0')"),
    Case("`DATE`", (col("date"),), "date", ZERO_DATE.format(INT), cursor="temporal"),
    Case(
        "`DATETIME(fsp)`",
        (col("datetime", "datetime(6)"),),
        "timestamp",
        ZERO_DATE.format(INT),
        cursor="temporal",
    ),
    Case(
        "`TIMESTAMP(fsp)`",
        (col("timestamp", "timestamp(3)"),),
        "timestamptz",
        ZERO_DATE.format("CONCAT(`c`, '+00')"),
        cursor="temporal",
    ),
    Case("`TIME(fsp)`", (col("time", "time(6)"),), "interval", INT),
    Case("`YEAR`", (col("year", "year(4)"),), "smallint", "CAST(`c` AS UNSIGNED)"),
    Case(
        "`JSON` (MySQL 8; MariaDB `LONGTEXT` + `json_valid`)",
        (col("json"), col("longtext", is_json=True, charset="utf8mb4")),
        "jsonb",
        "CAST(`c` AS BINARY)",
    ),
    Case(
        "`CHAR(n)`",
        (col("char", "char(5)", char_length=5, charset="latin1"),),
        "character(5)",
        "CAST(CONVERT(`c` USING utf8mb4) AS BINARY)",
    ),
    Case(
        "`VARCHAR`, `*TEXT` (any charset)",
        (col("varchar", "varchar(20)", charset="utf8mb4"), col("mediumtext", charset="ascii")),
        "text",
        "CAST(`c` AS BINARY)",
    ),
    Case("`ENUM`", (col("enum", "enum('a','b')"),), "text", "CAST(`c` AS BINARY)"),
    Case(
        "`SET`",
        (col("set", "set('a','b')", charset="utf8mb4"),),
        "text[]",
        "IF(`c` = '', '{}', CONCAT('{\"', REPLACE(REPLACE(REPLACE(CAST(`c` AS BINARY), x'5C',"
        " x'5C5C'), x'22', x'5C22'), ',', x'222C22'), '\"}'))",
    ),
    Case(
        "`BINARY`, `VARBINARY`, `*BLOB`",
        (col("varbinary", "varbinary(8)"), col("longblob")),
        "bytea",
        "CONCAT(x'5C78', HEX(`c`))",
    ),
    Case(
        "spatial types",
        (col("geometry"), col("point"), col("geomcollection")),
        "text",
        "ST_AsText(`c`)",
    ),
    Case("MariaDB `UUID`", (col("uuid"),), "uuid", "CAST(`c` AS CHAR)"),
    Case("MariaDB `INET4`, `INET6`", (col("inet4"), col("inet6")), "inet", "CAST(`c` AS CHAR)"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.rule for case in CASES])
def test_rule(case: Case) -> None:
    for column in case.columns:
        rule = rule_for(column, case.as_boolean)
        assert rule.mysql == case.rule, column
        mapping = map_column(column, "c", case.as_boolean)
        assert mapping.pg_type == case.pg_type
        assert mapping.select_expr == case.select
        assert mapping.copy_type == (case.copy_type or case.pg_type)
        assert (rule.family, rule.rank) == case.rank
        assert rule.cursor == case.cursor
        assert cursor_kind(column) == case.cursor


def test_every_rule_has_a_case() -> None:
    assert [case.rule for case in CASES] == [rule.mysql for rule in TYPE_RULES]


def test_a_boolean_rule_needs_the_plans_decision() -> None:
    flag = col("tinyint", "tinyint(1)")
    assert map_column(flag, "c").pg_type == "smallint"
    assert map_column(flag, "c", as_boolean=True).pg_type == "boolean"
    assert map_column(col("smallint"), "c", as_boolean=True).pg_type == "smallint"


def test_each_fixed_type_has_one_widening_rank() -> None:
    seen: dict[str, tuple[str | None, int | None]] = {}
    for rule in TYPE_RULES:
        if rule.family and isinstance(rule.pg_type, str):
            assert seen.setdefault(rule.pg_type, (rule.family, rule.rank)) == (
                rule.family,
                rule.rank,
            )
    assert WIDENING_RANKS["smallint"] == ("integer", 5)


def test_catalog_spellings_become_the_rules_vocabulary() -> None:
    assert normalise_pg_type("timestamp without time zone") == "timestamp"
    assert normalise_pg_type("timestamp with time zone") == "timestamptz"
    assert normalise_pg_type("character varying") == "text"
    assert normalise_pg_type("numeric(20,0)") == "numeric(20,0)"


def _type_table(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index("### Type mapping")
    first = lines.index(TYPE_TABLE_HEADER[0], start)
    table = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return "\n".join(table)


@pytest.mark.parametrize("doc", ["README.md", "docs/mysql.md"])
def test_docs_show_the_rules(doc: str) -> None:
    """The "Type mapping" table is rendered from the rules: paste `render_type_table()`."""
    assert _type_table(REPO / doc) == render_type_table()
