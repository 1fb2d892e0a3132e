"""The one place that picks the protocol (FTP_PROTOCOL): the rest of the FTP side only sees
a client with the interface of `FTPClient` (listing, stat, download from an offset, delete)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sync_assets.ftp.client import FTPClient
from sync_assets.ftp.retry import RetryPolicy
from sync_assets.resources import FTPResource

if TYPE_CHECKING:  # paramiko (with cryptography, nacl, invoke) is imported for SFTP only
    from sync_assets.ftp.sftp_client import SFTPClient

    RemoteClient = FTPClient | SFTPClient


def open_client(
    resource: FTPResource, policy: RetryPolicy, log: logging.Logger | None = None
) -> RemoteClient:
    """A client for FTP_PROTOCOL (it connects lazily, at its first command)."""
    if resource.is_sftp:
        from sync_assets.ftp.sftp_client import SFTPClient

        return SFTPClient(resource, policy, log)
    return FTPClient(resource, policy, log)
