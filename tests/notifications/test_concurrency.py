"""Concurrent delivery runs (as two scheduler processes would start them) on a really
committed database: each notification is composed into mail once, and each message
reaches the SMTP server exactly once.

Each thread has its own app context, session and connection; on PostgreSQL the claims race
through ``FOR UPDATE SKIP LOCKED``, on SQLite ``BEGIN IMMEDIATE`` serializes them. Small
batches make the runs interleave claim after claim."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from labbook.extensions import db
from labbook.notifications.models import OutboxMessage
from labbook.notifications.services import notify
from labbook.notifications.tasks import deliver_outbox
from tests import factories
from tests.notifications.conftest import point_app_at
from tests.smtp import SmtpSink

NOW = datetime(2029, 12, 20, 8, 0, tzinfo=timezone.utc)
RUNS = 3
MESSAGES = 40


@pytest.fixture
def sink(committed):  # type: ignore[no-untyped-def]
    server = SmtpSink().start()
    saved = dict(committed.app.config)
    point_app_at(committed.app, server)
    committed.app.config["LABBOOK_OUTBOX_BATCH"] = 3
    yield server
    server.stop()
    committed.app.config.update(saved)


def _notify(committed) -> list[int]:  # type: ignore[no-untyped-def]
    """MESSAGES committed notifications marked for mail (none composed yet)."""
    def work() -> list[int]:
        return [notify(factories.make_user(), "no_show",
                       params={"instrument": "Race SEM", "start": "2030-01-07 10:00"},
                       now=NOW).id for _ in range(MESSAGES)]

    return committed.run(work)


def _outbox(committed, note_ids: list[int]) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """Outbox id → Message-ID of the notifications' mail."""
    return dict(committed.run(lambda: db.session.execute(
        sa.select(OutboxMessage.id, OutboxMessage.message_id).where(
            OutboxMessage.notification_id.in_(note_ids))).all()))


def test_concurrent_runs_compose_and_deliver_each_message_exactly_once(committed, sink):
    note_ids = _notify(committed)
    start = threading.Barrier(RUNS)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with committed.app.app_context():
                start.wait(timeout=30)
                results.append(deliver_outbox(NOW))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(RUNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and errors == []

    queued = _outbox(committed, note_ids)
    assert len(queued) == MESSAGES, "each notification was composed once"
    counts = Counter(m["Message-ID"] for m in sink.received())
    assert max(counts.values()) == 1, "no message went out twice"
    assert set(queued.values()) <= set(counts), "every message went out"
    assert sum(results) == len(counts)

    def states() -> set[str]:
        return set(db.session.scalars(sa.select(OutboxMessage.state).where(
            OutboxMessage.id.in_(list(queued)))))

    assert committed.run(states) == {"sent"}
    with committed.app.app_context():
        assert deliver_outbox(NOW) == 0
    assert len(sink.received()) == len(counts), "a further run sends nothing"
