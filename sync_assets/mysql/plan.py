"""Incremental or full refresh, and why: a pure decision over facts already read.

`plan_sync` takes the source table's columns and keys, the target's existing columns, the stored
state and (for a full refresh that must scan) which TINYINT(1) columns hold values other than
0/1; it touches no server, so every branch of the decision has a fast unit test.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from sync_assets.core.settings import ConfigError
from sync_assets.mysql import config
from sync_assets.mysql.catalog import SourceTable
from sync_assets.mysql.state import TableState
from sync_assets.mysql.type_rules import cursor_kind
from sync_assets.mysql.types import ColumnMapping, map_column, type_change

INCREMENTAL = "incremental"
FULL_REFRESH = "full_refresh"


@dataclass(frozen=True)
class PlanInputs:
    """What the decision needs to know, read before it."""

    table: SourceTable
    names: dict[str, str]  # source column → target column
    cursor: str | None  # the source's cursor column, if any
    wanted_mode: str  # the table's `mode` option: auto | incremental | full_refresh
    existing: dict[str, str]  # target columns → their type ({} when there is no table yet)
    state: TableState | None  # what the last successful run stored
    force_full: str | None = None  # why an earlier attempt found a full refresh necessary
    scan_booleans: bool = False  # a guessed BOOLEAN met another value: scan every candidate

    @property
    def pk_targets(self) -> list[str]:
        return [self.names[c] for c in self.table.primary_key]


@dataclass
class Plan:
    mode: str
    reason: str
    mappings: list[ColumnMapping]
    widened: list[ColumnMapping] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # kept target columns → their type
    guessed: set[str] = field(default_factory=set)  # TINYINT(1) made BOOLEAN without a scan
    added: list[str] = field(default_factory=list)  # target columns MySQL has added
    # TINYINT(1) columns whose type only a scan can decide; while `scan_pending`, plan again
    # with the scan's result (`not_boolean`).
    to_scan: list[str] = field(default_factory=list)
    scan_pending: bool = False


def choose_cursor(source: SourceTable, options: config.TableOptions) -> str | None:
    """The configured cursor column (checked), else the one auto-updated date/time column."""
    by_name = {c.name: c for c in source.columns}
    if options.cursor_column:
        col = by_name.get(options.cursor_column)
        if col is None:
            raise ConfigError(
                f"mysql.tables.{options.name}.cursor_column {options.cursor_column!r} is not a"
                f" column of the table"
            )
        if cursor_kind(col) is None:
            raise ConfigError(
                f"cursor column {col.name!r} must be a date/time or integer column,"
                f" not {col.column_type}"
            )
        return col.name
    auto = [c.name for c in source.columns if cursor_kind(c) == "temporal" and c.auto_updated]
    return auto[0] if len(auto) == 1 else None


def plan_sync(inputs: PlanInputs, not_boolean: Collection[str] | None = None) -> Plan:
    """The mode, its reason and the column mappings. `not_boolean`: the scan's result, for a
    plan that came back with `scan_pending` (None: not scanned yet)."""
    targets = set(inputs.names.values())
    kept = {t: ty for t, ty in inputs.existing.items() if t not in targets}

    def full(reason: str, added: list[str] | None = None) -> Plan:
        guessed, scanned = boolean_candidates(inputs)
        pending = bool(scanned) and not_boolean is None
        booleans = guessed | (scanned - set(not_boolean or ()))
        return Plan(
            FULL_REFRESH,
            reason,
            _mappings(inputs, booleans),
            dropped=kept,
            guessed=guessed,
            added=added or [],
            to_scan=sorted(scanned),
            scan_pending=pending,
        )

    reason = incremental_blocker(inputs)
    if reason:
        return full(reason)
    existing, names = inputs.existing, inputs.names
    current_bool = {
        c.name for c in inputs.table.columns if existing.get(names[c.name]) == "boolean"
    }
    mappings = _mappings(inputs, current_bool)
    widened: list[ColumnMapping] = []
    for m in mappings:
        old = existing.get(m.target)
        if old is None:
            return full(f"column {m.target!r} was added in MySQL", added=[m.target])
        change = type_change(old, m.pg_type)
        if change == "incompatible":
            return full(f"type of column {m.target!r} changed incompatibly: {old} → {m.pg_type}")
        if change == "widen":
            widened.append(m)
    return Plan(INCREMENTAL, "cursor and primary key", mappings, widened, kept)


def _mappings(inputs: PlanInputs, as_boolean: set[str]) -> list[ColumnMapping]:
    return [
        map_column(c, inputs.names[c.name], c.name in as_boolean, inputs.table.name)
        for c in inputs.table.columns
    ]


def boolean_candidates(inputs: PlanInputs) -> tuple[set[str], set[str]]:
    """The TINYINT(1) columns a full refresh makes BOOLEAN without reading the table (those
    the copy does not hold as integers already), and those it scans first (the others).

    Scanning costs a pass over the table before the first row moves; a guess is checked by
    PostgreSQL itself: COPY refuses any value other than 0/1 for a boolean, and the run then
    starts over with every candidate scanned."""
    candidates = {c.name for c in inputs.table.columns if c.bool_candidate}
    if inputs.scan_booleans:
        return set(), candidates
    existing, names = inputs.existing, inputs.names
    integers = {n for n in candidates if existing.get(names[n], "boolean") != "boolean"}
    return candidates - integers, integers


def incremental_blocker(inputs: PlanInputs) -> str | None:
    """Why this run cannot be incremental (None when it can)."""
    wants = inputs.wanted_mode
    if inputs.force_full:
        return inputs.force_full
    if wants == FULL_REFRESH:
        return "full refresh configured"
    structural = None
    if not inputs.table.primary_key:
        structural = "the table has no primary key"
    elif not inputs.cursor:
        structural = "no cursor column (configure cursor_column)"
    if structural:
        if wants == INCREMENTAL:
            raise ConfigError(
                f"mysql.tables.{inputs.table.name}: incremental impossible: {structural}"
            )
        return structural
    if not inputs.existing:
        return "first load"
    state = inputs.state
    if state is None or state.watermark is None:
        return "no watermark stored yet"
    cursor_target = inputs.names[str(inputs.cursor)]  # there is one: checked above
    if state.primary_key != inputs.pk_targets or state.cursor_column != cursor_target:
        return "primary key or cursor column changed"
    return None
