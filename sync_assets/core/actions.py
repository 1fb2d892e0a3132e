"""Operator actions launched from the UI with run config, and their audit trail.

An action (full refresh, verify every value, re-ingest, dry run) is a run like any other: its
config is stored with the run, and the run gets tags saying what was done, by whom and why,
so the Runs page can be filtered by them (`sync_assets/action=full_refresh`). Empty config is
no action: the scheduled runs behave as before.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from sync_assets.core.settings import ConfigError

ACTION_TAG = "sync_assets/action"
TARGET_TAG = "sync_assets/target"
REASON_TAG = "sync_assets/reason"
REQUESTED_BY_TAG = "sync_assets/requested_by"
# Tags are one line each in the UI; the full reason stays in the run config and the log.
TAG_VALUE_CHARS = 200


class ActionConfig(dg.Config):
    """Who asks for an action and why: recorded as run tags, metadata and a log line."""

    reason: str = Field(
        default="",
        description="Why this action is taken (required for an action; recorded as the run's"
        " tag sync_assets/reason).",
    )
    requested_by: str = Field(
        default="",
        description="Who asks for it (recorded as the run's tag sync_assets/requested_by).",
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())[:TAG_VALUE_CHARS]


def record_action(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
    action: str,
    target: str,
    config: ActionConfig,
) -> dict[str, str]:
    """Tag the run with the action, log one line, and return the metadata to attach.

    A writing action without a reason is refused (a ConfigError: the step fails at once)."""
    reason = _one_line(config.reason)
    if not reason:
        raise ConfigError(
            f"{action} of {target}: give a `reason` in the run config; it is recorded with the run"
        )
    who = _one_line(config.requested_by) or "unknown"
    tags = {ACTION_TAG: action, TARGET_TAG: _one_line(target), REASON_TAG: reason}
    tags[REQUESTED_BY_TAG] = who
    context.instance.add_run_tags(context.run.run_id, tags)
    context.log.info(f"action {action} of {target} requested by {who}: {reason}")
    return {"action": action, "action_reason": reason, "action_requested_by": who}
