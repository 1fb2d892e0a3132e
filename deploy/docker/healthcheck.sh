#!/bin/sh
# Health of whichever role this container runs ($SYNC_ASSETS_ROLE, set by docker-compose).
set -eu
case "${SYNC_ASSETS_ROLE:-code-server}" in
  code-server) exec dagster api grpc-health-check -p "${DAGSTER_GRPC_PORT:-4000}" ;;
  webserver)
    exec python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${DAGSTER_WEBSERVER_PORT:-3000}/server_info', timeout=5)" ;;
  # Dagster's default tolerance is 30 minutes of silence; the daemon beats every 30 s, so a
  # hung daemon is unhealthy after 4 missed beats instead.
  daemon)
    DAGSTER_DAEMON_HEARTBEAT_TOLERANCE="${DAGSTER_DAEMON_HEARTBEAT_TOLERANCE:-120}" \
      exec dagster-daemon liveness-check ;;
  *) echo "unknown SYNC_ASSETS_ROLE=${SYNC_ASSETS_ROLE}" >&2; exit 1 ;;
esac
