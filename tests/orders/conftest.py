"""Order tests run a real arq worker beside the API, as production does: the payment saga's
jobs are taken from the real Redis and run against the real database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.core.config import Settings
from app.worker.workers import Workers
from tests.conftest import running_worker


@pytest.fixture(autouse=True)
async def worker(settings: Settings, _clean_state: None) -> AsyncIterator[Workers]:
    async with running_worker(settings) as worker:
        yield worker
