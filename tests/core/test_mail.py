"""The SMTP adapter against real local SMTP servers: one that accepts, one that refuses for
good, one that asks to try later, and none at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.core.config import Settings
from app.core.mail import Email, MailRefusedError, MailUnavailableError, SmtpMailer
from devtools.servers import free_port
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


@pytest.fixture
def busy_sink() -> Iterator[MailSink]:
    sink = MailSink(reply="451 4.3.0 Try again later")
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


async def test_a_permanent_refusal_is_raised_as_refused(refusing_sink: MailSink) -> None:
    with pytest.raises(MailRefusedError, match="554"):
        await mailer_for(refusing_sink.port).send(EMAIL)
    assert refusing_sink.received == []


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("550 5.1.1 No such mailbox", MailRefusedError),
        ("450 4.2.1 Mailbox busy", MailUnavailableError),
    ],
)
async def test_a_refused_recipient_is_refused_for_good_or_for_now(
    reply: str, error: type[Exception]
) -> None:
    sink = MailSink(recipient_reply=reply)
    sink.start()
    try:
        with pytest.raises(error, match=reply[:3]):
            await mailer_for(sink.port).send(EMAIL)
    finally:
        sink.stop()
    assert sink.received == []


async def test_a_temporary_refusal_is_raised_as_unavailable(busy_sink: MailSink) -> None:
    with pytest.raises(MailUnavailableError, match="451"):
        await mailer_for(busy_sink.port).send(EMAIL)
    assert busy_sink.received == []


async def test_no_server_is_unavailable() -> None:
    with pytest.raises(MailUnavailableError, match="connecting"):
        await mailer_for(free_port()).send(EMAIL)
