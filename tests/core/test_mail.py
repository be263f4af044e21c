"""The SMTP adapter against real local SMTP servers: one that accepts, one that refuses, and
none at all."""

from __future__ import annotations

from collections.abc import Iterator

import aiosmtplib
import pytest

from app.core.config import Settings
from app.core.mail import Email, SmtpMailer
from app.devstack import free_port
from tests.mail import MailSink

EMAIL = Email(to="ada@example.com", subject="Hello", body="Line one\nLine two ünïcode")


def mailer_for(port: int) -> SmtpMailer:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        smtp_port=port,
        smtp_security="none",
        smtp_from="Keystone <no-reply@keystone.test>",
        smtp_timeout_s=2,
    )
    return SmtpMailer(settings)


@pytest.fixture
def refusing_sink() -> Iterator[MailSink]:
    sink = MailSink(reply="554 5.7.1 Message rejected")
    sink.start()
    yield sink
    sink.stop()


async def test_the_adapter_delivers_a_well_formed_message(mail: MailSink) -> None:
    await mailer_for(mail.port).send(EMAIL)
    (received,) = mail.received
    assert received.recipients == ["ada@example.com"]
    assert received.message["From"] == "Keystone <no-reply@keystone.test>"
    assert received.message["Subject"] == "Hello"
    assert received.body.splitlines() == ["Line one", "Line two ünïcode"]


async def test_a_refusal_is_raised_not_swallowed(refusing_sink: MailSink) -> None:
    with pytest.raises(aiosmtplib.SMTPDataError) as error:
        await mailer_for(refusing_sink.port).send(EMAIL)
    assert error.value.code == 554
    assert refusing_sink.received == []


async def test_no_server_is_a_connection_error() -> None:
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await mailer_for(free_port()).send(EMAIL)
