"""Definitions of the jobs and schedules (filled in by orchestration)."""

from __future__ import annotations

import dagster as dg


def build_orchestration_defs() -> dg.Definitions:
    return dg.Definitions()
