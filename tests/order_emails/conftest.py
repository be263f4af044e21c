"""Order emails: the API and a real worker with a database, a Redis db and a mail server of
their own, so a test may take the mail server down, bring it back or make it refuse without
touching the other tests; email retries are fast here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app
from app.worker.workers import Workers
from tests.conftest import Servers, make_settings, running_worker
from tests.mail import MailSink

EMAIL_TRIES = 4
# Long enough for an erasure to commit while the payment of the same order is in flight.
SLOW_PAYMENT_S = 2.0


@pytest.fixture(scope="package")
def mail_server() -> Iterator[MailSink]:
    sink = MailSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def mail(mail_server: MailSink) -> MailSink:
    """The mail server, up, accepting and empty at the start of each test."""
    mail_server.stop()
    mail_server.reply = "250 OK"
    mail_server.received.clear()
    mail_server.start()
    return mail_server


@pytest.fixture(scope="package")
async def settings(servers: Servers, mail_server: MailSink) -> Settings:
    return make_settings(
        await servers.migrated_database("keystone_order_emails"),
        servers.redis_database(9),
        smtp_port=mail_server.port,
        smtp_security="none",
        smtp_timeout_s=2,
        order_email_max_tries=EMAIL_TRIES,
        order_email_retry_base_s=0.5,
        payment_sandbox_slow_s=SLOW_PAYMENT_S,
    )


@pytest.fixture(scope="package")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def worker(settings: Settings, mail: MailSink, _clean_state: None) -> AsyncIterator[Workers]:
    async with running_worker(settings) as worker:
        yield worker
