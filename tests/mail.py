"""A real SMTP server on a free local port that keeps what it receives, for tests to read."""

from __future__ import annotations

import email
import email.policy
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
    """The server's behaviour, read from its sink at each command, so a test can change it."""

    def __init__(self, sink: MailSink) -> None:
        self._sink = sink

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self._sink.recipient_reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self._sink.recipient_reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        reply = self._sink.reply
        if reply.startswith("250"):
            # The modern policy unfolds long headers, as a mail client shows them.
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            received = ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message)
            self._sink.received.append(received)
        return reply


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class MailSink:
    """`reply` is the server's answer to each message: "250 OK" keeps it; a 4xx/5xx refuses it,
    to test how the adapter and the job behave when the provider says no. `recipient_reply`
    answers each recipient the same way. Both may change while it runs. Stopped and started
    again, it is a mail server that went away and came back on the same port."""

    def __init__(self, reply: str = "250 OK", recipient_reply: str = "250 OK") -> None:
        self.received: list[ReceivedMail] = []
        self.reply = reply
        self.recipient_reply = recipient_reply
        self.port = _free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        # A stopped Controller cannot start again: each start serves from a new one.
        self._controller = Controller(_Keep(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
