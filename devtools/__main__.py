"""`python -m devtools`: the developer's commands (`--help` lists them)."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def devtools() -> None:
    """Keystone on this machine, for development (never in the production image)."""


@devtools.command()
@click.option(
    "--split", is_flag=True, help="An API and a worker per module, nginx on PORT in front."
)
def run(split: bool) -> None:
    """Run Keystone here with demo data (make run).

    Embedded Postgres and Redis (unless DATABASE_URL / REDIS_URL are set), migrations, demo
    data, then the API with --reload and the worker; with --split, an API and a worker per module,
    events over Redis Streams, nginx on PORT in front.

    Ctrl-C, SIGTERM or SIGHUP stops all of it (exit 0), and a watchdog stops it if the runner is
    killed; exit 1 when a child died on its own (or, split, a service could not start), 2 when the
    demo data cannot be made.
    """
    from devtools.run import run_dev

    run_dev(split)


if __name__ == "__main__":
    devtools(prog_name="python -m devtools")
