#!/bin/sh
# The postgres image creates $POSTGRES_DB (synced data); Dagster's own storage gets its own DB.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=db="${DAGSTER_PG_DB:-dagster}" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
