"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 (a free port), collecting every
message it accepts. It can be stopped and started again on the same port, to test that
mail waits in the outbox while the server is down."""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Collect:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.sink.lock:
            self.sink.messages.append(message)  # type: ignore[arg-type]
            self.sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpSink:
    """``start()``/``stop()`` a local SMTP server; ``messages`` holds what arrived."""

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> SmtpSink:
        if self._controller is None:
            self._controller = Controller(_Collect(self), hostname=self.host, port=self.port)
            self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def received(self) -> list[EmailMessage]:
        with self.lock:
            return list(self.messages)
