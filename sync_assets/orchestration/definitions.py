"""Definitions of the jobs, schedules and run-status log lines; freshness for the two groups."""

from __future__ import annotations

import warnings
from datetime import timedelta

import dagster as dg

from sync_assets.orchestration.alerts import ALERT_SENSORS
from sync_assets.orchestration.jobs import FTP_GROUP, MYSQL_GROUP, ftp_logs_job, mysql_sync_job
from sync_assets.orchestration.run_log import RUN_LOG_SENSORS
from sync_assets.orchestration.schedules import build_schedules

# The UI flags an asset whose last materialisation is older than this. Three missed FTP ticks
# (5 min cadence) and three missed MySQL ticks (15 min cadence) are worth a look. Keyed by
# (group, first key part): the external source specs (`ftp/...`, `mysql/...`) may share the
# group but are never materialised here, so they get no policy.
FRESHNESS_WINDOWS = {
    (FTP_GROUP, "logs"): timedelta(minutes=15),
    (MYSQL_GROUP, "legacy"): timedelta(minutes=45),
}


def build_orchestration_defs() -> dg.Definitions:
    return dg.Definitions(
        jobs=[ftp_logs_job, mysql_sync_job],
        schedules=build_schedules(),
        sensors=[*RUN_LOG_SENSORS, *ALERT_SENSORS],
    )


def _with_group_freshness(spec: dg.AssetSpec) -> dg.AssetSpec:
    window = FRESHNESS_WINDOWS.get((spec.group_name or "", spec.key.path[0]))
    if window is None or spec.freshness_policy is not None:
        return spec  # not ours, or the asset declares its own policy
    return spec.replace_attributes(freshness_policy=dg.FreshnessPolicy.time_window(window))


def with_freshness(defs: dg.Definitions) -> dg.Definitions:
    """`defs` with a time-window freshness policy on every asset of the two synced groups.

    Applied once the sides are merged, so it covers assets whatever module defines them.
    """
    with warnings.catch_warnings():
        # Definitions.map_asset_specs is marked preview in 1.13; its behaviour is what we need.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return defs.map_asset_specs(func=_with_group_freshness)
