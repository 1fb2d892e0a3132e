"""Dependency audit: pip-audit over the locked environment, tolerant of a missing network.

`python -m sync_assets.devtools.audit` exports the lock file's pinned, hashed requirements
(`uv export`), audits them with pip-audit without installing anything, and exits:

- 1 when a package has a known vulnerability that `audit-ignore.txt` does not list,
- 2 when that file lists an id without a written reason,
- 0 otherwise; when the vulnerability service cannot be reached, or answers without data for
  some packages, one WARNING line says what was not audited (a network failure must not
  fail an offline run, and must not pass for a clean audit either).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
IGNORE_FILE = REPO_ROOT / "audit-ignore.txt"
NETWORK_WORDS = (
    "ConnectionError",
    "ProxyError",
    "NameResolution",
    "Max retries",
    "timed out",
    "Network is unreachable",
    "SSLError",
    "ReadTimeout",
)


class IgnoreFileError(ValueError):
    """An ignored vulnerability without its reason."""


@dataclass
class Verdict:
    exit_code: int
    lines: list[str] = field(default_factory=list)


def read_ignores(path: Path) -> dict[str, str]:
    """`ID reason...` per line (`#` comments); every id needs a written reason."""
    ignores: dict[str, str] = {}
    if not path.exists():
        return ignores
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        vuln_id, _, reason = line.partition(" ")
        if not reason.strip():
            raise IgnoreFileError(f"{path.name}:{number}: {vuln_id} is ignored without a reason")
        ignores[vuln_id] = reason.strip()
    return ignores


def judge(report: dict[str, Any]) -> Verdict:
    """The verdict on pip-audit's JSON report (ignored ids are already left out by it)."""
    deps = report.get("dependencies", [])
    found = [(d["name"], d["version"], v) for d in deps for v in d.get("vulns", [])]
    skipped = [d["name"] for d in deps if "skip_reason" in d]
    verdict = Verdict(1 if found else 0)
    for name, version, vuln in found:
        fixes = ", ".join(vuln.get("fix_versions", [])) or "none yet"
        verdict.lines.append(f"VULNERABLE {name} {version}: {vuln['id']} (fixed in: {fixes})")
    if skipped:
        verdict.lines.append(
            f"WARNING: dependency audit incomplete: {len(skipped)} of {len(deps)} packages"
            " could not be audited (the vulnerability service has no data for them here)"
        )
    if not found and not skipped:
        verdict.lines.append(f"dependency audit: {len(deps)} packages, no known vulnerability")
    return verdict


def run_audit(requirements: Path, ignores: dict[str, str], env: dict[str, str]) -> Verdict:
    """pip-audit on pinned, hashed requirements (no resolution, no install)."""
    with tempfile.TemporaryDirectory(prefix="sync_assets_audit_") as tmp:
        output = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip_audit", "--disable-pip", "--require-hashes",
                   "-r", str(requirements), "--format", "json", "-o", str(output),
                   "--progress-spinner", "off", "--timeout", "30"]  # fmt: skip
        for vuln_id in ignores:
            command += ["--ignore-vuln", vuln_id]
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if output.exists() and output.stat().st_size:
            return judge(json.loads(output.read_text(encoding="utf-8")))
    if any(word in done.stderr for word in NETWORK_WORDS):
        last = done.stderr.strip().splitlines()[-1][:200] if done.stderr.strip() else ""
        return Verdict(0, [f"WARNING: dependency audit skipped, no network: {last}"])
    return Verdict(1, [f"dependency audit failed (exit {done.returncode}):", done.stderr[-2000:]])


def export_requirements(target: Path) -> None:
    """The lock file's packages, pinned with hashes, without the project itself."""
    uv = shutil.which("uv") or str(REPO_ROOT / ".tools" / "bin" / "uv")
    with target.open("w", encoding="utf-8") as handle:
        subprocess.run(
            [
                uv,
                "export",
                "--frozen",
                "--format",
                "requirements-txt",
                "--no-emit-project",
                "--quiet",
            ],
            cwd=REPO_ROOT,
            stdout=handle,
            check=True,
        )


def main() -> int:
    try:
        ignores = read_ignores(IGNORE_FILE)
    except IgnoreFileError as exc:
        print(f"dependency audit: {exc}")
        return 2
    with tempfile.TemporaryDirectory(prefix="sync_assets_audit_") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        export_requirements(requirements)
        verdict = run_audit(requirements, ignores, dict(os.environ))
    for line in verdict.lines:
        print(line)
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
