"""The process itself: its name and release, debug, shutdown and worker pacing, flags."""

from __future__ import annotations

from pydantic import Field

from app.core.config.base import SettingsBase


class ProcessSettings(SettingsBase):
    app_name: str = "keystone"
    release: str = "dev"
    debug: bool = False

    # On SIGTERM/SIGINT: how long in-flight requests (`python -m app.cli serve`) and running jobs
    # (the worker) may finish before they are cut off. Keep them below the platform's kill timeout.
    api_shutdown_grace_s: int = Field(default=20, ge=0, le=600)
    # How long `serve` keeps an idle keep-alive connection open. Above the load balancer's own
    # idle timeout (60 s on most), or the balancer reuses connections the API has just closed
    # and answers 502; uvicorn's default is 5 s.
    api_keep_alive_s: int = Field(default=75, ge=1, le=3600)
    worker_shutdown_grace_s: int = Field(default=20, ge=0, le=600)
    # Jobs one worker runs at once per queue (they wait on the provider, SMTP, Postgres, not
    # on the CPU), and how often an idle worker asks Redis for due jobs: arq does not block on
    # the queue, so this is the wait a newly enqueued job sees at worst.
    worker_max_jobs: int = Field(default=50, ge=1, le=1_000)
    worker_poll_delay_s: float = Field(default=0.05, gt=0, le=10)

    # Feature flags (app/core/flags.py, OpenFeature with the flagd provider): a flagd flag file
    # evaluated in process (no server: dev, tests, small deployments), or a flagd server whose
    # flags are synced and evaluated in process. Neither: every flag is off.
    feature_flags_file: str | None = None
    flagd_host: str | None = None
    flagd_port: int = Field(default=8015, ge=1, le=65535)
