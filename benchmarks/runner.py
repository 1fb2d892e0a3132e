"""Materialise assets through the project's real definitions, in a process of their own.

    python -m benchmarks.runner legacy/bench_orders [more/keys ...]

Configuration comes from the environment exactly as in production (POSTGRES_*, MYSQL_*, FTP_*,
MYSQL_TABLES, SYNC_ASSETS_CONFIG). The definitions are built with
`sync_assets.definitions.build_definitions()` and the selected assets run in-process on an
ephemeral instance, so the measured process holds the engine and nothing else. The last line of
stdout is `BENCH_RESULT {json}`: timestamps of the run's phases (epoch seconds) and the
metadata of each materialisation, for the harness to report.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

RESULT_MARKER = "BENCH_RESULT "
BULKY_METADATA = {"dagster/column_schema"}
MISSING_EXIT_CODE = 3  # the definitions have no such asset (its engine is not there yet)


def _plain(value: Any) -> Any:
    """A metadata value as JSON-friendly data."""
    inner = getattr(value, "value", value)
    if isinstance(inner, int | float | str | bool) or inner is None:
        return inner
    return str(inner)


def _collect(instance: Any, run_id: str) -> dict[str, Any]:
    phases: dict[str, float] = {}
    materialized: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type.name  # RUN_START, STEP_START, ... (values are legacy names)
        phases.setdefault(f"first_{kind}", entry.timestamp)
        phases[f"last_{kind}"] = entry.timestamp
        if kind == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            key = "/".join(mat.asset_key.path)
            materialized[key] = {
                k: _plain(v) for k, v in mat.metadata.items() if k not in BULKY_METADATA
            }
        elif kind in {"STEP_FAILURE", "RUN_FAILURE"}:
            failures.append(str(event.message or "")[:2000])
    return {"phases": phases, "materialized": materialized, "failures": failures}


def main(argv: list[str]) -> int:
    started = time.time()
    import dagster as dg

    from sync_assets.definitions import build_definitions

    imported = time.time()
    defs = build_definitions()
    keys = [dg.AssetKey(k.split("/")) for k in argv]
    missing = [k.to_user_string() for k in keys if k not in defs.resolve_all_asset_keys()]
    if missing:
        print(RESULT_MARKER + json.dumps({"success": False, "missing": missing}), flush=True)
        return MISSING_EXIT_CODE
    job = defs.resolve_implicit_global_asset_job_def()
    built = time.time()
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            instance=instance, asset_selection=keys, raise_on_error=False
        )
        report = _collect(instance, result.run_id)
    report.update(
        success=result.success,
        started=started,
        imported=imported,
        definitions_built=built,
        finished=time.time(),
    )
    print(RESULT_MARKER + json.dumps(report), flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
