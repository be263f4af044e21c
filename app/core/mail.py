"""The mail port: modules send `Email`s through a `Mailer`; `SmtpMailer` is the real adapter.

SMTP is a third party we do not run, so it sits behind this port. Dev (`make run`) and the tests
point the adapter at a local SMTP sink; production at the provider's submission port with
STARTTLS or implicit TLS (prod refuses plain SMTP_SECURITY=none). The adapter turns SMTP's
failures into the port's two errors, so a caller decides between retrying and giving up without
knowing aiosmtplib.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from app.core.config import Settings
from app.core.logging import get_logger

_log = get_logger("keystone.mail")


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    body: str


class MailRefusedError(Exception):
    """The server refused this message for good (its recipient or its content, a 5xx): sending
    it again would be refused again."""


class MailUnavailableError(Exception):
    """The message could not be handed over now (no connection, a timeout, a 4xx, a login or
    sender the server does not accept): it may go through later, or once the setup is fixed."""


def _permanent(code: int) -> bool:
    return 500 <= code < 600


class Mailer(Protocol):
    async def send(self, email: Email) -> None: ...


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, email: Email) -> None:
        settings = self._settings
        message = EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = email.to
        message["Subject"] = email.subject
        message.set_content(email.body)
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=password,
                use_tls=settings.smtp_security == "tls",
                start_tls=settings.smtp_security == "starttls",
                timeout=settings.smtp_timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as refused:
            # The codes only: the server's text names the address, which logs must not keep.
            codes = [error.code for error in refused.recipients]
            reason = f"recipient refused ({', '.join(map(str, codes))})"
            if all(_permanent(code) for code in codes):
                raise MailRefusedError(reason) from refused
            raise MailUnavailableError(reason) from refused
        except aiosmtplib.SMTPDataError as refused:
            if _permanent(refused.code):
                raise MailRefusedError(str(refused)) from refused
            raise MailUnavailableError(str(refused)) from refused
        # OSError: a TLS handshake that fails is raised as ssl.SSLError, not wrapped.
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailUnavailableError(str(exc) or type(exc).__name__) from exc
        _log.info("email sent", subject=email.subject)
