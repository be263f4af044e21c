"""The API and a worker wired to the HTTP payment adapter, which talks to the fake provider:
a database and a Redis db of their own, so the sandbox-wired app of other tests is untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app
from app.worker.workers import Workers
from tests.conftest import Servers, make_settings, running_worker
from tests.fake_payment_provider import API_KEY, FakeProvider, running_provider

BREAKER_THRESHOLD = 3
BREAKER_RESET_S = 1.0
JOB_TRIES = 3


@pytest.fixture(scope="package")
def fake_provider() -> Iterator[FakeProvider]:
    with running_provider() as provider:
        yield provider


@pytest.fixture
def provider(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.reset()
    return fake_provider


@pytest.fixture(scope="package")
async def settings(servers: Servers, fake_provider: FakeProvider) -> Settings:
    return make_settings(
        await servers.migrated_database("keystone_payments"),
        servers.redis_database(4),
        payment_provider="http",
        payment_api_url=fake_provider.url,
        payment_api_key=API_KEY,
        payment_read_timeout_s=0.5,
        payment_connect_timeout_s=0.5,
        payment_retry_attempts=2,
        payment_retry_wait_initial_s=0.01,
        payment_retry_wait_max_s=0.05,
        payment_breaker_threshold=BREAKER_THRESHOLD,
        payment_breaker_reset_s=BREAKER_RESET_S,
        payment_job_max_tries=JOB_TRIES,
        payment_job_retry_base_s=0.2,
    )


@pytest.fixture(scope="package")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def worker(settings: Settings, _clean_state: None) -> AsyncIterator[Workers]:
    """A worker of its own (its own breaker, as a separate process would have)."""
    async with running_worker(settings) as worker:
        yield worker
