"""The dependency audit's rules: a vulnerability fails, an ignore needs a reason, no network
is a warning (shown with the real pip-audit behind an unreachable proxy)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync_assets.devtools.audit import (
    IgnoreFileError,
    export_requirements,
    judge,
    read_ignores,
    run_audit,
)
from sync_assets.devtools.servers import free_port


def test_an_ignore_needs_a_written_reason(tmp_path: Path) -> None:
    path = tmp_path / "audit-ignore.txt"
    path.write_text("# comment\nGHSA-aaaa-bbbb-cccc  no reachable code path: we never parse X\n")
    assert read_ignores(path) == {"GHSA-aaaa-bbbb-cccc": "no reachable code path: we never parse X"}
    path.write_text("PYSEC-2024-1\n")
    with pytest.raises(IgnoreFileError, match="PYSEC-2024-1 is ignored without a reason"):
        read_ignores(path)


def test_a_known_vulnerability_fails_and_skipped_packages_warn() -> None:
    report = {  # the shape of `pip-audit --format json`
        "dependencies": [
            {"name": "idna", "version": "3.6", "vulns": [
                {"id": "PYSEC-2024-60", "fix_versions": ["3.7"]}]},
            {"name": "pyyaml", "version": "6.0.2", "vulns": []},
            {"name": "alembic", "skip_reason": "Dependency not found on PyPI"},
        ],
        "fixes": [],
    }  # fmt: skip
    verdict = judge(report)
    assert verdict.exit_code == 1
    assert verdict.lines[0] == "VULNERABLE idna 3.6: PYSEC-2024-60 (fixed in: 3.7)"
    assert verdict.lines[1].startswith("WARNING: dependency audit incomplete: 1 of 3")
    clean = judge({"dependencies": [report["dependencies"][1]]})
    assert (clean.exit_code, clean.lines) == (
        0,
        ["dependency audit: 1 packages, no known vulnerability"],
    )


def test_no_network_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    export_requirements(requirements)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: every request fails
    env = {**os.environ, "HTTPS_PROXY": closed, "HTTP_PROXY": closed, "NO_PROXY": "",
           "https_proxy": closed, "http_proxy": closed, "no_proxy": ""}  # fmt: skip
    verdict = run_audit(requirements, {}, env)
    assert verdict.exit_code == 0
    assert len(verdict.lines) == 1
    assert verdict.lines[0].startswith("WARNING: dependency audit skipped, no network")
