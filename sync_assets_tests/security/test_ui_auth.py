"""The UI behind a login: Debian's nginx with the project's config (deploy/auth) in front of a
real `dagster-webserver --read-only`. Without credentials 401; with them the UI's pages, its
GraphQL and its websocket work; the read-only webserver refuses to launch a run."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from sync_assets.devtools.demo_stack import (
    BIN_DIR,
    REPO_ROOT,
    stop_process_group,
    wait_for_http,
    wait_for_location_loaded,
)
from sync_assets.devtools.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEMPLATE = REPO_ROOT / "deploy" / "auth" / "templates" / "sync_assets.conf.template"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROJECT_PREFIXES = ("POSTGRES_", "MYSQL_", "FTP_", "DAGSTER_", "SYNC_ASSETS_")


@dataclass(frozen=True)
class Door:
    url: str
    user: str
    password: str

    def headers(self, password: str | None = None) -> dict[str, str]:
        token = base64.b64encode(f"{self.user}:{password or self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


@dataclass(frozen=True)
class AuthStack:
    admin: Door  # the operators' door (here also in front of the read-only webserver)
    viewer: Door
    location: str


def _htpasswd(path: Path, user: str, password: str) -> None:
    """One user, SHA-512 crypt (what `htpasswd -B`/`openssl passwd -6` write; nginx checks it
    with crypt(3))."""
    hashed = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    path.write_text(f"{user}:{hashed}\n", encoding="utf-8")


def _nginx_conf(workdir: Path, server_conf: Path) -> Path:
    """A minimal main config around the project's server blocks (the image supplies its own)."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the password files
    temp = {name: workdir / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\npid {workdir / 'nginx.pid'};\n"
        f"error_log {workdir / 'error.log'} warn;\nevents {{}}\n"
        f"http {{\n access_log {workdir / 'access.log'};\n"
        f" client_body_temp_path {temp['body']};\n proxy_temp_path {temp['proxy']};\n"
        f" fastcgi_temp_path {temp['fastcgi']};\n uwsgi_temp_path {temp['uwsgi']};\n"
        f" scgi_temp_path {temp['scgi']};\n include {server_conf};\n}}\n",
        encoding="utf-8",
    )
    return conf


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed (scripts/test installs Debian's nginx-light)")
    workdir = tmp_path_factory.mktemp("auth")
    home = workdir / "dagster_home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_PREFIXES)}
    env["DAGSTER_HOME"] = str(home)
    web_port, admin_port, viewer_port = free_port(), free_port(), free_port()
    webserver = subprocess.Popen(
        [str(BIN_DIR / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port),
         "-w", str(REPO_ROOT / "workspace.yaml"), "--read-only"],
        cwd=REPO_ROOT, env=env, stdout=(workdir / "webserver.log").open("ab"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    nginx: subprocess.Popen | None = None
    try:
        web_url = f"http://127.0.0.1:{web_port}"
        wait_for_http(f"{web_url}/server_info", webserver, 180)
        wait_for_location_loaded(web_url, webserver, 180)
        _htpasswd(workdir / "admins", "ops", "ops-Pass-1")
        _htpasswd(workdir / "viewers", "viewer", "viewer-Pass-2")
        server_conf = workdir / "sync_assets.conf"
        server_conf.write_text(
            Template(TEMPLATE.read_text(encoding="utf-8")).safe_substitute(
                AUTH_ADMIN_LISTEN=f"127.0.0.1:{admin_port}",
                AUTH_ADMIN_UPSTREAM=f"127.0.0.1:{web_port}",
                AUTH_ADMIN_HTPASSWD=str(workdir / "admins"),
                AUTH_VIEWER_LISTEN=f"127.0.0.1:{viewer_port}",
                AUTH_VIEWER_UPSTREAM=f"127.0.0.1:{web_port}",
                AUTH_VIEWER_HTPASSWD=str(workdir / "viewers"),
            ),
            encoding="utf-8",
        )
        conf = _nginx_conf(workdir, server_conf)
        nginx = subprocess.Popen(
            [NGINX, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=(workdir / "nginx.stderr").open("ab"),
            start_new_session=True,
        )  # fmt: skip
        _wait_for_401(f"http://127.0.0.1:{viewer_port}/server_info", nginx)
        yield AuthStack(
            admin=Door(f"http://127.0.0.1:{admin_port}", "ops", "ops-Pass-1"),
            viewer=Door(f"http://127.0.0.1:{viewer_port}", "viewer", "viewer-Pass-2"),
            location="sync_assets",
        )
    finally:
        stop_process_group(nginx)
        stop_process_group(webserver)


def _wait_for_401(url: str, proc: subprocess.Popen) -> None:
    for _ in range(120):
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with code {proc.returncode}")
        if _status(url, {}) == 401:
            return
        time.sleep(0.5)
    raise TimeoutError(f"nginx did not answer on {url}")


def _request(url: str, headers: dict[str, str], body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={
        **headers, "Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def _status(url: str, headers: dict[str, str]) -> int:
    return _request(url, headers)[0]


def _graphql(door: Door, query: str, variables: dict | None = None) -> dict:
    status, body = _request(
        f"{door.url}/graphql", door.headers(), {"query": query, "variables": variables or {}}
    )
    assert status == 200, body[:300]
    return json.loads(body)


def test_without_credentials_401(auth_stack: AuthStack) -> None:
    for door in (auth_stack.admin, auth_stack.viewer):
        for path in ("/", "/server_info", "/assets", "/graphql"):
            assert _status(door.url + path, {}) == 401
        assert _status(door.url + "/", door.headers("wrong-password")) == 401
    # Each door has its own password file: a viewer cannot use the operators' door.
    assert _status(auth_stack.admin.url + "/", auth_stack.viewer.headers()) == 401


def test_pages_and_graphql_with_credentials(auth_stack: AuthStack) -> None:
    door = auth_stack.viewer
    status, page = _request(f"{door.url}/assets", door.headers())
    assert status == 200 and b'<div id="root"' in page.replace(b"'", b'"')
    status, info = _request(f"{door.url}/server_info", door.headers())
    assert status == 200 and "dagster_webserver_version" in json.loads(info)
    data = _graphql(door, "{ assetNodes { assetKey { path } } }")["data"]
    keys = {tuple(node["assetKey"]["path"]) for node in data["assetNodes"]}
    assert ("logs", "machine_logs") in keys  # the code location's assets, through the proxy


def test_websocket_with_credentials(auth_stack: AuthStack) -> None:
    door = auth_stack.viewer
    ws_url = door.url.replace("http://", "ws://") + "/graphql"
    with connect(ws_url, subprotocols=["graphql-ws"], additional_headers=door.headers(),
                 open_timeout=30) as socket:  # fmt: skip
        socket.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(socket.recv(timeout=30))["type"] == "connection_ack"
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url, subprotocols=["graphql-ws"], open_timeout=30)
    assert refused.value.response.status_code == 401


LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) { __typename ... on UnauthorizedError { message } }
}
"""


def test_read_only_webserver_refuses_a_launch(auth_stack: AuthStack) -> None:
    params = {
        "selector": {
            "repositoryLocationName": auth_stack.location,
            "repositoryName": "__repository__",
            "jobName": "ftp_logs_job",
        },
        "runConfigData": {},
    }
    result = _graphql(auth_stack.admin, LAUNCH, {"params": params})["data"]["launchRun"]
    assert result["__typename"] == "UnauthorizedError"
