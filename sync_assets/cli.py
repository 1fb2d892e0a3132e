"""`sync-assets`: operator commands. Each side registers its own sub-commands.

Run `sync-assets --help` for the list and `sync-assets COMMAND --help` for each one.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sync_assets.core.settings import ConfigError
from sync_assets.resources import SourceUnavailableError

# Modules that define `register(subparsers)`; each sub-command sets `func(args) -> int`.
COMMAND_MODULES = (
    "sync_assets.mysql.cli",
    "sync_assets.ftp.cli",
    "sync_assets.orchestration.cli",
    "sync_assets.config_cli",
    "sync_assets.orchestration.worker",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sync-assets",
        description="Operator commands for the sync_assets Dagster project.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, SourceUnavailableError) as exc:
        print(f"sync-assets {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
