"""A real SMTP server on a free local port that keeps what it receives, for tests to read."""

from __future__ import annotations

import email
import socket
from dataclasses import dataclass
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: Message

    @property
    def body(self) -> str:
        payload = self.message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()


class _Keep:
    def __init__(self, inbox: list[ReceivedMail], reply: str, recipient_reply: str) -> None:
        self._inbox = inbox
        self._reply = reply
        self._recipient_reply = recipient_reply

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self._recipient_reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self._recipient_reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self._reply.startswith("250"):
            message = email.message_from_bytes(envelope.content)
            self._inbox.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return self._reply


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class MailSink:
    """`reply` is the server's answer to each message: "250 OK" keeps it; a 4xx/5xx refuses it,
    to test how the adapter and the job behave when the provider says no. `recipient_reply`
    answers each recipient the same way."""

    def __init__(self, reply: str = "250 OK", recipient_reply: str = "250 OK") -> None:
        self.received: list[ReceivedMail] = []
        self.port = _free_port()
        self._controller = Controller(
            _Keep(self.received, reply, recipient_reply), hostname="127.0.0.1", port=self.port
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
