"""The real Dagster asset over SFTP: a materialisation with its check, and a refused login
whose run fails naming the variables, with the password in no event."""

import dagster as dg

from sync_assets.ftp.definitions import build_log_asset, build_source_spec
from sync_assets_tests.ftp.conftest import write_file
from sync_assets_tests.reliability.conftest import csv_file
from sync_assets_tests.sftp.conftest import make_sftp_resource


def _materialize(source, sftp, pg_resource) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [build_source_spec(source), build_log_asset(source)],
        resources={"postgres": pg_resource, "ftp": sftp},
        raise_on_error=False,
    )


def test_asset_materialises_over_sftp(sshd, sftp_resource, pg_resource, make_source) -> None:
    write_file(sshd.root, "a.csv", csv_file(1, 100))
    source = make_source("sftp_asset")
    result = _materialize(source, sftp_resource, pg_resource)
    assert result.success
    meta = result.asset_materializations_for_node(f"logs__{source.name}")[0].metadata
    assert meta["files_loaded"].value == 1 and meta["rows_loaded"].value == 100
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["lines_accounted_for"].passed


def test_refused_login_fails_the_run_without_the_password(
    sshd, known_hosts, pg_resource, make_source
) -> None:
    wrong = "wrong-pass-in-no-event-42"
    source = make_source("sftp_asset_login")
    sftp = make_sftp_resource(sshd, known_hosts, password=wrong)
    result = _materialize(source, sftp, pg_resource)
    assert not result.success
    events = [str(event) for event in result.all_events]
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.step_failure_data.error)
    assert "login refused" in message and "FTP_USER" in message and "FTP_PASS" in message
    assert not any(wrong in text for text in events)
