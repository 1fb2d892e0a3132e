"""Definitions of the MySQL side (filled in by the MySQL engine)."""

from __future__ import annotations

import dagster as dg


def build_mysql_defs() -> dg.Definitions:
    return dg.Definitions()
