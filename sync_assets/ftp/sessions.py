"""The one place that picks the protocol (FTP_PROTOCOL): the rest of the FTP side only sees
a client with the interface of `FTPClient` (listing, stat, download from an offset, delete)."""

from __future__ import annotations

import logging

from sync_assets.ftp.client import FTPClient
from sync_assets.ftp.retry import RetryPolicy
from sync_assets.ftp.sftp_client import SFTPClient
from sync_assets.resources import FTPResource

RemoteClient = FTPClient | SFTPClient


def open_client(
    resource: FTPResource, policy: RetryPolicy, log: logging.Logger | None = None
) -> RemoteClient:
    """A client for FTP_PROTOCOL (it connects lazily, at its first command)."""
    if resource.is_sftp:
        return SFTPClient(resource, policy, log)
    return FTPClient(resource, policy, log)
