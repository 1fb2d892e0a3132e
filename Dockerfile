# One image for the three roles: code server (`dagster api grpc`), webserver and daemon.
# Dependencies come from uv.lock only (`uv sync --frozen`); the process runs as a non-root user.
# Targets: `runtime` (default, last) and `demo` (adds the dev group: the demo FTP feed).
# Optional extras of pyproject.toml, comma-separated: `--build-arg SYNC_ASSETS_EXTRAS=celery`
# adds the Celery executor and worker (compose profile `celery`), `k8s` adds dagster-k8s (Helm
# chart, K8sRunLauncher), `k8s,celery` both. Empty (the default) installs no extra.
ARG SYNC_ASSETS_EXTRAS=""

FROM python:3.11-slim-bookworm AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/home \
    SYNC_ASSETS_STATE_DIR=/opt/dagster/state
RUN groupadd --system --gid 10001 dagster \
    && useradd --system --uid 10001 --gid dagster --home-dir /opt/dagster --create-home dagster

FROM base AS build
ARG SYNC_ASSETS_EXTRAS
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
# binutils (strip, readelf) for deploy/docker/slim-venv.sh; in this stage only, not the image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
# `uv sync` arguments for the extras (one `--extra NAME` each); each uv sync below repeats them,
# since uv sync removes what it was not asked for.
RUN IFS=', '; for extra in $SYNC_ASSETS_EXTRAS; do \
        printf -- '--extra\n%s\n' "$extra"; \
    done > /tmp/uv-extras
# Dependencies first (cached while only the code or the README changes), then the project.
COPY pyproject.toml uv.lock ./
RUN xargs -a /tmp/uv-extras -d '\n' uv sync --frozen --no-dev --no-install-project --no-editable
COPY README.md ./
COPY sync_assets ./sync_assets
# What is never read at run time goes (test suites, stubs, source maps, debug sections).
COPY deploy/docker/slim-venv.sh /usr/local/bin/slim-venv
RUN xargs -a /tmp/uv-extras -d '\n' uv sync --frozen --no-dev --no-editable \
    && slim-venv /opt/venv

FROM build AS build-demo
# The wheel leaves sync_assets/devtools out (never in the runtime image); the demo feed uses it.
RUN xargs -a /tmp/uv-extras -d '\n' uv sync --frozen --no-editable \
    && cp -r sync_assets/devtools \
        "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/sync_assets/"

FROM base AS app
WORKDIR /opt/dagster/app
COPY --chown=dagster:dagster dagster.yaml /opt/dagster/home/dagster.yaml
COPY --chown=dagster:dagster workspace.docker.yaml ./workspace.yaml
COPY --chown=dagster:dagster deploy/docker/healthcheck.sh /usr/local/bin/sync-assets-healthcheck
# State (the MySQL table list) and compute logs (<DAGSTER_HOME>/storage) are written at run time.
RUN mkdir -p /opt/dagster/state /opt/dagster/home/storage \
    && chown -R dagster:dagster /opt/dagster
EXPOSE 3000 4000
# 30 s timeout: the code-server and daemon checks start a Python that imports Dagster, which on
# a busy 2-core host was seen to take over 10 s.
HEALTHCHECK --interval=30s --timeout=30s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/sync-assets-healthcheck"]

FROM app AS demo
COPY --from=build-demo /opt/venv /opt/venv
USER 10001:10001
CMD ["python", "-m", "sync_assets.devtools.demo_feed", "--host", "0.0.0.0", "--port", "2121"]

FROM app AS runtime
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
# The code server; the webserver and daemon services override the command.
CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "4000", "-m", "sync_assets.definitions"]
