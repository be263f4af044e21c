"""Tools for a developer's machine, outside the production package: `make run` and `make run-split`
(the dev runner, its supervisor and watchdog), embedded Postgres and Redis, a local SMTP sink and
the split topology's gateway, which the tests and benchmarks start too.

The image ships `app/` alone (the Dockerfile's COPY lines, .dockerignore's allow-list), and `app`
never imports this package (the import contract `app-knows-no-devtools` in pyproject.toml).
"""
