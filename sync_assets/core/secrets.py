"""Keep secrets out of messages: every error text that may quote a driver goes through here."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-empty secret in `text` by a mask."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text
