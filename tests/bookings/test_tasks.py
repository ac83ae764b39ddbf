"""The scheduler's booking jobs (labbook/bookings/tasks.py) with an injected clock: each
commits per item, a second run has no extra effect, they catch up after a gap, one bad
item does not stop the others, and two processes running a job at once act once. Both
databases; the concurrency tests use a really committed database (tests/bookings/conftest.py).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.auth.models import User
from labbook.bookings import notices, services, tasks, waitlist
from labbook.bookings.models import Booking, WaitlistEntry
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.notifications.models import Notification, OnceMark, OutboxMessage
from tests import factories
from tests.mail import compose
from tests.bookings.conftest import Committed, build_scene

UTC = timezone.utc
MON_10 = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)  # Monday 10:00 Asia/Shanghai
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LONG_AGO = MON_10 - 30 * DAY
JOBS = (
    tasks.send_reminders, tasks.mark_no_shows, tasks.auto_check_out, tasks.expire_pending,
    tasks.remind_approvers, tasks.process_waitlists, tasks.qualification_expiry,
)


def count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def kinds_of(user) -> list[str]:
    return list(db.session.scalars(
        sa.select(Notification.kind).where(Notification.user_id == user.id)
        .order_by(Notification.id)
    ))


def entry(instrument, user, start, created_at, offer_expires_at=None) -> WaitlistEntry:
    """A waitlist entry for ``[start, start + 1 h)``, offered when ``offer_expires_at``."""
    row = WaitlistEntry(
        instrument_id=instrument.id, user_id=user.id, start_at=start, end_at=start + HOUR,
        account_id=user.memberships[0].team.default_account.id, purpose="",
        created_at=created_at, state="offered" if offer_expires_at else "waiting",
        offered_at=offer_expires_at - HOUR if offer_expires_at else None,
        offer_expires_at=offer_expires_at,
    )
    db.session.add(row)
    db.session.flush()
    return row


@pytest.fixture
def gap(app):
    """Work that became due while the scheduler was down for three hours, ``now`` being
    MON_10: a confirmed booking starting in 30 minutes, one that started two hours ago
    without check-in, a session that should have ended 2.5 hours ago, a pending booking
    that started an hour ago, a pending one starting in 5 hours, a lapsed waitlist offer
    with a waiter behind it, and a qualification expiring in 3 days."""
    instrument = factories.make_instrument()
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    users = [factories.make_booker(instrument) for _ in range(6)]

    def book(user, start, state, **kw):
        return factories.make_booking(instrument, user, start=start, state=state,
                                      state_changed_at=LONG_AGO, **kw)

    scene = {
        "manager": manager,
        "soon": book(users[0], MON_10 + 30 * MIN, "confirmed"),
        "absent": book(users[1], MON_10 - 2 * HOUR, "confirmed"),
        "forgotten": book(users[2], MON_10 - 4 * HOUR, "in_use", end=MON_10 - 3 * HOUR,
                          checked_in_at=MON_10 - 4 * HOUR),
        "unapproved": book(users[3], MON_10 - HOUR, "pending"),
        "waiting": book(users[3], MON_10 + 5 * HOUR, "pending"),
    }
    start = MON_10 + DAY
    offered = entry(instrument, users[4], start, LONG_AGO, offer_expires_at=MON_10 - 3 * HOUR)
    behind = entry(instrument, users[5], start, LONG_AGO + MIN)
    scene.update(offered=offered, behind=behind, qualification=factories.make_qualification(
        factories.make_user(), instrument, expires_at=MON_10 + 3 * DAY,
        granted_at=LONG_AGO - 365 * DAY))
    db.session.commit()
    return scene


def test_each_job_catches_up_after_a_three_hour_gap(gap):
    handled = {job.__name__: job(MON_10) for job in JOBS}
    assert handled == {
        "send_reminders": 1, "mark_no_shows": 1, "auto_check_out": 1, "expire_pending": 1,
        "remind_approvers": 1, "process_waitlists": 2, "qualification_expiry": 1,
    }
    soon, absent, forgotten = gap["soon"], gap["absent"], gap["forgotten"]
    assert [n.params["minutes_before"] for n in db.session.scalars(
        sa.select(Notification).where(Notification.kind == "reminder"))] == [60]
    assert kinds_of(soon.user) == ["reminder"]
    assert absent.state == "no_show" and kinds_of(absent.user) == ["no_show"]
    assert forgotten.state == "completed" and forgotten.checked_out_at == MON_10 - 3 * HOUR
    assert gap["unapproved"].state == "expired"
    assert kinds_of(gap["unapproved"].user) == ["booking_expired"]
    assert kinds_of(gap["manager"]) == ["auto_checkout", "approval_needed"]
    assert gap["offered"].state == "expired" and gap["behind"].state == "offered"
    assert kinds_of(gap["offered"].user) == ["waitlist_expired"]
    assert kinds_of(gap["qualification"].user) == ["qualification_expiring"]
    assert kinds_of(gap["behind"].user) == ["waitlist_offer"]


def test_running_every_job_twice_has_no_extra_effect(gap):
    for job in JOBS:
        job(MON_10)
    compose(MON_10)
    before = (count(Notification), count(OutboxMessage), count(OnceMark))
    assert before[0] == 9 and before[1] == 9
    assert [job(MON_10) for job in JOBS] == [0] * len(JOBS)
    assert [job(MON_10 + 5 * MIN) for job in JOBS] == [0] * len(JOBS)
    assert compose(MON_10 + 5 * MIN) == 0
    assert (count(Notification), count(OutboxMessage), count(OnceMark)) == before


def test_jobs_commit_their_work(gap, app):
    tasks.mark_no_shows(MON_10)
    db.session.rollback()  # what a job committed stays
    assert db.session.get(Booking, gap["absent"].id).state == "no_show"


def test_one_failing_item_is_rolled_back_and_the_others_go_on(app, monkeypatch, caplog):
    instrument = factories.make_instrument()
    bad, good = (factories.make_booking(instrument, start=MON_10 + n * HOUR) for n in range(2))
    bad_id = bad.id
    db.session.commit()
    real = notices.booking_no_show

    def flaky(booking, now):
        if booking.id == bad_id:
            raise RuntimeError("mail renderer broke")
        real(booking, now)

    monkeypatch.setattr(notices, "booking_no_show", flaky)
    with caplog.at_level(logging.ERROR, logger="labbook.bookings.tasks"):
        assert tasks.mark_no_shows(MON_10 + 3 * HOUR) == 1
    assert f"item {bad_id} failed" in caplog.text
    assert db.session.get(Booking, bad_id).state == "confirmed"
    assert db.session.get(Booking, good.id).state == "no_show"
    assert count(Notification, Notification.kind == "no_show") == 1
    monkeypatch.setattr(notices, "booking_no_show", real)
    assert tasks.mark_no_shows(MON_10 + 3 * HOUR) == 1  # the next run retries it
    assert db.session.get(Booking, bad_id).state == "no_show"


def test_reminder_job_mails_the_owner_about_the_instrument(app):
    instrument = factories.make_instrument(name="Titan Krios")
    booking = factories.make_booking(instrument, start=MON_10, state_changed_at=LONG_AGO)
    db.session.commit()
    assert tasks.send_reminders(MON_10 - DAY + MIN) == 1
    compose(MON_10 - DAY + MIN)
    message = db.session.scalars(sa.select(OutboxMessage)).one()
    assert message.to_address == booking.user.email and "Titan Krios" in message.subject
    assert message.state == "pending" and message.ics


def test_waitlist_job_offers_time_freed_by_a_cancellation(app):
    instrument = factories.make_instrument()
    holder, waiter = factories.make_booker(instrument), factories.make_booker(instrument)
    now = MON_10 - DAY
    held = services.create_booking(holder, instrument, MON_10, MON_10 + HOUR, now=now)
    entry = waitlist.join_waitlist(waiter, instrument, MON_10, MON_10 + HOUR, now=now)
    db.session.commit()
    assert tasks.process_waitlists(now) == 0
    services.cancel_booking(holder, held, None, now)
    db.session.commit()
    assert tasks.process_waitlists(now + MIN) == 1 and tasks.process_waitlists(now + MIN) == 0
    assert entry.state == "offered" and kinds_of(waiter) == ["waitlist_offer"]


# -- two processes at once ---------------------------------------------------------------------


def run_together(committed: Committed, job: Callable[[datetime], int], now: datetime,
                 workers: int = 2) -> list[int]:
    """``job(now)`` in ``workers`` threads released together, each with its own app
    context, session and connection."""
    barrier = threading.Barrier(workers, timeout=60)
    results: list[int | str] = ["did not finish"] * workers

    def worker(index: int) -> None:
        with committed.app.app_context():
            try:
                if committed.backend == "postgresql":
                    db.session.connection()  # hold a connection before the signal
                    db.session.commit()
                barrier.wait()
                results[index] = job(now)
            except Exception:  # noqa: BLE001 - reported below
                results[index] = traceback.format_exc()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    errors = [r for r in results if not isinstance(r, int)]
    assert not errors, errors[0]
    return [int(r) for r in results]


def committed_bookings(committed: Committed, n: int, start: datetime) -> list[int]:
    """``n`` confirmed bookings, all at ``start``, each on an instrument of its own."""
    scene = build_scene(committed, n)

    def work() -> list[int]:
        facility = db.session.get(Instrument, scene.instrument_id).facility
        ids = []
        for user_id in scene.booker_ids:
            instrument = factories.make_instrument(facility)
            user = db.session.get(User, user_id)
            booking = factories.make_booking(instrument, user, start=start,
                                             state_changed_at=LONG_AGO)
            ids.append(booking.id)
        return ids

    return committed.run(work)


def notes_about(committed: Committed, kind: str, ids: list[int]) -> list[tuple[int, dict]]:
    """(booking id, params) of every ``kind`` notification about the bookings that
    queued a mail (composed first, as the delivery job does)."""
    def query() -> list[tuple[int, dict]]:
        compose()
        return [tuple(row) for row in db.session.execute(
            sa.select(Notification.reservation_id, Notification.params)
            .join(OutboxMessage, OutboxMessage.notification_id == Notification.id)
            .where(Notification.kind == kind, Notification.reservation_id.in_(ids))
        )]

    return committed.run(query)


# The no-show test's bookings lie before the reminder test's: neither job sees the other's.
NO_SHOW_START = MON_10 + 30 * DAY
REMINDER_START = MON_10 + 60 * DAY


def test_two_schedulers_send_each_reminder_once(committed):
    ids = committed_bookings(committed, 12, REMINDER_START)
    assert sum(run_together(committed, tasks.send_reminders, REMINDER_START - DAY)) == 12
    assert sum(run_together(committed, tasks.send_reminders, REMINDER_START - 30 * MIN)) == 12
    sent = sorted((i, params["minutes_before"])
                  for i, params in notes_about(committed, "reminder", ids))
    assert sent == sorted((i, offset) for i in ids for offset in (60, 1440))


def test_two_schedulers_mark_each_no_show_once(committed):
    ids = committed_bookings(committed, 10, NO_SHOW_START)
    assert sum(run_together(committed, tasks.mark_no_shows, NO_SHOW_START + 20 * MIN)) == 10
    assert sorted(i for i, _ in notes_about(committed, "no_show", ids)) == sorted(ids)
    states = committed.run(lambda: set(db.session.scalars(
        sa.select(Booking.state).where(Booking.id.in_(ids)))))
    assert states == {"no_show"}
