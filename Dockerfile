# syntax=docker/dockerfile:1
# Two stages: the build stage resolves the locked runtime dependencies (no dev tools, no
# embedded Postgres/Redis); the final image holds only the virtualenv and the code, runs as an
# unprivileged user, and starts the API. The worker uses the same image:
#   docker run IMAGE python -m app.cli worker
# Migrations are a release step, not a start-up step:
#   docker run IMAGE python -m app.cli migrate
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /srv
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-group local --no-install-project
COPY alembic.ini ./
COPY migrations ./migrations
COPY app ./app

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 keystone
WORKDIR /srv
COPY --from=build --chown=keystone:keystone /srv /srv
ENV PATH=/srv/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    APP_ENV=prod
USER keystone
EXPOSE 8000
# Fly sends SIGINT, Kubernetes SIGTERM: on both the API refuses new connections at once and lets
# in-flight requests finish within API_SHUTDOWN_GRACE_S (keep it under the kill timeout).
# The client address comes from X-Forwarded-For only via TRUSTED_PROXIES (set it to the platform
# proxy's network); uvicorn's own --proxy-headers would believe any client that sends one.
CMD ["python", "-m", "app.cli", "serve", "--host", "0.0.0.0", "--port", "8000"]
