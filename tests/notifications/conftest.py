"""Fixtures of the notification tests: an SMTP sink that refuses chosen recipients, and
the committed (really committed, fresh) database of tests/bookings/conftest.py for races."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask

from tests.bookings.conftest import committed  # noqa: F401  (the fixture, for race tests)
from tests.smtp import SmtpSink, _Collect


class _Refusing(_Collect):
    """Collects like the plain sink, but answers RCPT TO for some addresses with a
    chosen reply (``550 ...`` permanent, ``451 ...`` temporary)."""

    def __init__(self, sink: RefusingSink) -> None:
        super().__init__(sink)
        self.refusing = sink

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        reply = self.refusing.refuse.get(address.lower())
        if reply:
            with self.refusing.lock:
                self.refusing.refused.append(address.lower())
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"


class RefusingSink(SmtpSink):
    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self.refuse: dict[str, str] = {}
        self.refused: list[str] = []

    def start(self) -> RefusingSink:
        if self._controller is None:
            self._controller = Controller(_Refusing(self), hostname=self.host, port=self.port)
            self._controller.start()
        return self


def point_app_at(app: Flask, sink: SmtpSink) -> None:
    app.config.update(
        LABBOOK_SMTP_HOST=sink.host, LABBOOK_SMTP_PORT=sink.port, LABBOOK_SMTP_STARTTLS=False,
        LABBOOK_SMTP_USER=None, LABBOOK_SMTP_PASSWORD=None, LABBOOK_SMTP_TIMEOUT=5,
    )


@pytest.fixture
def refusing_sink(app: Flask) -> Iterator[RefusingSink]:
    """Like ``smtp_sink``; set ``.refuse[address] = "550 ..."`` to refuse a recipient."""
    sink = RefusingSink().start()
    point_app_at(app, sink)
    yield sink
    sink.stop()
