"""Names: MySQL quoting, lower-casing with collision errors, derived PostgreSQL names, asset keys.

Source names are never pasted raw into SQL: MySQL names go through `mq` (backticks doubled),
PostgreSQL names through `core.pg.ident`. Derived names (staging tables, index names) come from
`core.pg.derived_name`, which keeps them within PostgreSQL's limit with a stable hash suffix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sync_assets.core.pg import check_identifier, short_hash
from sync_assets.core.settings import ConfigError


class NameCollisionError(ConfigError):
    """Two source names become the same name after lower-casing (or key sanitising)."""


def mq(name: str) -> str:
    """A MySQL identifier quoted with backticks (embedded backticks doubled)."""
    if "\x00" in name:
        raise ValueError(f"MySQL identifier {name!r} contains a NUL character")
    return "`" + name.replace("`", "``") + "`"


def lower_names(names: Iterable[str], what: str) -> dict[str, str]:
    """Map each source name to its lower-cased target name; a collision names both sources."""
    seen: dict[str, str] = {}
    result: dict[str, str] = {}
    for name in names:
        target = check_identifier(name.lower(), what)
        if target in seen:
            raise NameCollisionError(
                f"{what}s {seen[target]!r} and {name!r} both become {target!r} after"
                " lower-casing; rename one of them in MySQL or exclude one"
            )
        seen[target] = name
        result[name] = target
    return result


_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def asset_name(table: str) -> str:
    """A Dagster-safe asset key component for a (lower-cased) table name.

    Dagster accepts only letters, digits and underscores; other characters become `_` and a
    short hash keeps distinct tables distinct (the real name stays in the description).
    """
    safe = _KEY_UNSAFE.sub("_", table)
    if safe == table:
        return table
    return f"{safe}_{short_hash(table)}"
