"""Real scheduler processes against one committed database (issue 4's required test).

Several ``flask --app labbook scheduler`` processes run at once (PostgreSQL: three, elected
by the advisory lock; SQLite: two, elected by the file lock). A batch of confirmed
bookings has its 1-hour reminder due; the reminder job and the outbox delivery run every
second in whichever process leads. Every reminder must arrive at a real SMTP server
(aiosmtpd in this process) exactly once. Then the leader is SIGKILLed: another process
must take over within a bounded time, and the reminders of new bookings must also arrive
exactly once. Finally the survivors stop cleanly on SIGTERM and release the leadership.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from labbook.extensions import db
from labbook.notifications.models import Notification, OnceMark, OutboxMessage
from labbook.scheduler.election import election_for
from labbook.scheduler.models import SchedulerLeader
from labbook.scheduler.registry import JOB_IDS
from tests import factories
from tests.bookings.conftest import Committed, committed_database
from tests.scheduler.support import wait_for
from tests.smtp import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
FIRST_BATCH = 30
SECOND_BATCH = 10
MAIL_DEADLINE = 90      # seconds for a batch of reminders to be delivered
TAKEOVER_DEADLINE = 30  # seconds for another process to lead after the leader is killed
FAST = ("booking_reminders", "deliver_outbox")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def committed(request, tmp_path_factory) -> Iterator[Committed]:
    """A fresh, migrated database with real commits, visible to other processes."""
    yield from committed_database(request.param, tmp_path_factory)


class Schedulers:
    """``count`` scheduler processes; their output goes to files, printed on failure."""

    def __init__(self, count: int, env: dict[str, str], logs: Path) -> None:
        flask = Path(sys.executable).with_name("flask")
        command = [str(flask)] if flask.exists() else [sys.executable, "-m", "flask"]
        self.logs = [logs / f"scheduler-{n}.log" for n in range(count)]
        self.procs: list[subprocess.Popen] = []
        for path in self.logs:
            with path.open("wb") as out:
                self.procs.append(subprocess.Popen(
                    [*command, "--app", "labbook", "scheduler"], cwd=ROOT, env=env,
                    stdout=out, stderr=subprocess.STDOUT,
                ))

    def by_pid(self, pid: int) -> subprocess.Popen:
        return next(proc for proc in self.procs if proc.pid == pid)

    def alive(self) -> list[subprocess.Popen]:
        return [proc for proc in self.procs if proc.poll() is None]

    def log_text(self) -> str:
        return "\n".join(f"===== {path.name} =====\n{path.read_text(errors='replace')}"
                         for path in self.logs)

    def stop(self, timeout: float = 20) -> dict[int, int]:
        """SIGTERM the living, wait; SIGKILL what does not stop. Exit codes by pid."""
        for proc in self.alive():
            proc.send_signal(signal.SIGTERM)
        codes = {}
        for proc in self.procs:
            try:
                codes[proc.pid] = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[proc.pid] = proc.wait()
        return codes


def _env(committed: Committed, sink: SmtpSink, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    intervals = ",".join(f"{job}={1 if job in FAST else 3600}" for job in JOB_IDS)
    env.update(
        LABBOOK_ENV="development",
        LABBOOK_DATABASE_URL=committed.url,
        LABBOOK_SECRET_KEY="scheduler-process-test",
        LABBOOK_SMTP_HOST=sink.host, LABBOOK_SMTP_PORT=str(sink.port),
        LABBOOK_SMTP_STARTTLS="false", LABBOOK_SMTP_TIMEOUT="10",
        LABBOOK_SCHEDULER_ELECTION_SECONDS="0.5",
        LABBOOK_SCHEDULER_INTERVALS=intervals,
        LABBOOK_SCHEDULER_LOCK_FILE=str(tmp_path / "scheduler.lock"),
        LABBOOK_REMINDER_OFFSETS="60",
        LABBOOK_OUTBOX_BACKOFF_SECONDS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _add_due_bookings(committed: Committed, count: int, first_minute: int) -> dict[int, str]:
    """``count`` confirmed one-minute bookings (one owner each) starting within the next
    hour, made two days ago: each has its 1-hour reminder due now. {booking id: email}."""
    def work() -> dict[int, str]:
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        made_at = now - timedelta(days=2)
        instrument = factories.make_instrument()
        result = {}
        for n in range(count):
            start = now + timedelta(minutes=first_minute + n)
            booking = factories.make_booking(
                instrument, factories.make_booker(instrument), start=start,
                end=start + timedelta(minutes=1), created_at=made_at,
            )
            result[booking.id] = booking.user.email
        return result

    return committed.run(work)


def _leader(committed: Committed) -> tuple[str, int] | None:
    holder = committed.run(lambda: db.session.scalar(sa.select(SchedulerLeader.holder)))
    return None if holder is None else (holder, int(holder.rsplit(":", 1)[1]))


def _pending(committed: Committed) -> int:
    """Mail not sent yet: outbox messages pending, and notifications not yet composed."""
    return committed.run(lambda: db.session.scalar(
        sa.select(sa.func.count()).select_from(OutboxMessage)
        .where(OutboxMessage.state == "pending")) + db.session.scalar(
        sa.select(sa.func.count()).select_from(Notification)
        .where(Notification.mail_pending == sa.true())))


def _reminded(committed: Committed, ids: set[int]) -> set[int]:
    return set(committed.run(lambda: db.session.scalars(
        sa.select(OnceMark.object_id).where(OnceMark.kind == "reminder", OnceMark.tag == "60",
                                            OnceMark.object_id.in_(ids))).all()))


def _all_delivered(committed: Committed, sink: SmtpSink, expected: int):  # type: ignore
    """Truthy once the sink holds ``expected`` mails and nothing is pending any more."""
    return len(sink.received()) >= expected and _pending(committed) == 0


def _assert_exactly_once(committed: Committed, sink: SmtpSink, bookings: dict[int, str]) -> None:
    mails = sink.received()
    by_id = Counter(mail["Message-ID"] for mail in mails)
    by_recipient_subject = Counter((mail["To"], mail["Subject"]) for mail in mails)
    assert [mid for mid, n in by_id.items() if n > 1] == []
    assert [key for key, n in by_recipient_subject.items() if n > 1] == []
    assert sorted(mail["To"] for mail in mails) == sorted(bookings.values())
    assert _reminded(committed, set(bookings)) == set(bookings)
    sent = committed.run(lambda: db.session.scalars(
        sa.select(OutboxMessage.message_id).where(OutboxMessage.state == "sent")).all())
    assert sorted(sent) == sorted(by_id)
    assert _pending(committed) == 0


def _assert_nobody_else_can_lead(committed: Committed, tmp_path: Path) -> None:
    outsider = election_for(committed.url, tmp_path / "scheduler.lock")
    try:
        assert outsider.try_acquire() is False
    finally:
        outsider.close()


def _leaders_elected(procs: Schedulers) -> int:
    return procs.log_text().count("elected leader")


def test_schedulers_deliver_each_reminder_once_and_fail_over(committed, tmp_path):
    count = 3 if committed.backend == "postgresql" else 2
    sink = SmtpSink().start()
    first = _add_due_bookings(committed, FIRST_BATCH, first_minute=5)
    procs = Schedulers(count, _env(committed, sink, tmp_path), tmp_path)
    try:
        wait_for(lambda: _all_delivered(committed, sink, FIRST_BATCH), MAIL_DEADLINE,
                 "the first batch of reminders")
        _assert_exactly_once(committed, sink, first)
        holder, pid = wait_for(lambda: _leader(committed), 10, "a leader row")
        assert pid in {proc.pid for proc in procs.procs}
        assert _leaders_elected(procs) == 1
        _assert_nobody_else_can_lead(committed, tmp_path)

        leader = procs.by_pid(pid)
        leader.send_signal(signal.SIGKILL)
        leader.wait(timeout=10)
        new_holder, new_pid = wait_for(
            lambda: (row := _leader(committed)) and row[0] != holder and row,
            TAKEOVER_DEADLINE, "another process to take over")
        assert new_pid in {proc.pid for proc in procs.alive()}

        second = _add_due_bookings(committed, SECOND_BATCH, first_minute=5 + FIRST_BATCH)
        wait_for(lambda: _all_delivered(committed, sink, FIRST_BATCH + SECOND_BATCH),
                 MAIL_DEADLINE, "the second batch of reminders")
        _assert_exactly_once(committed, sink, {**first, **second})
        assert _leaders_elected(procs) == 2

        codes = procs.stop()
        assert [codes[proc.pid] for proc in procs.procs if proc is not leader] == [0] * (count - 1)
        assert _leader(committed) is None          # released and cleared on SIGTERM
    finally:
        procs.stop(timeout=5)
        sink.stop()
        print(procs.log_text())  # pytest shows it when the test fails
