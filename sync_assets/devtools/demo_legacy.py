"""The demo's legacy MySQL/MariaDB database: seeded from deploy/demo/legacy_demo.sql, then
changed over time (new orders, status changes, price updates) so every sync finds new rows."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pymysql

SEED_SQL = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "legacy_demo.sql"
DEMO_TABLES = ("machines", "orders", "products")
CUSTOMERS = ("Müller GmbH", "Acme Corp.", "Dupont & Fils", "Kowalski Sp. z o.o.", "岩田工業")
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)


def seed_statements(path: Path = SEED_SQL) -> list[str]:
    """The seed file's statements (split at a `;` that ends a line), comments kept."""
    text = path.read_text(encoding="utf-8")
    return [part.strip() for part in _STATEMENT_END.split(text) if _has_sql(part)]


def _has_sql(part: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in part.splitlines())


def seed_legacy(conn: pymysql.connections.Connection) -> None:
    """Create the demo tables and their first rows (idempotent: re-running changes nothing)."""
    with conn.cursor() as cur:
        for statement in seed_statements():
            cur.execute(statement)


def mutate_legacy(conn: pymysql.connections.Connection, rng: random.Random) -> None:
    """One round of business: a new order, an order moving on, sometimes a price change."""
    now = datetime.now(UTC).replace(tzinfo=None)
    quantity = rng.randint(1, 50)
    with conn.cursor() as cur:
        cur.execute("SELECT sku, price FROM products ORDER BY RAND() LIMIT 1")
        sku, price = cur.fetchone()
        cur.execute(
            "INSERT INTO orders (customer, sku, quantity, amount, ordered_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (rng.choice(CUSTOMERS), sku, quantity, Decimal(price) * quantity, now),
        )
        cur.execute(
            "UPDATE orders SET status = ELT(FIELD(status, 'new', 'paid'), 'paid', 'shipped')"
            " WHERE status IN ('new', 'paid') ORDER BY RAND() LIMIT 1"
        )
        if rng.random() < 0.2:
            cur.execute(
                "UPDATE products SET price = ROUND(price * %s, 2) WHERE sku = %s",
                (Decimal(str(round(rng.uniform(0.95, 1.08), 3))), sku),
            )
