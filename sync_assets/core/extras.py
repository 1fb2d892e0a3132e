"""Optional parts of the install (the extras of pyproject.toml), imported only when selected.

The default image leaves them out (README, "Docker"); selecting one without it installed fails
at once with the extra's name and how to add it, instead of a bare ModuleNotFoundError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from sync_assets.core.settings import ConfigError


class MissingExtraError(ConfigError):
    """The feature asked for needs an extra that this environment was installed without."""


def import_extra(module: str, extra: str, wanted_by: str) -> ModuleType:
    """`module`, or a MissingExtraError naming `extra` when it (or what it needs) is missing."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise MissingExtraError(
            f"{wanted_by} needs the `{extra}` extra, not installed here (no module"
            f" {exc.name!r}): install sync-assets[{extra}] (`uv sync --extra {extra}`), or build"
            f" the image with --build-arg SYNC_ASSETS_EXTRAS={extra}"
        ) from None
