"""How stale each side's tables may get before the UI flags them, set on the asset specs.

Three missed FTP ticks (5 min cadence) and three missed MySQL ticks (15 min cadence) are worth
a look. The external source specs (`ftp/...`, `mysql/...`) are never materialised here, so
they get no policy.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

FTP_FRESHNESS_WINDOW = timedelta(minutes=15)
MYSQL_FRESHNESS_WINDOW = timedelta(minutes=45)


def ftp_freshness() -> dg.FreshnessPolicy:
    return dg.FreshnessPolicy.time_window(FTP_FRESHNESS_WINDOW)


def mysql_freshness() -> dg.FreshnessPolicy:
    return dg.FreshnessPolicy.time_window(MYSQL_FRESHNESS_WINDOW)
