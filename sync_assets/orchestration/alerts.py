"""Alerts: a failed run, a failed asset check (ERROR), a freshness breach, by e-mail and webhook.

Each channel is off unless configured (read when a sensor ticks, never at import):

- e-mail over SMTP: ALERT_SMTP_HOST, ALERT_SMTP_PORT (587 with STARTTLS, else 25),
  ALERT_SMTP_USER, ALERT_SMTP_PASSWORD or ALERT_SMTP_PASSWORD_FILE, ALERT_SMTP_STARTTLS
  (default true), ALERT_EMAIL_FROM, ALERT_EMAIL_TO (comma-separated);
- a JSON webhook: ALERT_WEBHOOK_URL, body `{"text": ...}` (Slack and Teams incoming webhooks).

One alert per incident: a failed run only when it will not be retried (the run-retry daemon's
`dagster/will_retry` tag), a check when it goes from passing (or never run) to failing, an
asset when its freshness state changes to FAIL. Texts carry names, ids and the error's first
line with every password variable's value masked; never a URL, password or connection string.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
from dagster._utils.error import SerializableErrorInfo

from sync_assets.core.secrets import redact
from sync_assets.core.settings import ConfigError, parse_bool, parse_int
from sync_assets.orchestration.run_log import redact_secrets

WILL_RETRY_TAG = "dagster/will_retry"
SENSOR_INTERVAL_SECONDS = 30
SEND_TIMEOUT_SECONDS = 30
MAX_ERROR_CHARS = 500
BATCH = 200
SUBJECT_PREFIX = "[sync_assets]"
FAILURE_PREFIX = "dagster._core.definitions.events.Failure: "


@dataclass(frozen=True)
class Alert:
    subject: str  # one line: what happened to what
    body: str  # the details an operator needs to start


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    user: str
    password: str
    starttls: bool
    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class AlertSettings:
    email: EmailSettings | None
    webhook_url: str | None

    @property
    def enabled(self) -> bool:
        return self.email is not None or self.webhook_url is not None

    def secrets(self) -> list[str]:
        return [s for s in (self.email.password if self.email else "", self.webhook_url) if s]


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _smtp_password() -> str:
    path = _env("ALERT_SMTP_PASSWORD_FILE")
    if not path:
        return os.environ.get("ALERT_SMTP_PASSWORD", "")
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"ALERT_SMTP_PASSWORD_FILE cannot be read: {exc.strerror}") from None


def _email_settings() -> EmailSettings | None:
    host = _env("ALERT_SMTP_HOST")
    if not host:
        return None
    recipients = tuple(a.strip() for a in _env("ALERT_EMAIL_TO").split(",") if a.strip())
    if not recipients:
        raise ConfigError(
            "ALERT_EMAIL_TO must list at least one address when ALERT_SMTP_HOST is set"
        )
    starttls = parse_bool("ALERT_SMTP_STARTTLS", _env("ALERT_SMTP_STARTTLS") or None, True)
    port = parse_int("ALERT_SMTP_PORT", _env("ALERT_SMTP_PORT"), 587 if starttls else 25, 1)
    user = _env("ALERT_SMTP_USER")
    sender = _env("ALERT_EMAIL_FROM") or user or f"sync_assets@{host}"
    return EmailSettings(host, port, user, _smtp_password(), starttls, sender, recipients)


def _webhook_url() -> str | None:
    url = _env("ALERT_WEBHOOK_URL")
    if url and urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError("ALERT_WEBHOOK_URL must be an http:// or https:// URL")
    return url or None


def alert_settings() -> AlertSettings:
    """The configured channels (both None: alerts are off)."""
    return AlertSettings(_email_settings(), _webhook_url())


# --- sending -----------------------------------------------------------------------------------


def send_email(settings: EmailSettings, alert: Alert) -> None:
    message = EmailMessage()
    message["Subject"] = f"{SUBJECT_PREFIX} {alert.subject}"
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message.set_content(alert.body)
    with smtplib.SMTP(settings.host, settings.port, timeout=SEND_TIMEOUT_SECONDS) as smtp:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.user:
            smtp.login(settings.user, settings.password)
        smtp.send_message(message)


def send_webhook(url: str, alert: Alert) -> None:
    text = f"{SUBJECT_PREFIX} {alert.subject}\n{alert.body}"
    request = urllib.request.Request(  # noqa: S310 (scheme checked: http or https only)
        url,
        data=json.dumps({"text": text}).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_SECONDS) as response:  # noqa: S310
        response.read()


def deliver(settings: AlertSettings, alert: Alert) -> list[str]:
    """Send on every configured channel; what failed, without any secret (URL included)."""
    failures: list[str] = []
    if settings.email is not None:
        try:
            send_email(settings.email, alert)
        except (OSError, smtplib.SMTPException) as exc:
            where = f"{settings.email.host}:{settings.email.port}"
            failures.append(f"e-mail via {where}: {redact(str(exc), settings.secrets())}")
    if settings.webhook_url is not None:
        try:
            send_webhook(settings.webhook_url, alert)
        except OSError as exc:  # URLError and HTTPError are OSErrors
            host = urlsplit(settings.webhook_url).hostname
            reason = redact(str(getattr(exc, "reason", exc)), settings.secrets())
            failures.append(f"webhook at {host}: {reason}")
    return failures


def deliver_all(settings: AlertSettings, alerts: Iterable[Alert]) -> int:
    """Send each alert; a channel that failed fails the tick (shown in the UI) afterwards."""
    sent, failures = 0, []
    for alert in alerts:
        failures.extend(deliver(settings, alert))
        sent += 1
    if failures:
        raise RuntimeError("alert not delivered: " + "; ".join(failures))
    return sent


def _clean(text: str, settings: AlertSettings) -> str:
    """`text` with password variables and alert secrets masked, cut to a readable length."""
    cleaned = redact(redact_secrets(text), settings.secrets()).strip()
    return cleaned if len(cleaned) <= MAX_ERROR_CHARS else cleaned[:MAX_ERROR_CHARS] + "..."


# --- failed runs ---------------------------------------------------------------------------------


def run_failure_alert(context: dg.RunFailureSensorContext, settings: AlertSettings) -> Alert | None:
    """The alert for a failed run, or None when the run-retry daemon will launch it again."""
    run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run
    if run.tags.get(WILL_RETRY_TAG) == "true":
        return None  # the retry's own failure, if any, is the incident
    failures = context.get_step_failure_events()
    steps = ", ".join(e.step_key or "?" for e in failures) or "none (the run itself failed)"
    first = failures[0].event_specific_data.error if failures else None  # type: ignore[union-attr]
    error = _root_message(first) if first is not None else (context.failure_event.message or "")
    attempt = run.tags.get("dagster/retry_number")
    body = (
        f"Run {run.run_id} of job {run.job_name} failed"
        + (f" (automatic retry {attempt})" if attempt else "")
        + f".\nFailed steps: {steps}\nError: {_clean(error, settings)}"
    )
    return Alert(f"run of {run.job_name} failed", body)


def _root_message(error: SerializableErrorInfo) -> str:
    """The error that started it (Dagster wraps a step's exception), without Failure's class."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip().removeprefix(FAILURE_PREFIX)


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="E-mail / webhook when a run failed and will not be retried (ALERT_* variables).",
)
def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
    settings = alert_settings()
    if not settings.enabled:
        return
    alert = run_failure_alert(context, settings)
    if alert is not None:
        deliver_all(settings, [alert])


