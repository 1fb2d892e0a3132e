"""A real OpenSSH server (Debian's `openssh-server`) for the SFTP tests, one per test.

Each server runs `/usr/sbin/sshd -D -e` on a free loopback port with its own sshd_config,
ed25519 host key, authorized_keys and a drop directory served by `internal-sftp`. sshd logs in
real system users only, so the tests use one throwaway system user, `sync_assets_sftp`
(no home, shell /usr/sbin/nologin, SFTP only through `ForceCommand`): created once with
`useradd --system` when missing (idempotent), a random password set per test session with
`chpasswd` and locked again at its end (two test sessions at once would race on it). Root is
needed for that and for sshd itself (scripts/test runs as root on CI).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from sync_assets.devtools.servers import free_port, port_open

SSHD = Path("/usr/sbin/sshd")
TEST_USER = "sync_assets_sftp"
PRIVSEP_DIR = Path("/run/sshd")  # Debian's sshd refuses to start without it

SSHD_CONFIG = """\
ListenAddress 127.0.0.1:{port}
HostKey {workdir}/ssh_host_ed25519_key
PidFile {workdir}/sshd.pid
AuthorizedKeysFile {workdir}/authorized_keys
# authorized_keys lives under /tmp (world-writable): StrictModes would refuse it
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication {password_auth}
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowUsers {user}
AllowTcpForwarding no
X11Forwarding no
Subsystem sftp internal-sftp
ForceCommand internal-sftp -d {root}
MaxStartups 100:30:200
MaxAuthTries 3
LogLevel VERBOSE
"""


@dataclass
class KeyPair:
    private: Path
    public: str
    fingerprint: str  # SHA256:..., as ssh-keygen -lf prints it


@dataclass
class SSHServerHandle:
    host: str
    port: int
    user: str
    password: str
    root: Path  # the drop directory (absolute: it is also the path the client sees)
    workdir: Path
    host_key: KeyPair
    process: subprocess.Popen
    log_path: Path
    keys: list[KeyPair] = field(default_factory=list)

    @property
    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_key.public}\n"

    def authorize(self, key: KeyPair) -> None:
        with (self.workdir / "authorized_keys").open("a", encoding="utf-8") as out:
            out.write(key.public + "\n")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def logged(self, text: str, timeout: float = 60) -> bool:
        """Whether sshd logs `text` within `timeout` s (its monitor process writes the log,
        possibly after the client already has its answer)."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def session_processes(self) -> list[psutil.Process]:
        """sshd's per-connection processes running as the test user (they serve SFTP)."""
        uid = pwd.getpwnam(self.user).pw_uid
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        found = []
        for child in children:
            try:
                if child.uids().real == uid:
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


def ensure_test_user(password: str) -> None:
    """Create the throwaway system user if missing (idempotent); set its password."""
    if os.geteuid() != 0:
        raise RuntimeError("the SFTP tests need root: they run sshd and add a system user")
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", TEST_USER],
            check=True, capture_output=True,
        )  # fmt: skip
    subprocess.run(
        ["chpasswd"], input=f"{TEST_USER}:{password}\n", text=True, check=True, capture_output=True
    )


def lock_test_user() -> None:
    """Lock the password again: no standing credential is left on the machine (a system sshd
    with its default config would otherwise accept it)."""
    subprocess.run(["usermod", "--lock", TEST_USER], check=True, capture_output=True)


def generate_key(directory: Path, name: str, passphrase: str = "") -> KeyPair:
    """An ed25519 key pair made by ssh-keygen (OpenSSH's own format)."""
    private = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", str(private)],
        check=True, capture_output=True,
    )  # fmt: skip
    public = private.with_suffix(".pub").read_text(encoding="utf-8").strip()
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(private.with_suffix(".pub"))],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return KeyPair(private, public, listed.split()[1])


def start_sshd(password: str, host_key: KeyPair, password_auth: bool = True) -> SSHServerHandle:
    """An sshd serving a fresh drop directory (owned by the test user) on a free port."""
    if not SSHD.exists():
        raise RuntimeError(f"{SSHD} is missing: install Debian's openssh-server (scripts/test)")
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="sync_assets_sshd_"))
    workdir.chmod(0o755)  # sshd reads authorized_keys as the user (the host key stays 0600)
    root = Path(tempfile.mkdtemp(prefix="sync_assets_sftp_drop_"))
    shutil.chown(root, TEST_USER)
    shutil.copyfile(host_key.private, workdir / "ssh_host_ed25519_key")
    (workdir / "ssh_host_ed25519_key").chmod(0o600)
    (workdir / "authorized_keys").touch(mode=0o644)
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(
        SSHD_CONFIG.format(
            port=port, workdir=workdir, root=root, user=TEST_USER,
            password_auth="yes" if password_auth else "no",
        ),
        encoding="utf-8",
    )  # fmt: skip
    log_path = workdir / "sshd.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    handle = SSHServerHandle(
        "127.0.0.1", port, TEST_USER, password, root, workdir, host_key, process, log_path
    )
    _wait_until_listening(handle)
    return handle


def _wait_until_listening(handle: SSHServerHandle) -> None:
    for _ in range(600):
        if port_open(handle.host, handle.port, timeout=0.5):
            return
        if handle.process.poll() is not None:
            log = handle.log()
            handle.stop()
            raise RuntimeError(f"sshd exited with {handle.process.returncode}: {log[-2000:]}")
        time.sleep(0.1)
    handle.stop()
    raise RuntimeError("sshd did not listen within 60s")


def random_password() -> str:
    return secrets.token_urlsafe(18)
