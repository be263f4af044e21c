# syntax=docker/dockerfile:1
# One image for every environment and every process: the API, the worker and the migrations.
#   IMAGE                                  the API (python -m app.cli serve, on $PORT or 8000)
#   IMAGE python -m app.cli worker         the worker (run it with --no-healthcheck)
#   IMAGE python -m app.cli migrate        the release step: every module's schema to its head
# And, with `--target backup`, the same image plus PostgreSQL's client for the backup CronJob:
#   BACKUP_IMAGE python -m app.cli backup DIR
# The base is an argument so a mirror or a pinned digest can be given:
#   docker build --build-arg BASE_IMAGE=python:3.11-slim@sha256:... .
# checkov (tests/deploy/test_policy.py) reads `FROM ${BASE_IMAGE}` as an untagged image:
# checkov:skip=CKV_DOCKER_7:the base is ARG BASE_IMAGE, a version tag (python:3.11-slim) by default
ARG BASE_IMAGE=python:3.11-slim

# --- build: the locked runtime dependencies (no dev tools, no embedded Postgres/Redis) --------
FROM ${BASE_IMAGE} AS build
ENV UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
# binutils' strip only: several wheels ship their extensions with debug symbols (uvloop's alone
# is 13 MB), which no production process reads.
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /srv
COPY pyproject.toml uv.lock ./
# What production never reads goes before the layer is committed: C/Cython sources and type
# stubs shipped in wheels, pycountry's translations (only ISO codes are looked up), debug symbols.
RUN uv sync --frozen --no-dev --no-group local --no-install-project \
 && site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
 && find "$site" -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.pyx' \
        -o -name '*.pxd' -o -name '*.pyi' \) -delete \
 && rm -rf "$site/pycountry/locales" \
 && find "$site" -name '*.so' -exec strip --strip-debug {} +
COPY alembic.ini ./
COPY migrations ./migrations
COPY app ./app
# Bytecode for exactly what the three commands import (deploy/image/precompile.py says why).
COPY deploy/image/precompile.py /tmp/precompile.py
RUN .venv/bin/python /tmp/precompile.py

# --- runtime: the virtualenv and the code, owned by root, run by an unprivileged user ----------
FROM ${BASE_IMAGE} AS runtime
# No home and no shell: the process writes nowhere but /tmp, so the root filesystem may be
# mounted read-only (Kubernetes readOnlyRootFilesystem, podman/docker --read-only).
RUN groupadd --system --gid 10001 keystone \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin keystone
WORKDIR /srv
# Copied without --chown: root keeps ownership, so the runtime user can change no code and
# Python writes no __pycache__ (what it needs was compiled in the build stage).
COPY --from=build /srv/.venv /srv/.venv
COPY --from=build /srv/alembic.ini /srv/alembic.ini
COPY --from=build /srv/migrations /srv/migrations
COPY --from=build /srv/app /srv/app
ENV PATH=/srv/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    APP_ENV=prod
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000
# Fly (fly.toml kill_signal) and Kubernetes both send SIGTERM: the API refuses new connections at
# once and lets in-flight requests finish within API_SHUTDOWN_GRACE_S, the worker lets running
# jobs finish within WORKER_SHUTDOWN_GRACE_S; keep both under the platform's kill timeout.
# The client address comes from X-Forwarded-For only via TRUSTED_PROXIES (set it to the platform
# proxy's network); uvicorn's own --proxy-headers would believe any client that sends one.
STOPSIGNAL SIGTERM
# Liveness without curl in the image: the interpreter is already there. PORT moves the API
# (`serve` reads it too), 8000 by default.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["python", "-m", "app.cli", "serve", "--host", "0.0.0.0"]

# --- backup: the runtime and pg_dump/pg_restore, for `python -m app.cli backup` ---------------
# pg_dump must be at least the server's major version. Debian's `postgresql-client` is its
# release's major (15 on bookworm, 17 on trixie); name another with
# --build-arg PG_CLIENT_PACKAGE=postgresql-client-17 when the base's release has it.
FROM runtime AS backup
ARG PG_CLIENT_PACKAGE=postgresql-client
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends "${PG_CLIENT_PACKAGE}" \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
# A CronJob's pod, not a server: nothing to check.
HEALTHCHECK NONE
CMD ["python", "-m", "app.cli", "backup", "--help"]

# --- the default target: the runtime as it is ---------------------------------------------
FROM runtime
