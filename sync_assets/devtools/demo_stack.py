"""Start and stop the Dagster webserver and daemon against a PostgreSQL-backed instance.

Shared by the demo and the end-to-end tests: a DAGSTER_HOME holding the project's
dagster.yaml, the webserver started first (it creates the storage), then the daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent


def prepare_dagster_home(home: Path) -> Path:
    """`home` with the project's dagster.yaml (storage from the POSTGRES_*/DAGSTER_PG_DB vars)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


@dataclass
class DagsterStack:
    """The webserver and daemon processes, each in its own process group."""

    env: dict[str, str]
    port: int
    log_dir: Path
    # Processes whose output goes to the terminal instead of <log_dir>/<name>.log.
    console: frozenset[str] = frozenset()
    daemon_log_level: str = "info"
    # "error" hides the code servers' routine "No heartbeat received ... shutting down" when the
    # daemon replaces them on a workspace refresh.
    code_server_log_level: str = "warning"
    webserver: subprocess.Popen | None = None
    daemon: subprocess.Popen | None = None
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _output(self, name: str) -> IO[bytes] | None:
        if name in self.console:
            return None
        log = (self.log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        return log

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = self._output(name)
        return subprocess.Popen(
            [str(BIN_DIR / args[0]), *args[1:]],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so stop() ends its code-server children too
        )

    def start_webserver(self, timeout: float = 180) -> None:
        self.webserver = self._spawn(
            "webserver",
            ["dagster-webserver", "-h", "127.0.0.1", "-p", str(self.port), "-w", "workspace.yaml"],
        )
        wait_for_http(f"{self.url}/server_info", self.webserver, timeout)
        wait_for_location_loaded(self.url, self.webserver, timeout)

    def start_daemon(self) -> None:
        self.daemon = self._spawn(
            "daemon",
            [
                "dagster-daemon",
                "run",
                "-w",
                "workspace.yaml",
                "--log-level",
                self.daemon_log_level,
                "--code-server-log-level",
                self.code_server_log_level,
            ],
        )

    def start(self) -> None:
        self.start_webserver()
        self.start_daemon()

    def stop_webserver(self) -> None:
        stop_process_group(self.webserver)
        self.webserver = None

    def stop(self) -> None:
        stop_process_group(self.daemon)
        self.daemon = None
        self.stop_webserver()
        for log in self._logs:
            log.close()
        self._logs.clear()


def stop_process_group(proc: subprocess.Popen | None, timeout: float = 30) -> None:
    """SIGTERM the group we started (the process and its code servers), SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def graphql(base_url: str, query: str, variables: dict[str, Any] | None = None) -> dict:
    """POST a query to the webserver's GraphQL API (the one the UI uses); `data` or an error."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(  # noqa: S310 (loopback)
        f"{base_url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (loopback)
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


LOCATION_STATUS_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def wait_for_location_loaded(base_url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Until the code location is LOADED; a load error is raised with its message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with code {proc.returncode}")
        entries = graphql(base_url, LOCATION_STATUS_QUERY)["workspaceOrError"]["locationEntries"]
        if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
            for entry in entries:
                location = entry["locationOrLoadError"] or {}
                if location.get("__typename") == "PythonError":
                    raise RuntimeError(f"code location failed to load: {location['message']}")
            return
        time.sleep(1)
    raise TimeoutError(f"code location did not load within {timeout:.0f}s")
