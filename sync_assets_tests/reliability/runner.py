"""A real run of one engine in a child process, so that a test can SIGKILL it mid-way.

`python -m sync_assets_tests.reliability.runner '<json>'` where the JSON holds `kind`
(`ftp` or `mysql`), the resources' fields (`pg`, `ftp`, `mysql`) and either `source` (an FTP
`SourceConfig` as a dict) or `table` + `schema` (+ `options`). It prints one JSON line with the
report's figures when the run ends.
"""

import json
import sys
from typing import Any

from sync_assets.ftp.config import SourceConfig
from sync_assets.ftp.ingest import ingest_source
from sync_assets.mysql.config import TableOptions
from sync_assets.mysql.sync import sync_table
from sync_assets.resources import FTPResource, MySQLResource, PostgresResource


def run(args: dict[str, Any]) -> dict[str, Any]:
    postgres = PostgresResource(**args["pg"])
    if args["kind"] == "ftp":
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in args["source"].items()}
        report = ingest_source(FTPResource(**args["ftp"]), postgres, SourceConfig(**fields))
        return {"rows_loaded": report.rows_loaded, "deleted": report.deleted}
    options = TableOptions(name=args["table"], **args.get("options", {}))
    mysql = MySQLResource(**args["mysql"])
    sync = sync_table(mysql, postgres, options, target_schema=args["schema"])
    return {"row_count": sync.row_count, "mode": sync.mode}


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))), flush=True)
