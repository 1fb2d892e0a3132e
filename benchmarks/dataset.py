"""The legacy table: generated deterministically inside MariaDB, changed by 1%, fingerprinted.

Rows come from MariaDB's sequence engine (`seq_1_to_N`) through one INSERT ... SELECT whose
every value is a pure function of the row number, so the same size always yields the same
bytes, and 1M rows take seconds instead of a Python loop. The shape is a typical legacy table
(about 150 bytes a row as `mysql --batch` prints it): int key, varchars with non-ASCII text,
decimal, datetime, timestamp, tinyint(1), enum, a nullable text that sometimes holds tabs,
newlines and backslashes, a full-precision double, an int, and an indexed update timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass

import pymysql

TABLE = "bench_orders"
PRIMARY_KEY = "id"
UPDATE_COLUMN = "last_update"

CREATE_TABLE = f"""
CREATE TABLE `{TABLE}` (
  `id` INT NOT NULL,
  `customer` VARCHAR(64) NOT NULL,
  `city` VARCHAR(48) NOT NULL,
  `amount` DECIMAL(12,2) NOT NULL,
  `ordered_at` DATETIME NOT NULL,
  `shipped_at` TIMESTAMP NULL DEFAULT NULL,
  `is_paid` TINYINT(1) NOT NULL,
  `status` ENUM('new','paid','shipped','cancelled','returned') NOT NULL,
  `note` TEXT NULL,
  `weight` DOUBLE NOT NULL,
  `quantity` INT NOT NULL,
  `{UPDATE_COLUMN}` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  KEY `idx_{UPDATE_COLUMN}` (`{UPDATE_COLUMN}`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
"""

FIRST_NAMES = (
    "Jürgen", "Anaïs", "Søren", "Łukasz", "Zoë", "José", "Дмитрий", "Çağla", "Ærøn", "Renée",
    "Nguyễn", "O'Brien", "Małgorzata", "Björn", "François", "Ольга",
)  # fmt: skip
LAST_NAMES = (
    "Müller", "Gößmann", "Šťastný", "Østergaard", "Núñez", "Kowalczyk", "Lefèvre", "Żółw",
    "Håkansson", "Dvořák", "Σωκράτης", "Smith", "李",
)  # fmt: skip
CITIES = (
    "München", "Köln", "Zürich", "Kraków", "Malmö", "São Paulo", "Reykjavík", "Tromsø", "Łódź",
    "Besançon", "Δελφοί",
)  # fmt: skip
STATUSES = ("new", "paid", "shipped", "cancelled", "returned")


def _elt(expr: str, values: tuple[str, ...]) -> str:
    """SQL choosing one of `values` by `expr` (0-based, taken modulo the count)."""
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"ELT(1 + ({expr}) % {len(values)}, {quoted})"


# `seq` is BIGINT UNSIGNED: subtractions happen after a cast, or MariaDB reports overflow.
# Multipliers are primes, so neighbouring rows differ in every column.
ROW_EXPRESSIONS = {
    "id": "seq",
    "customer": f"CONCAT({_elt('seq', FIRST_NAMES)}, ' ', {_elt('seq * 7', LAST_NAMES)},"
    " ' ', seq % 997)",
    "city": _elt("seq * 13", CITIES),
    "amount": "CAST(((seq * 7919) % 20000000) / 100 - 10000 AS DECIMAL(12,2))",
    "ordered_at": "TIMESTAMP'2015-01-01 00:00:00' + INTERVAL ((seq * 104729) % 283996800) SECOND",
    "shipped_at": "IF(seq % 10 = 0, NULL, FROM_UNIXTIME(1420070400 + (seq * 130363) % 283996800))",
    "is_paid": "(seq % 3 <> 0)",
    "status": _elt("seq * 3", STATUSES),
    "note": "IF(seq % 4 = 0, NULL, CONCAT('Lieferung ', seq, ' «vorsichtig»',"
    " IF(seq % 50 = 0, '\\tTab\\\\Backslash', ''), IF(seq % 97 = 0, '\\nZeile 2', '')))",
    # A full-precision double in [0, 1003): exactness of floating point is part of the test.
    "weight": "((seq * 2654435761) % 1000003) / 997.0e0",
    "quantity": "CAST((seq * 31) % 1000 AS SIGNED) - 10",
    UPDATE_COLUMN: "FROM_UNIXTIME(1577836800 + (seq * 7) % 157766400)",
}
COLUMNS = tuple(ROW_EXPRESSIONS)


@dataclass(frozen=True)
class ChangeStats:
    updated: int


def create_database(conn: pymysql.Connection, database: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")


def drop_table(conn: pymysql.Connection, database: str) -> None:
    """Remove the generated table (5M rows hold 600 MB on a server others use too)."""
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{database}`.`{TABLE}`")


def generate(conn: pymysql.Connection, database: str, rows: int) -> None:
    """(Re)create the table in `database` holding `rows` deterministic rows."""
    select_list = ",\n  ".join(ROW_EXPRESSIONS.values())
    columns = ", ".join(f"`{c}`" for c in COLUMNS)
    with conn.cursor() as cur:
        cur.execute(f"USE `{database}`")
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(f"DROP TABLE IF EXISTS `{TABLE}`")
        cur.execute(CREATE_TABLE)
        # One transaction, no per-row autocommit: InnoDB writes 1M rows in seconds this way.
        cur.execute("START TRANSACTION")
        cur.execute(
            f"INSERT INTO `{TABLE}` ({columns})\nSELECT\n  {select_list}\nFROM seq_1_to_{int(rows)}"
        )
        cur.execute("COMMIT")
        cur.execute(f"ANALYZE TABLE `{TABLE}`")
        cur.fetchall()


def change_one_percent(
    conn: pymysql.Connection,
    database: str,
    round_number: int,
    ending_seconds_ago: int = 0,
    spread_seconds: int = 0,
) -> ChangeStats:
    """Update a different 1% of the rows each round (id % 100 = round), with a new timestamp.

    The new `last_update` is `ending_seconds_ago` before the current second, as an application
    writing the row would set it; with `spread_seconds`, the rows spread over that many
    seconds ending there (writes made through an interval of the schedule). `note` and
    `quantity` change so that a sync that missed the update is caught.
    """
    residue = round_number % 100
    # MOD 0 is NULL in MySQL (a NOT NULL timestamp cannot take it); MOD 1 is 0 for every row
    spread = max(spread_seconds, 1)
    with conn.cursor() as cur:
        cur.execute(f"USE `{database}`")
        cur.execute(
            f"UPDATE `{TABLE}` SET `quantity` = `quantity` + 1,"
            f" `note` = CONCAT('geändert in Runde ', %s),"
            f" `{UPDATE_COLUMN}` = CURRENT_TIMESTAMP - INTERVAL %s SECOND"
            f" - INTERVAL ((`id` DIV 100) MOD %s) SECOND WHERE `id` %% 100 = %s",
            (round_number, ending_seconds_ago, spread, residue),
        )
        return ChangeStats(updated=cur.rowcount)


def row_count(conn: pymysql.Connection, database: str) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{database}`.`{TABLE}`")
        row = cur.fetchone()
    return int(row[0]) if row else 0


def parse_size(text: str) -> int:
    """Sizes as 100k, 1M, 5M or plain integers."""
    units = {"k": 1_000, "m": 1_000_000}
    text = text.strip().lower().replace("_", "")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)
