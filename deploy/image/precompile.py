"""A build step of the Dockerfile: compiles to bytecode exactly the modules production imports.

The image's code is read-only to the user it runs as and PYTHONDONTWRITEBYTECODE is set, so
nothing is compiled at run time unless shipped compiled. Compiling the whole virtualenv would add
a third to its size for modules no command imports; instead this script builds the app the way
`serve`, `worker` and `migrate` do (without connecting anywhere) and compiles what got imported,
plus the migrations alembic loads from files.
"""

from __future__ import annotations

import compileall
import importlib
import py_compile
import sys
from pathlib import Path

# What the three commands import, beyond what building the app pulls in: uvicorn picks its
# event loop and protocol implementations by name at start-up, alembic its runtime on upgrade.
ENTRY_POINTS = (
    "app.cli",
    "app.worker",
    "app.main",
    "uvicorn.loops.auto",
    "uvicorn.loops.uvloop",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.websockets.auto",
    "uvicorn.protocols.websockets.websockets_impl",
    "uvicorn.lifespan.on",
    "alembic.runtime.migration",
    "alembic.runtime.environment",
    "alembic.script",
    "arq.worker",
)


def build_the_app() -> None:
    from app.core.config import Settings
    from app.main import create_app

    # A URL nothing listens on: building the app connects nowhere, it only imports.
    create_app(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url="postgresql://build@127.0.0.1:1/build",
            redis_url="redis://127.0.0.1:1/0",
        )
    )


def imported_sources(roots: tuple[Path, ...]) -> list[Path]:
    """The source files of every imported module under the project or the virtualenv (the
    interpreter's own standard library ships compiled with the base image)."""
    sources = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py"):
            continue
        if any(Path(path).resolve().is_relative_to(root) for root in roots):
            sources.append(Path(path))
    return sources


def main() -> None:
    project = Path.cwd()
    sys.path.insert(0, str(project))  # the app, as `python -m app.cli` finds it from there
    for name in ENTRY_POINTS:
        importlib.import_module(name)
    build_the_app()
    roots = (project, Path(sys.prefix).resolve())
    sources = imported_sources(roots)
    for source in sources:
        # Unchecked: the image never changes under the bytecode, so no stat or hash per import.
        py_compile.compile(
            str(source),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    compileall.compile_dir(
        project / "migrations",
        quiet=1,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    print(f"precompiled {len(sources)} imported modules and the migrations")


if __name__ == "__main__":
    main()
