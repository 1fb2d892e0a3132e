"""Alerts through a real SMTP server (aiosmtpd, with login) and a real HTTP receiver, from the
sensors evaluated against a real instance holding real failed runs and check evaluations."""

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_string, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from sync_assets.core.errors import run_classified
from sync_assets.core.settings import ConfigError
from sync_assets.devtools.servers import ServerInfo, free_port
from sync_assets.orchestration import alerts
from sync_assets_tests.conftest import create_pg_database, drop_pg_database

SMTP_USER = "alerts"
SMTP_PASSWORD = f"Smtp-{secrets.token_hex(6)}"
FTP_PASSWORD = f"Ftp-{secrets.token_hex(6)}"  # a run error quoting it must be masked
WEBHOOK_TOKEN = secrets.token_hex(8)  # Slack/Teams URLs carry their secret in the path


@dataclass
class Mailbox:
    messages: list = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(
            message_from_string(envelope.content.decode("utf-8"), policy=policy.default)
        )
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (SMTP_USER, SMTP_PASSWORD)
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=box.authenticate,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    yield box, port
    controller.stop()


@dataclass
class Receiver:
    bodies: list[dict] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    received = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(received.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received, f"http://127.0.0.1:{server.server_port}/hooks/{WEBHOOK_TOKEN}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def channels(monkeypatch: pytest.MonkeyPatch, mailbox, receiver) -> tuple[Mailbox, Receiver]:
    box, smtp_port = mailbox
    received, url = receiver
    for name, value in {
        "ALERT_SMTP_HOST": "127.0.0.1",
        "ALERT_SMTP_PORT": str(smtp_port),
        "ALERT_SMTP_USER": SMTP_USER,
        "ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
        "ALERT_SMTP_STARTTLS": "false",  # the local server has no certificate
        "ALERT_EMAIL_FROM": "dagster@example.test",
        "ALERT_EMAIL_TO": "ops@example.test, oncall@example.test",
        "ALERT_WEBHOOK_URL": url,
        "FTP_PASS": FTP_PASSWORD,
    }.items():
        monkeypatch.setenv(name, value)
    return box, received


@pytest.fixture
def instance(pg_server: ServerInfo) -> Iterator[dg.DagsterInstance]:
    """As in production: storage in PostgreSQL (event cursors span runs), run retries on."""
    database = create_pg_database(pg_server, "sa_alerts")
    storage = {
        "hostname": pg_server.host,
        "port": pg_server.port,
        "username": pg_server.user,
        "password": pg_server.password,
        "db_name": database,
        "scheme": "postgresql+psycopg2",
    }
    overrides = {
        "storage": {"postgres": {"postgres_db": storage}},
        "run_retries": {"enabled": True, "max_retries": 1},
    }
    try:
        with dg.instance_for_test(overrides=overrides) as test_instance:
            yield test_instance
    finally:
        drop_pg_database(pg_server, database)


@dg.asset
def flaky() -> None:
    raise ConnectionResetError(f"FTP connection reset (login {FTP_PASSWORD})")


@dg.asset
def refused(context: dg.AssetExecutionContext) -> None:
    def body() -> None:
        raise ConfigError("FTP login refused (check FTP_USER/FTP_PASS)")

    run_classified(context, body)


def _fail(instance: dg.DagsterInstance, asset: dg.AssetsDefinition, **tags: str) -> dg.DagsterRun:
    result = dg.materialize([asset], instance=instance, raise_on_error=False, tags=tags)
    assert not result.success
    return instance.get_run_by_id(result.run_id)


def _evaluate_run_failure(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    event = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records[0]
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=event.event_log_entry.dagster_event,
    ).for_run_failure()
    alerts.alert_on_run_failure(context)


def _everything_sent(box: Mailbox, received: Receiver) -> str:
    return "\n".join(
        [*(m.as_string() for m in box.messages), *(json.dumps(b) for b in received.bodies)]
    )


def test_a_failed_run_alerts_once_on_both_channels_only_when_not_retried(
    instance: dg.DagsterInstance, channels: tuple[Mailbox, Receiver]
) -> None:
    box, received = channels
    will_retry = _fail(instance, flaky)
    assert will_retry.tags[alerts.WILL_RETRY_TAG] == "true"
    _evaluate_run_failure(instance, will_retry)
    assert box.messages == [] and received.bodies == []  # the retry decides

    final = _fail(instance, flaky, **{"dagster/max_retries": "0"})  # no retry left
    _evaluate_run_failure(instance, final)
    permanent = _fail(instance, refused)  # a permanent cause: the run is not retried
    assert permanent.tags[alerts.WILL_RETRY_TAG] == "false"
    _evaluate_run_failure(instance, permanent)

    assert len(box.messages) == len(received.bodies) == 2
    assert box.logins == [SMTP_USER, SMTP_USER]
    mail = box.messages[1]
    assert mail["Subject"] == "[sync_assets] run of __ephemeral_asset_job__ failed"
    assert mail["To"] == "ops@example.test, oncall@example.test"
    assert permanent.run_id in mail.get_content()
    assert "Error: FTP login refused (check FTP_USER/FTP_PASS)" in mail.get_content()
    assert set(received.bodies[0]) == {"text"}  # the shape Slack and Teams accept
    assert final.run_id in received.bodies[0]["text"]
    assert "Error: ConnectionResetError: FTP connection reset" in received.bodies[0]["text"]
    sent = _everything_sent(box, received)
    for secret in (FTP_PASSWORD, SMTP_PASSWORD, WEBHOOK_TOKEN):
        assert secret not in sent
    assert "login ***" in sent


@dg.asset(check_specs=[dg.AssetCheckSpec("rows_match", asset="counted")])
def counted(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    passed = context.run.tags["outcome"] == "pass"
    check = dg.AssetCheckResult(
        check_name="rows_match",
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"postgres_rows": 10, "mysql_rows": 10 if passed else 12},
    )
    return dg.MaterializeResult(check_results=[check])


@dg.asset(check_specs=[dg.AssetCheckSpec("no_rejects", asset="warned")])
def warned() -> dg.MaterializeResult:
    check = dg.AssetCheckResult(
        check_name="no_rejects", passed=False, severity=dg.AssetCheckSeverity.WARN
    )
    return dg.MaterializeResult(check_results=[check])


def _tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None) -> str:
    result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
    assert result.cursor is not None
    return result.cursor


