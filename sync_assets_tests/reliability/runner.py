"""A real run of one engine in a child process, so that a test can SIGKILL it mid-way.

`python -m sync_assets_tests.reliability.runner '<json>'` where the JSON holds `kind` and the
resources' fields (`pg`, `ftp`, `mysql`); `ftp`: `source` (an FTP `SourceConfig` as a dict);
`mysql`: `table` + `schema` (+ `options`); `mysql_assets`: the real Dagster assets of the
tables named by `MYSQL_TABLES` (set by the caller) materialised in one run. It prints one JSON
line with the figures when the run ends.
"""

import json
import sys
from typing import Any

import dagster as dg

from sync_assets.ftp.config import SourceConfig
from sync_assets.ftp.ingest import ingest_source
from sync_assets.mysql.config import TableOptions
from sync_assets.mysql.definitions import build_mysql_defs
from sync_assets.mysql.sync import sync_table
from sync_assets.resources import FTPResource, MySQLResource, PostgresResource


def run(args: dict[str, Any]) -> dict[str, Any]:
    postgres = PostgresResource(**args["pg"])
    if args["kind"] == "ftp":
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in args["source"].items()}
        report = ingest_source(FTPResource(**args["ftp"]), postgres, SourceConfig(**fields))
        return {"rows_loaded": report.rows_loaded, "files_loaded": report.files_loaded,
                "rows_rejected": report.rows_rejected, "deleted": report.deleted}  # fmt: skip
    if args["kind"] == "mysql_assets":
        return _materialize_mysql_assets(MySQLResource(**args["mysql"]), postgres)
    options = TableOptions(name=args["table"], **args.get("options", {}))
    mysql = MySQLResource(**args["mysql"])
    sync = sync_table(mysql, postgres, options, target_schema=args["schema"])
    return {"row_count": sync.row_count, "mode": sync.mode}


def _materialize_mysql_assets(mysql: MySQLResource, postgres: PostgresResource) -> dict[str, Any]:
    assets = [a for a in build_mysql_defs().assets if isinstance(a, dg.AssetsDefinition)]
    result = dg.materialize(assets, resources={"mysql": mysql, "postgres": postgres})
    rows = [
        event.materialization.metadata["dagster/row_count"].value
        for event in result.get_asset_materialization_events()
    ]
    return {"assets": len(rows), "rows": sum(rows)}


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))), flush=True)
