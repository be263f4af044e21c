"""The two long-running processes as deployed: `serve` (the API) and `worker` (jobs and crons)."""

from __future__ import annotations

import signal
from types import FrameType

import click

from app.cli.runtime import load_settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
# PORT as most platforms set it (and the image's HEALTHCHECK reads it); 8000 otherwise.
@click.option(
    "--port",
    help="The port to listen on.",
    type=click.IntRange(0, 65535),
    envvar="PORT",
    default=8000,
    show_default=True,
    show_envvar=True,
)
def serve(host: str, port: int) -> None:
    """Run the API as deployed.

    On SIGTERM/SIGINT it refuses new connections at once, lets in-flight requests finish within
    API_SHUTDOWN_GRACE_S, then exits 0."""
    import uvicorn

    from app.main import create_app

    settings = load_settings()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=host,
            port=port,
            lifespan="on",
            # On SIGTERM/SIGINT uvicorn closes the listener at once (new connections are refused,
            # so readiness fails from the signal on), lets in-flight requests finish for this long,
            # cancels the rest, then runs the lifespan shutdown (relay stopped, pools closed).
            timeout_graceful_shutdown=settings.api_shutdown_grace_s,
            timeout_keep_alive=settings.api_keep_alive_s,
            # app.core.logging routes uvicorn's loggers; RequestContextMiddleware logs each request.
            log_config=None,
            access_log=False,
            # X-Forwarded-* are believed only from TRUSTED_PROXIES (app.core.http_security).
            proxy_headers=False,
        )
    )
    # Once drained, uvicorn raises the signal again under the handlers it found, for the process
    # to die of it. The drain was the answer to the signal: end with 0, as the worker does.
    for drained in (signal.SIGTERM, signal.SIGINT):
        signal.signal(drained, _answered_by_the_drain)
    server.run()


def _answered_by_the_drain(_signum: int, _frame: FrameType | None) -> None:
    return None


@click.command()
@click.option("--burst", is_flag=True, help="Stop once the queues are empty.")
def worker(burst: bool) -> None:
    """Run the hosted modules' jobs and crons.

    One queue per module of WORKER_MODULES, until SIGTERM/SIGINT; running jobs get
    WORKER_SHUTDOWN_GRACE_S to finish."""
    from app.worker import run_workers

    run_workers(load_settings(), burst=burst)