def test_a_failing_check_alerts_once_per_incident(
    instance: dg.DagsterInstance, channels: tuple[Mailbox, Receiver]
) -> None:
    box, received = channels
    sensor = alerts.alert_on_check_failure
    cursor = _tick(sensor, instance, None)  # starts from now
    for outcome in ("fail", "fail", "pass", "fail"):
        dg.materialize([counted], instance=instance, tags={"outcome": outcome})
        dg.materialize([warned], instance=instance)  # WARN: never an alert
        cursor = _tick(sensor, instance, cursor)
    assert len(box.messages) == len(received.bodies) == 2  # fail, (still failing), pass, fail
    assert box.messages[0]["Subject"] == "[sync_assets] check counted:rows_match failed"
    assert "mysql_rows=12" in box.messages[0].get_content()


def _freshness(instance: dg.DagsterInstance, before: str, after: str) -> None:
    # What the freshness daemon records when a state changes (dagster/_daemon/freshness.py).
    instance._report_runless_asset_event(
        asset_event=FreshnessStateChange(
            key=dg.AssetKey(["logs", "press"]),
            previous_state=FreshnessState(before),
            new_state=FreshnessState(after),
            state_change_timestamp=0.0,
        )
    )


def test_a_freshness_breach_alerts_once_per_incident(
    instance: dg.DagsterInstance, channels: tuple[Mailbox, Receiver]
) -> None:
    box, received = channels
    sensor = alerts.alert_on_freshness_breach
    cursor = _tick(sensor, instance, None)
    for before, after in (("PASS", "WARN"), ("WARN", "FAIL"), ("FAIL", "PASS"), ("PASS", "FAIL")):
        _freshness(instance, before, after)
        cursor = _tick(sensor, instance, cursor)
    assert len(box.messages) == len(received.bodies) == 2
    assert received.bodies[0]["text"].startswith("[sync_assets] logs/press is stale")


def test_no_channel_configured_sends_nothing_and_moves_on(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, mailbox, receiver
) -> None:
    for name in ("ALERT_SMTP_HOST", "ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    sensor = alerts.alert_on_check_failure
    cursor = _tick(sensor, instance, None)
    dg.materialize([counted], instance=instance, tags={"outcome": "fail"})
    assert json.loads(_tick(sensor, instance, cursor))["after_id"] > json.loads(cursor)["after_id"]
    assert mailbox[0].messages == [] and receiver[0].bodies == []


def test_a_refused_delivery_fails_the_tick_without_the_url_and_is_tried_again(
    instance: dg.DagsterInstance, channels: tuple[Mailbox, Receiver], monkeypatch
) -> None:
    _, received = channels
    monkeypatch.delenv("ALERT_SMTP_HOST")
    received.status = 500
    sensor = alerts.alert_on_check_failure
    cursor = _tick(sensor, instance, None)
    dg.materialize([counted], instance=instance, tags={"outcome": "fail"})
    with pytest.raises(Exception, match=r"webhook at 127\.0\.0\.1") as raised:
        _tick(sensor, instance, cursor)
    assert WEBHOOK_TOKEN not in str(raised.value)
    received.status = 200
    _tick(sensor, instance, cursor)  # same cursor: the alert goes out now
    assert len(received.bodies) == 2


def test_partial_email_settings_name_the_missing_variable(monkeypatch) -> None:
    monkeypatch.setenv("ALERT_SMTP_HOST", "127.0.0.1")
    monkeypatch.delenv("ALERT_EMAIL_TO", raising=False)
    with pytest.raises(ConfigError, match="ALERT_EMAIL_TO"):
        alerts.alert_settings()


def test_the_smtp_password_can_come_from_a_file(
    instance: dg.DagsterInstance,
    channels: tuple[Mailbox, Receiver],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
) -> None:
    box, _ = channels
    secret_file = tmp_path / "smtp_password"
    secret_file.write_text(SMTP_PASSWORD + "\n")  # as Docker/Kubernetes secrets often end
    monkeypatch.delenv("ALERT_SMTP_PASSWORD")
    monkeypatch.setenv("ALERT_SMTP_PASSWORD_FILE", str(secret_file))
    sensor = alerts.alert_on_freshness_breach
    cursor = _tick(sensor, instance, None)
    _freshness(instance, "PASS", "FAIL")
    _tick(sensor, instance, cursor)
    assert box.logins == [SMTP_USER] and len(box.messages) == 1
