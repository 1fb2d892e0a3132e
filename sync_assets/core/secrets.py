"""Keep secrets out of messages: every error text that may quote a driver goes through here."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path

MASK = "***"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-empty secret in `text` by a mask."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


class SecretFileError(ValueError):
    """A `*_FILE` secret cannot be used; the message names the variable, never the content."""


def read_secret_file(variable: str, path: str) -> str:
    """The secret stored in the file named by `variable` (Docker/Kubernetes secrets).

    One trailing line break is dropped (files written by editors and `echo` end with one);
    other whitespace is kept, since it may be part of a password.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretFileError(
            f"cannot read the secret file named by {variable}: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError:
        raise SecretFileError(f"the secret file named by {variable} is not UTF-8") from None
    return text.removesuffix("\n").removesuffix("\r")


def resolve_secret(variable: str, value: str | None, file_path: str | None) -> str:
    """The secret from `variable` or from the file named by `variable`_FILE (not both)."""
    if value and file_path:
        raise SecretFileError(f"set {variable} or {variable}_FILE, not both")
    if file_path:
        return read_secret_file(f"{variable}_FILE", file_path)
    return value or ""


def environment_secrets(variables: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """The values of the secret `variables` and the contents of their `*_FILE` files, for
    `redact` (an unreadable file contributes nothing: nothing from it can be shown)."""
    values = [environ[name] for name in variables if environ.get(name)]
    for name in variables:
        path = environ.get(f"{name}_FILE")
        if path:
            with contextlib.suppress(SecretFileError):
                values.append(read_secret_file(f"{name}_FILE", path))
    return values
