"""Observations of the `ftp/<name>` sources between runs: the backlog waiting on the server.

A sensor (no run launched, nothing written) lists each source every few minutes, compares
with the ledger and records an `AssetObservation` with the files and bytes a run would load:
the source's page plots the backlog even while no run happens. Chosen over an observable
source asset, whose observations each need a run of their own.
"""

from __future__ import annotations

import logging

import dagster as dg

from sync_assets.core.secrets import redact
from sync_assets.ftp.actions import preview_source
from sync_assets.ftp.config import SourceConfig
from sync_assets.resources import FTPResource, PostgresResource

SENSOR_NAME = "ftp_backlog_observations"
# Every 5 minutes, like the job's schedule: a listing per source is cheap.
INTERVAL_SECONDS = 300
# A down server must not hold the tick long: one attempt, no backoff series.
PREVIEW_RETRIES = 1


def backlog_observation(
    key: dg.AssetKey, files: int, size: int, **extra: object
) -> dg.AssetObservation:
    """The backlog of `ftp/<name>` (files and bytes waiting for a run), plottable in the UI."""
    return dg.AssetObservation(
        asset_key=key, metadata={"backlog_files": files, "backlog_bytes": size, **extra}
    )


def observe_backlog(
    ftp: FTPResource,
    postgres: PostgresResource,
    sources: list[tuple[SourceConfig, dg.AssetKey]],
    log: logging.Logger | None = None,
) -> tuple[list[dg.AssetObservation], list[str]]:
    """One observation per source that could be listed, and the errors of the others."""
    observations: list[dg.AssetObservation] = []
    problems: list[str] = []
    for source, key in sources:
        try:
            preview = preview_source(ftp, postgres, source, log, retries=PREVIEW_RETRIES)
        except Exception as exc:  # one source down must not hide the others
            message = redact(ftp.redact(str(exc)), [postgres.password])
            problems.append(f"{source.name}: {type(exc).__name__}: {message}")
            continue
        counts = preview.counts()
        observations.append(
            backlog_observation(
                key,
                len(preview.backlog),
                preview.backlog_bytes,
                files_listed=len(preview.files),
                files_failed=counts["failed"],
                observed_by="sensor",
            )
        )
    return observations, problems


def build_backlog_sensor(sources: list[tuple[SourceConfig, dg.AssetKey]]) -> dg.SensorDefinition:
    """The sensor observing `sources` (each with the key of its `ftp/<name>` spec)."""

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Backlog of each FTP source (files and bytes waiting) as observations of"
        " ftp/<name>, between runs; reads the FTP listing and the ledger, writes nothing.",
    )
    def ftp_backlog_observations(
        context: dg.SensorEvaluationContext, ftp: FTPResource, postgres: PostgresResource
    ) -> dg.SensorResult | dg.SkipReason:
        observations, problems = observe_backlog(ftp, postgres, sources, context.log)
        if not observations:
            return dg.SkipReason("backlog not observed: " + "; ".join(problems or ["no source"]))
        for problem in problems:
            context.log.warning(f"backlog not observed: {problem}")
        return dg.SensorResult(asset_events=observations)

    return ftp_backlog_observations
