"""notify(): an in-app row always, marked for mail in the same transaction; the delivery
job's composing step (compose.py) turns it into an outbox message unless turned off."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from icalendar import Calendar

from labbook.bookings import services
from labbook.bookings.notices import notify_owner
from labbook.extensions import db
from labbook.notifications import compose as compose_module
from labbook.notifications.compose import compose_batch
from labbook.notifications.models import Notification, NotificationPreference, OutboxMessage
from labbook.notifications.services import notify, to_compose
from tests.factories import make_booking, make_user
from tests.mail import compose

T0 = datetime(2029, 12, 20, 8, 0, tzinfo=timezone.utc)


def _messages() -> list[OutboxMessage]:
    return list(db.session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)))


def test_notify_marks_for_mail_and_renders_nothing_in_the_request(app):
    booking = make_booking(purpose="imaging")
    note = notify_owner(booking, "booking_confirmed")
    assert note.mail_pending is True
    assert _messages() == []
    assert to_compose() == 1


def test_composing_queues_mail_with_the_booking_ics(app):
    booking = make_booking(purpose="imaging")
    note = notify_owner(booking, "booking_confirmed")
    assert compose() == 1
    [message] = _messages()
    assert message.notification_id == note.id
    assert message.to_address == booking.user.email
    assert message.state == "pending" and message.attempts == 0
    assert message.created_at == note.created_at
    assert booking.instrument.name in message.subject
    event = Calendar.from_ical(message.ics).walk("VEVENT")[0]
    assert str(event["UID"]).startswith(f"reservation-{booking.id}@")
    assert event.decoded("DTSTART") == booking.start_at
    assert db.session.get(Notification, note.id).mail_pending is False
    assert compose() == 0  # composed once
    assert len(_messages()) == 1


def test_the_ics_describes_the_booking_as_it_is_when_the_mail_is_composed(app):
    booking = make_booking(purpose="imaging")
    notify_owner(booking, "booking_confirmed")
    services.cancel_booking(booking.user, booking, "plans changed")
    assert compose() == 1  # the receipt (an owner's own cancellation is not mailed back)
    for message in _messages():
        event = Calendar.from_ical(message.ics).walk("VEVENT")[0]
        assert str(event["STATUS"]) == "CANCELLED"
        assert int(event["SEQUENCE"]) == booking.sequence


def test_mail_turned_off_keeps_the_in_app_notification(app):
    user = make_user()
    db.session.add(NotificationPreference(user_id=user.id, kind="no_show", by_email=False))
    db.session.flush()
    note = notify(user, "no_show", params={"instrument": "SEM"})
    assert db.session.get(Notification, note.id) is not None
    assert compose() == 0
    assert _messages() == []
    assert db.session.get(Notification, note.id).mail_pending is False


def test_preferences_are_read_when_the_mail_is_composed(app):
    user, other = make_user(), make_user()
    notify(user, "no_show", params={"instrument": "SEM"})
    notify(other, "no_show", params={"instrument": "SEM"})
    db.session.add(NotificationPreference(user_id=user.id, kind="no_show", by_email=False))
    db.session.add(NotificationPreference(user_id=other.id, kind="reminder", by_email=False))
    db.session.flush()
    assert compose() == 1
    assert [m.recipient_id for m in _messages()] == [other.id]


def test_inactive_users_and_users_without_address_get_no_mail(app):
    gone, silent = make_user(), make_user()
    notify(gone, "no_show", params={"instrument": "SEM"})
    gone.active = False
    silent.email = ""
    note = notify(silent, "no_show", params={"instrument": "SEM"})
    assert note.mail_pending is False  # no address when notified: never marked
    assert compose() == 0
    assert _messages() == []


def test_a_rolled_back_change_leaves_nothing_to_compose(app):
    user = make_user()
    db.session.commit()
    notify(user, "no_show", params={"instrument": "SEM"})
    db.session.rollback()
    assert to_compose() == 0 and compose() == 0


def test_batches_compose_oldest_first_and_stop_when_short(app):
    users = [make_user() for _ in range(5)]
    for user in users:
        notify(user, "no_show", params={"instrument": "SEM"}, now=T0)
    db.session.commit()
    assert compose_batch(T0, 2) == (2, 2)
    assert [m.recipient_id for m in _messages()] == [u.id for u in users[:2]]
    assert compose_module.compose_pending(T0, 2) == 3
    assert compose_batch(T0, 2) == (0, 0)
    assert {m.next_attempt_at for m in _messages()} == {T0}


def test_a_mail_that_cannot_be_rendered_is_skipped_and_logged(app, monkeypatch, caplog):
    broken, fine = make_user(), make_user()
    notify(broken, "no_show", params={"instrument": "SEM"})
    notify(fine, "no_show", params={"instrument": "SEM"})
    real = compose_module.render.render_mail

    def render(user, note, reservation):  # type: ignore[no-untyped-def]
        if user.id == broken.id:
            raise RuntimeError("template bug")
        return real(user, note, reservation)

    monkeypatch.setattr(compose_module.render, "render_mail", render)
    assert compose() == 1
    assert [m.recipient_id for m in _messages()] == [fine.id]
    assert "could not compose the mail" in caplog.text
    assert to_compose() == 0  # the broken one does not block later runs


def test_the_delivery_run_composes_before_it_sends(app, smtp_sink):
    from labbook.notifications.tasks import deliver_outbox

    booking = make_booking(start=T0 + timedelta(days=3))
    notify_owner(booking, "booking_confirmed")
    db.session.commit()
    assert deliver_outbox() == 1
    [mail] = smtp_sink.received()
    assert mail["To"] == booking.user.email


def test_unknown_kind_is_a_programming_error(app):
    with pytest.raises(ValueError):
        notify(make_user(), "nonsense")


def test_a_batch_reads_its_bookings_in_one_query(app):
    bookings = [make_booking(purpose=f"run {n}") for n in range(4)]
    for booking in bookings:
        notify_owner(booking, "booking_confirmed")
    db.session.commit()
    seen: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert compose() == 4
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    reads = [s for s in seen
             if s.lstrip().upper().startswith("SELECT") and "FROM reservations" in s]
    assert len(reads) == 1, reads
    assert {m.ics is not None for m in _messages()} == {True}