# --- failed checks and freshness breaches (event log, cursor-based) ----------------------------


@dataclass
class EventCursor:
    """The last event read, plus what is failing now: an alert goes out on a transition."""

    after_id: int
    failing: set[str]

    @classmethod
    def parse(cls, raw: str | None) -> EventCursor | None:
        if not raw:
            return None
        data = json.loads(raw)
        return cls(int(data["after_id"]), set(data.get("failing", [])))

    def dump(self) -> str:
        return json.dumps({"after_id": self.after_id, "failing": sorted(self.failing)})

    def starts_failing(self, name: str, failing: bool) -> bool:
        """Record `name`'s state; True only on the change from not failing to failing."""
        if not failing:
            self.failing.discard(name)
            return False
        if name in self.failing:
            return False
        self.failing.add(name)
        return True


def _events_after(
    instance: dg.DagsterInstance, event_type: dg.DagsterEventType, after_id: int
) -> list[dg.EventLogRecord]:
    records = instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(event_type=event_type, after_cursor=after_id),
        limit=BATCH,
        ascending=True,
    )
    return list(records)


def check_alert(
    record: dg.EventLogRecord, cursor: EventCursor, settings: AlertSettings
) -> Alert | None:
    """An ERROR check that starts failing; a check failing again stays one incident."""
    evaluation = record.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
    key = evaluation.asset_check_key
    asset = key.asset_key.to_user_string()
    failed = not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    if not cursor.starts_failing(f"{asset}:{key.name}", failed):
        return None
    details = ", ".join(
        f"{k}={_clean(str(v.value), settings)}" for k, v in evaluation.metadata.items()
    )
    return Alert(
        f"check {asset}:{key.name} failed",
        f"Asset check {key.name} of {asset} failed (ERROR) in run {record.run_id}.\n{details}",
    )


