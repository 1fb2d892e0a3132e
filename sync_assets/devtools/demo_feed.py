"""The compose `demo` profile's data feed: an FTP server whose simulated machines keep writing
log files, and (when MYSQL_HOST is set) a legacy database that keeps changing.

    python -m sync_assets.devtools.demo_feed --host 0.0.0.0 --port 21 --root /srv/ftp

FTP login from FTP_USER / FTP_PASS; the legacy DB from the MYSQL_* variables (already seeded
by the MariaDB container from deploy/demo/legacy_demo.sql).
"""

from __future__ import annotations

import argparse
import os
import random
import threading
from pathlib import Path

from sync_assets.devtools.demo_legacy import mutate_legacy
from sync_assets.devtools.demo_machines import MachineSimulator
from sync_assets.devtools.ftp_server import start_ftp_server
from sync_assets.resources import MySQLResource

LEGACY_CHANGE_SECONDS = 20.0


def change_legacy_forever(stop: threading.Event) -> None:
    resource = MySQLResource.from_env(resolved=True, database="legacy_demo", user="root")
    rng = random.Random(11)  # noqa: S311 (demo data)
    while not stop.wait(LEGACY_CHANGE_SECONDS):
        try:
            with resource.connect() as conn:
                mutate_legacy(conn, rng)
        except Exception as exc:  # the database may still be starting: try again next round
            print(f"[demo-feed] legacy change skipped: {type(exc).__name__}: {exc}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2121)
    parser.add_argument("--root", type=Path, default=Path("/srv/ftp"))
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between writes")
    args = parser.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    ftp = start_ftp_server(
        args.root,
        user=os.environ.get("FTP_USER", "machine"),
        password=os.environ.get("FTP_PASS", "ftp-secret"),
        port=args.port,
        host=args.host,
    )
    print(f"[demo-feed] FTP on {args.host}:{ftp.port}, machines writing to {args.root}", flush=True)
    stop = threading.Event()
    if os.environ.get("MYSQL_HOST"):
        threading.Thread(target=change_legacy_forever, args=(stop,), daemon=True).start()
    try:
        simulator = MachineSimulator(args.root)
        simulator.seed_backlog()
        simulator.run(stop, args.interval)
    except KeyboardInterrupt:
        stop.set()
    finally:
        ftp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
