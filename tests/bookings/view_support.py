"""Helpers shared by the booking page tests (tests/bookings/test_views*.py).

The pages call ``now_utc()``; tests freeze it (``freeze``) at a fixed instant a week before
the booked times, so nothing depends on the wall clock. Times: Monday 2030-01-07 10:00 in
Asia/Shanghai is 02:00 UTC.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from labbook.bookings.models import Booking
from labbook.extensions import db
from tests import factories
from tests.conftest import CSRF_RE, login

UTC = timezone.utc
MON_10 = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)  # Monday 10:00 Shanghai
NOW = MON_10 - timedelta(days=7)  # Monday 2029-12-31 10:00 Shanghai
VIEW_MODULES = (
    "labbook.bookings.views",
    "labbook.bookings.manage",
    "labbook.bookings.views_series",
)


def freeze(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    """Make the booking pages believe it is ``moment``."""
    for module in VIEW_MODULES:
        monkeypatch.setattr(f"{module}.now_utc", lambda: moment)


def scene(**policy: Any) -> SimpleNamespace:
    """A Shanghai facility (staffed Mon–Fri 08:30–17:30) with an instrument (``policy``
    overrides its columns), its manager, a qualified booker and a second booker."""
    facility = factories.make_facility(name="Electron Microscopy Core")
    instrument = factories.make_instrument(facility, name="Zeiss SEM", **policy)
    s = SimpleNamespace(facility=facility, instrument=instrument)
    s.manager = factories.make_user_with_role("facility_manager", facility=facility)
    s.booker = factories.make_booker(instrument, name="Alice Booker")
    s.other = factories.make_booker(instrument, name="Bob Other")
    s.account = s.booker.memberships[0].team.default_account
    db.session.commit()
    return s


def token_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no csrf token on the page"
    return match.group(1)


def post_form(client, path: str, data: dict[str, Any], page: str | None = None):  # type: ignore
    """POST ``data`` with the CSRF token of ``page`` (default: ``path`` itself)."""
    token = token_of(client.get(page or path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data})


def as_user(client, user) -> None:  # type: ignore[no-untyped-def]
    assert login(client, user.email).status_code == 302


def booking_count() -> int:
    return db.session.scalar(sa.select(sa.func.count(Booking.id))) or 0


def times(day: date, start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {"date": day.isoformat(), "start_time": start, "end_time": end, **extra}
