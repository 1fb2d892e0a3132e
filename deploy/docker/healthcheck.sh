#!/bin/sh
# Health of whichever role this container runs ($SYNC_ASSETS_ROLE, set by docker-compose).
set -eu
case "${SYNC_ASSETS_ROLE:-code-server}" in
  code-server) exec dagster api grpc-health-check -p "${DAGSTER_GRPC_PORT:-4000}" ;;
  webserver)
    exec python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${DAGSTER_WEBSERVER_PORT:-3000}/server_info', timeout=5)" ;;
  daemon) exec dagster-daemon liveness-check ;;
  *) echo "unknown SYNC_ASSETS_ROLE=${SYNC_ASSETS_ROLE}" >&2; exit 1 ;;
esac
