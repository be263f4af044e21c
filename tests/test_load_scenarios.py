"""The load scenarios stay runnable: `load/locustfile.py` runs headless for a few seconds against
`python -m app.cli serve` on the demo data, every user class makes its requests, and none fails
(locust exits 1 on any failure). `make load` and `make stress` use the same users."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from app.core.config import Settings
from app.seed import seed
from tests.conftest import Servers
from tests.faults.conftest import (
    ROOT,
    emptied_runtime,
    run_tool,
    serving_api_to_a_tool,
    settings_on_own_database,
)

# 8 browsers, 3 customers and 1 staff member: the user classes' weights are 8 : 3 : 1.
USERS = 12
RUN_S = 10


@pytest.fixture(scope="module")
async def settings(servers: Servers) -> Settings:
    return await settings_on_own_database(servers, "keystone_load", redis_db=13)


async def test_the_load_scenarios_run_without_a_failure(settings: Settings, tmp_path: Path) -> None:
    async with emptied_runtime(settings) as runtime:
        await seed(runtime)
    with serving_api_to_a_tool(settings, tmp_path / "api.log") as base:
        await run_tool(
            [
                *(sys.executable, "-m", "locust", "-f", str(ROOT / "load" / "locustfile.py")),
                *("--headless", "--host", base, "-u", str(USERS), "-r", str(USERS)),
                *("-t", f"{RUN_S}s", "--csv", str(tmp_path / "run"), "--only-summary"),
            ],
            cwd=tmp_path,
            timeout_s=RUN_S + 60,
        )
    with (tmp_path / "run_stats.csv").open() as stats:
        requests = {
            (row["Type"], row["Name"]): int(row["Request Count"]) for row in csv.DictReader(stats)
        }
    # Each class's first steps: browsers read the categories, customers and staff log in.
    assert requests[("GET", "/api/v1/catalog/categories")] >= 8
    assert requests[("POST", "/api/v1/auth/login")] >= 4
    assert requests[("GET", "/api/v1/catalog/products?limit=50")] >= 3
