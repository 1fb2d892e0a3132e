"""Definitions of the FTP side (filled in by the FTP engine)."""

from __future__ import annotations

import dagster as dg


def build_ftp_defs() -> dg.Definitions:
    return dg.Definitions()
