"""notify(): an in-app row always, a queued mail unless turned off, in one transaction."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from icalendar import Calendar

from labbook.bookings.notices import notify_owner
from labbook.extensions import db
from labbook.notifications.models import Notification, NotificationPreference, OutboxMessage
from labbook.notifications.services import notify
from tests.factories import make_booking, make_user


def test_notify_queues_mail_with_the_booking_ics(app):
    booking = make_booking(purpose="imaging")
    note = notify_owner(booking, "booking_confirmed")
    message = db.session.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.notification_id == note.id)
    ).one()
    assert message.to_address == booking.user.email
    assert message.state == "pending" and message.attempts == 0
    assert booking.instrument.name in message.subject
    event = Calendar.from_ical(message.ics).walk("VEVENT")[0]
    assert str(event["UID"]).startswith(f"reservation-{booking.id}@")
    assert event.decoded("DTSTART") == booking.start_at


def test_mail_turned_off_keeps_the_in_app_notification(app):
    user = make_user()
    db.session.add(NotificationPreference(user_id=user.id, kind="no_show", by_email=False))
    db.session.flush()
    note = notify(user, "no_show", params={"instrument": "SEM"})
    assert db.session.get(Notification, note.id) is not None
    assert db.session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 0


def test_unknown_kind_is_a_programming_error(app):
    with pytest.raises(ValueError):
        notify(make_user(), "nonsense")
