"""Demo qualifications and bookings, so a fresh ``make run`` shows a lived-in week: the
demo researcher and lead are qualified on some electron microscopes, and hold a few bookings
next week (one awaiting approval, for the manager's queue). Bookings go through the real
booking service, so they obey every rule. Idempotent: only missing rows are added."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from labbook.auth.models import User
from labbook.bookings import services
from labbook.bookings.models import Booking, Qualification
from labbook.db import now_utc
from labbook.extensions import db
from labbook.instruments.models import Instrument

QUALIFICATIONS = (  # email, asset code, level
    ("researcher@example.org", "EMC-SEM-01", "basic"),
    ("researcher@example.org", "EMC-SEM-02", "basic"),
    ("researcher@example.org", "EMC-TEM-01", "basic"),
    ("lead@example.org", "EMC-SEM-01", "advanced"),
    ("lead@example.org", "EMC-TEM-01", "advanced"),
)
BOOKINGS = (  # email, asset code, days after next Monday, local start, minutes, purpose
    ("researcher@example.org", "EMC-SEM-01", 0, time(9, 0), 120, "Cross-section imaging of MEMS"),
    ("researcher@example.org", "EMC-SEM-01", 2, time(14, 0), 90, "EDS mapping, batch 7"),
    ("lead@example.org", "EMC-SEM-01", 1, time(10, 0), 180, "Grain-size statistics"),
    ("researcher@example.org", "EMC-TEM-01", 3, time(9, 0), 240, "HRTEM of nanowires"),
)


def _instrument(code: str) -> Instrument | None:
    return db.session.scalar(sa.select(Instrument).where(Instrument.asset_code == code))


def ensure_qualifications(users: dict[str, User], created: Counter) -> None:
    for email, code, level in QUALIFICATIONS:
        instrument = _instrument(code)
        exists = db.session.scalar(sa.select(Qualification.id).where(
            Qualification.user_id == users[email].id, Qualification.instrument_id == instrument.id))
        if instrument is not None and exists is None:
            db.session.add(Qualification(user=users[email], instrument=instrument, level=level))
            created["qualifications"] += 1
    db.session.flush()


def ensure_bookings(users: dict[str, User], created: Counter, now: datetime | None = None) -> None:
    """Bookings in the week after ``now``; skipped entirely once the demo users have any."""
    now = now or now_utc()
    owners = [users[email].id for email in {row[0] for row in BOOKINGS}]
    if db.session.scalar(sa.select(Booking.id).where(Booking.user_id.in_(owners)).limit(1)):
        return
    for email, code, day, start, minutes, purpose in BOOKINGS:
        instrument = _instrument(code)
        zone = ZoneInfo(instrument.facility.timezone)
        today = now.astimezone(zone).date()
        monday = today + timedelta(days=7 - today.weekday())
        begin = datetime.combine(monday + timedelta(days=day), start, tzinfo=zone)
        services.create_booking(users[email], instrument, begin.astimezone(now.tzinfo),
                                (begin + timedelta(minutes=minutes)).astimezone(now.tzinfo),
                                purpose=purpose, now=now)
        created["bookings"] += 1