def freshness_alert(
    record: dg.EventLogRecord, cursor: EventCursor, settings: AlertSettings
) -> Alert | None:
    """An asset whose freshness state changed to FAIL (the freshness daemon records changes)."""
    change = record.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
    name = change.key.to_user_string()
    if not cursor.starts_failing(name, change.new_state.value == "FAIL"):
        return None
    return Alert(
        f"{name} is stale",
        f"Asset {name} breached its freshness policy (was {change.previous_state.value}): its"
        " last materialisation is older than the window. Check the schedule and the last runs"
        " of its job.",
    )


AlertBuilder = Callable[[dg.EventLogRecord, EventCursor, AlertSettings], Alert | None]


def _event_sensor_tick(
    context: dg.SensorEvaluationContext, event_type: dg.DagsterEventType, build: AlertBuilder
) -> dg.SkipReason:
    cursor = EventCursor.parse(context.cursor)
    if cursor is None:  # first tick: from now on, not the whole history
        latest = context.instance.event_log_storage.get_maximum_record_id() or 0
        context.update_cursor(EventCursor(latest, set()).dump())
        return dg.SkipReason("alerts start from now")
    settings = alert_settings()
    records = _events_after(context.instance, event_type, cursor.after_id)
    alerts = [alert for record in records if (alert := build(record, cursor, settings))]
    if records:
        cursor.after_id = records[-1].storage_id
    sent = deliver_all(settings, alerts) if settings.enabled else 0
    context.update_cursor(cursor.dump())  # after delivery: a failed send is tried again
    return dg.SkipReason(f"{sent} alert(s) sent, {len(records)} event(s) read")


def _event_alert_sensor(
    name: str, event_type: dg.DagsterEventType, build: AlertBuilder, what: str
) -> dg.SensorDefinition:
    def evaluate(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        return _event_sensor_tick(context, event_type, build)

    return dg.SensorDefinition(
        name=name,
        evaluation_fn=evaluate,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"E-mail / webhook when {what} (ALERT_* variables).",
    )


alert_on_check_failure = _event_alert_sensor(
    "alert_on_check_failure",
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    check_alert,
    "an ERROR asset check starts failing",
)
alert_on_freshness_breach = _event_alert_sensor(
    "alert_on_freshness_breach",
    dg.DagsterEventType.FRESHNESS_STATE_CHANGE,
    freshness_alert,
    "an asset's freshness state turns FAIL",
)


ALERT_SENSORS = [alert_on_run_failure, alert_on_check_failure, alert_on_freshness_breach]
