"""The one place where the code location's Definitions are assembled.

Loading this module performs no network or database I/O: the code location loads with no
variable set and every server down. Each side builds its own Definitions; they are merged here
with the shared resources.
"""

from __future__ import annotations

import dagster as dg

from sync_assets.core.process import skip_final_collection
from sync_assets.ftp.definitions import build_ftp_defs
from sync_assets.mysql.definitions import batched_steps, build_mysql_defs
from sync_assets.orchestration.definitions import build_action_defs, build_orchestration_defs
from sync_assets.resources import build_resources


def build_definitions() -> dg.Definitions:
    return dg.Definitions.merge(
        build_mysql_defs(),
        build_ftp_defs(),
        build_orchestration_defs(mysql_batched_steps=batched_steps()),
        build_action_defs(),
        dg.Definitions(resources=build_resources()),
    )


skip_final_collection()
defs = build_definitions()
