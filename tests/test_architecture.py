"""The boundaries of the modular monolith, checked on the code itself.

import-linter enforces the contracts in pyproject.toml; each contract is shown to catch the
violation it exists for, on a throwaway copy of the tree. The rest are plain rules about how a
module is laid out.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import MetaData

from app.core.config import ALL_MODULES

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODULES_DIR = PROJECT_ROOT / "app" / "modules"
MODULE_FILES = (
    "module.py",
    "router.py",
    "service.py",
    "repository.py",
    "models.py",
    "schemas.py",
    "exceptions.py",
    "dependencies.py",
    "container.py",
)


def lint_imports_executable() -> str:
    beside_python = Path(sys.executable).parent / "lint-imports"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("lint-imports")
    assert found, "lint-imports (import-linter) is not installed"
    return found


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the `app` package found under `root`, with the contracts of
    `root/pyproject.toml`."""
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "300", "NO_COLOR": "1"}
    return subprocess.run(
        [lint_imports_executable(), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def flat(text: str) -> str:
    """Output with whitespace collapsed, so line wrapping can't hide a phrase."""
    return " ".join(text.split())


def test_contracts_hold_on_the_real_tree() -> None:
    result = lint_imports(PROJECT_ROOT)
    output = flat(result.stdout + result.stderr)
    assert result.returncode == 0, output
    assert "Contracts: 4 kept, 0 broken." in output


CATALOG_SERVICE = "app.modules.catalog.service"


@pytest.mark.parametrize(
    ("file", "imported", "contract", "offence"),
    [
        pytest.param(
            "app/core/errors.py",
            CATALOG_SERVICE,
            "app.core knows no module and no composition code",
            "app.core is not allowed to import app.modules",
            id="core-imports-a-module",
        ),
        pytest.param(
            "app/modules/orders/service/orders.py",
            CATALOG_SERVICE,
            "A module reaches another only through its contracts",
            "app.modules.orders is not allowed to import app.modules.catalog",
            id="orders-bypasses-catalog-contracts",
        ),
        pytest.param(
            "app/modules/catalog/repository.py",
            CATALOG_SERVICE,
            "Inside a module: router -> service -> repository -> models, never upward",
            "app.modules.catalog.repository is not allowed to import app.modules.catalog.service",
            id="repository-imports-service",
        ),
        pytest.param(
            "app/seed.py",
            "devtools.servers",
            "The production package never imports the dev tooling (the image ships app/ alone)",
            "app is not allowed to import devtools",
            id="app-imports-devtools",
        ),
    ],
)
def test_each_contract_catches_its_violation(
    tmp_path: Path, file: str, imported: str, contract: str, offence: str
) -> None:
    for package in ("app", "devtools"):
        shutil.copytree(
            PROJECT_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy2(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / file
    source = target.read_text()
    if not source.endswith("\n"):
        source += "\n"
    target.write_text(source + f"import {imported}\n")
    line = len(source.splitlines()) + 1
    importer = file.removesuffix(".py").replace("/", ".")

    result = lint_imports(tmp_path)
    output = flat(result.stdout + result.stderr)

    assert result.returncode != 0, output
    assert f"{contract} BROKEN" in output
    broken_section = output.split("Broken contracts", 1)[1]
    assert contract in broken_section
    assert offence in broken_section
    assert f"{importer} -> {imported} (l.{line})" in broken_section


def module_names() -> list[str]:
    return sorted(
        path.name
        for path in MODULES_DIR.iterdir()
        if path.is_dir() and (path / "__init__.py").exists()
    )


def test_every_module_on_disk_is_known_to_configuration() -> None:
    # A module folder that APP_MODULES cannot mount, or a name that has no folder, is a mistake.
    assert module_names() == sorted(ALL_MODULES)


def is_python_module(path: Path) -> bool:
    """`service.py`, or a `service/` package once a layer outgrows one file."""
    return path.is_file() or (path.with_suffix("") / "__init__.py").is_file()


@pytest.mark.parametrize("module", module_names())
def test_module_has_the_standard_layout(module: str) -> None:
    folder = MODULES_DIR / module
    missing = [name for name in MODULE_FILES if not is_python_module(folder / name)]
    assert missing == [], f"app/modules/{module} lacks {missing}"
    contracts = folder / "contracts"
    assert (contracts / "__init__.py").is_file(), f"app/modules/{module}/contracts is no package"


@pytest.mark.parametrize("module", module_names())
def test_module_models_live_in_the_module_schema(module: str) -> None:
    models = importlib.import_module(f"app.modules.{module}.models")
    metadata = models.metadata
    assert isinstance(metadata, MetaData)
    assert metadata.schema == module
    assert metadata.tables, f"app.modules.{module}.models declares no table"
    wrong = {key: table.schema for key, table in metadata.tables.items() if table.schema != module}
    assert wrong == {}, f"tables outside schema {module!r}: {wrong}"
