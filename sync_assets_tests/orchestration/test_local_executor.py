"""The executor on one host stops a run whose step runs in the run's process when the process
is interrupted, although the step has a RetryPolicy (Dagster would retry it in place)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from sync_assets_tests.conftest import REPO_ROOT

DAGSTER_BIN = str(Path(sys.executable).with_name("dagster"))

DEFINITIONS = """
import time
import dagster as dg
from sync_assets.orchestration.local_executor import local_executor

@dg.asset
def slow(context):
    context.log.info("step started, attempt %d" % context.retry_number)
    time.sleep(120)

retry = dg.RetryPolicy(max_retries=3)
job = dg.define_asset_job("retried", selection="slow", op_retry_policy=retry)
defs = dg.Definitions(assets=[slow], jobs=[job], executor=local_executor)
"""

CONFIGS = {
    "one step in the run's process": {},
    "in_process chosen": {"execution": {"config": {"in_process": {}}}},
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=list(CONFIGS))
def test_sigterm_stops_the_run_instead_of_retrying_the_step(tmp_path: Path, config: dict) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (tmp_path / "defs.py").write_text(DEFINITIONS)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    log = tmp_path / "run.log"
    argv = [DAGSTER_BIN, "job", "execute", "-f", "defs.py", "-j", "retried", "-c", "run.yaml"]
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "step started, attempt 0" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)  # a retried step would sleep its 120 s again
    finally:
        proc.kill()
        proc.wait()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(limit=1)[0]
        kinds = [e.dagster_event_type for e in instance.all_logs(run.run_id) if e.dagster_event]
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert kinds.count(dg.DagsterEventType.STEP_START) == 1
    assert dg.DagsterEventType.STEP_RESTARTED not in kinds
    assert dg.DagsterEventType.STEP_WORKER_STARTING not in kinds  # it ran in the run's process
    assert "attempt 1" not in log.read_text()
