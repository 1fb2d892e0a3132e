"""How the legacy tables are laid out in steps: one step per table, or batches of tables.

A step is one process (multiprocess executor), one Celery task or one Kubernetes pod, and each
costs seconds of start-up (Python, Dagster, the code location) before its first table. With a
few dozen tables that is the price of per-table retries, per-table run config and spreading
tables over Celery workers; with hundreds it is most of the run. So:

- `MYSQL_TABLES_PER_STEP` (default `auto`): `1` keeps a step per table (op `legacy__<t>`);
  `N` > 1 groups the tables, sorted by name, into steps of at most N (ops `legacy_batch_01`,
  ... each a subsettable multi-asset of its tables); `auto` is 1 up to
  `PER_TABLE_STEPS_UP_TO` tables and `AUTO_TABLES_PER_STEP` beyond.
- `MYSQL_STEP_WORKERS` (default 4): tables a batch step syncs at once (threads), each holding
  one slot of the `mysql` pool, so the pool still bounds the tables read at once overall.

Only environment variables are read here (definitions load stays I/O-free). The figures behind
the defaults are in docs/performance.md (many tables).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from sync_assets.core.settings import ConfigError, parse_int

TABLES_PER_STEP_ENV = "MYSQL_TABLES_PER_STEP"
STEP_WORKERS_ENV = "MYSQL_STEP_WORKERS"
AUTO = "auto"
PER_TABLE_STEPS_UP_TO = 50
AUTO_TABLES_PER_STEP = 25
DEFAULT_STEP_WORKERS = 4


@dataclass(frozen=True)
class StepLayout:
    """The tables of each step, and how many of them a batch step syncs at once."""

    groups: list[list[str]]
    workers: int
    batched: bool  # False: a step per table (the ops and run config of one table)

    def op_name(self, index: int) -> str:
        """The batch op of group `index` (never `legacy__...`, the one-table ops' form)."""
        width = max(2, len(str(len(self.groups))))
        return f"legacy_batch_{index + 1:0{width}d}"


def tables_per_step(count: int, raw: str | None = None) -> int:
    """The configured tables per step for `count` tables (`auto` unless the variable says)."""
    raw = os.environ.get(TABLES_PER_STEP_ENV, "") if raw is None else raw
    word = raw.strip().lower()
    if word in ("", AUTO):
        return 1 if count <= PER_TABLE_STEPS_UP_TO else AUTO_TABLES_PER_STEP
    if not word.isdigit() or int(word) < 1:
        raise ConfigError(f"{TABLES_PER_STEP_ENV} must be {AUTO!r} or an integer >= 1, got {raw!r}")
    return int(word)


def step_workers() -> int:
    return parse_int(
        STEP_WORKERS_ENV, os.environ.get(STEP_WORKERS_ENV), DEFAULT_STEP_WORKERS, minimum=1
    )


def balanced_groups(tables: list[str], per_step: int) -> list[list[str]]:
    """The tables sorted by lower-cased name, cut into as few groups of at most `per_step` as
    possible, of sizes differing by at most one (51 tables by 25: 17 + 17 + 17)."""
    ordered = sorted(tables, key=lambda t: (t.lower(), t))
    count = math.ceil(len(ordered) / per_step) if ordered else 0
    size, extra = divmod(len(ordered), count) if count else (0, 0)
    groups, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        groups.append(ordered[start:end])
        start = end
    return groups


def step_layout(tables: list[str], per_step: int | None = None) -> StepLayout:
    per_step = tables_per_step(len(tables)) if per_step is None else per_step
    workers = step_workers()
    if per_step == 1:
        return StepLayout([[t] for t in tables], workers, batched=False)
    return StepLayout(balanced_groups(tables, per_step), workers, batched=True)
