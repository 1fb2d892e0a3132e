"""The retry loop both remote protocols share: transient errors reconnect and back off.

FTP and SFTP differ only in which errors are transient, which of those must still not be
retried (a refused certificate, a missing file), and how a broken session is dropped; those
are the hooks of `RetryingSession`. The last failure becomes a `SourceUnavailableError`
whose message names the server (never its credentials) and the settings to check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from sync_assets.resources import FTPResource, SourceUnavailableError

T = TypeVar("T")
H = TypeVar("H")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_seconds: float = 1.0


class RetryingSession(Generic[H]):
    """A logical session to one server that reconnects transparently when it breaks."""

    protocol: ClassVar[str]
    check_hint: ClassVar[str]  # the settings an operator checks when the server is away
    transient_errors: ClassVar[tuple[type[BaseException], ...]]

    resource: FTPResource
    policy: RetryPolicy
    log: logging.Logger
    reconnects: int

    def _handle(self) -> H:
        """The live connection, opened on first use or after `_reset`."""
        raise NotImplementedError

    def _reset(self) -> None:
        """Forget a broken connection; the next `_handle` opens a new one."""
        raise NotImplementedError

    def _refuse(self, what: str, exc: BaseException, last: bool) -> None:
        """Raise here the transient-looking errors that a retry cannot cure."""

    def call(self, what: str, action: Callable[[H], T]) -> T:
        """Run `action` with retries: transient errors reconnect and back off."""
        delay = self.policy.backoff_seconds
        for attempt in range(1, self.policy.attempts + 1):
            try:
                return action(self._handle())
            except self.transient_errors as exc:
                last = attempt == self.policy.attempts
                self._refuse(what, exc, last)
                self._reset()
                reason = self.resource.redact(f"{type(exc).__name__}: {exc}")
                if last:
                    raise SourceUnavailableError(
                        f"{self.protocol} {self.resource.describe()}: {what} failed after "
                        f"{attempt} attempts: {reason} ({self.check_hint})"
                    ) from None
                self.log.warning(
                    f"{self.protocol} {what}: {reason}; retry {attempt} in {delay:.1f}s"
                )
                self.reconnects += 1
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")
