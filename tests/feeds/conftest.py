"""A scene for the feed tests: a facility in Asia/Shanghai with the instrument "SEM-01",
its manager, and two researchers in two teams, with bookings a few days ahead (the feed's
window is counted from today, so the scene is too)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from labbook.auth.models import User
from labbook.bookings.models import Booking, Outage
from labbook.db import now_utc
from labbook.extensions import db
from labbook.feeds import services
from labbook.instruments.models import Facility, Instrument
from labbook.teams.models import Team
from tests import factories
from tests.feeds.import_support import NATIONAL_DAY, Site, ics

SHANGHAI = ZoneInfo("Asia/Shanghai")


def weekday_ahead(days: int, zone: ZoneInfo = SHANGHAI) -> datetime:
    """Local midnight of the first Monday-to-Friday at least ``days`` days from now."""
    day = (now_utc().astimezone(zone) + timedelta(days=days)).date()
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, time(0), zone)


def at(day: datetime, hour: int, minute: int = 0) -> datetime:
    """``hour:minute`` on ``day``'s wall clock, as an aware UTC datetime."""
    return day.replace(hour=hour, minute=minute).astimezone(timezone.utc)


@dataclass
class Scene:
    facility: Facility
    instrument: Instrument
    manager: User
    owner: User  # a researcher in ``team``
    other: User  # a researcher in ``other_team``
    team: Team
    other_team: Team
    day: datetime  # local midnight of a weekday a few days ahead
    bookings: dict[str, Booking] = field(default_factory=dict)

    def book(self, name: str, user: User, start: datetime, hours: int = 1,
             **kw: Any) -> Booking:
        booking = factories.make_booking(self.instrument, user, start=start,
                                         end=start + timedelta(hours=hours), **kw)
        self.bookings[name] = booking
        return booking

    def outage(self, start: datetime, end: datetime | None, title: str = "Service",
               **kw: Any) -> Outage:
        return add_outage(self.instrument, start, end, title, **kw)


def add_outage(instrument: Instrument, start: datetime, end: datetime | None,
               title: str = "Service", **kw: Any) -> Outage:
    outage = Outage(instrument=instrument, start_at=start, end_at=end, block_end=end,
                    state=kw.pop("state", "scheduled"),
                    outage_kind=kw.pop("outage_kind", "preventive"), title=title, **kw)
    db.session.add(outage)
    db.session.flush()
    return outage


@pytest.fixture
def scene(app) -> Scene:  # type: ignore[no-untyped-def]
    facility = factories.make_facility(name="Nano Fab", timezone="Asia/Shanghai")
    instrument = factories.make_instrument(facility, name="SEM-01", location="Room 101")
    manager = factories.make_user_with_role("facility_manager", facility=facility,
                                            name="Mia Manager")
    team, other_team = factories.make_team(name="Lin Lab"), factories.make_team(name="Wu Lab")
    owner = factories.make_booker(instrument, team=team, name="Olga Owner")
    other = factories.make_booker(instrument, team=other_team, name="Otto Other")
    s = Scene(facility, instrument, manager, owner, other, team, other_team, weekday_ahead(3))
    s.book("mine", owner, at(s.day, 10), purpose="Imaging grains")
    s.book("theirs", other, at(s.day, 13), purpose="Secret project X")
    db.session.commit()
    return s


@pytest.fixture
def feed_url(app):  # type: ignore[no-untyped-def]
    """``feed_url(owner, scope, target_id)``: create a feed and return its path."""

    def _make(owner: User, scope: str, target_id: int | None = None) -> str:
        _feed, secret = services.create_feed(owner, scope, target_id)
        db.session.commit()
        return f"/feeds/{secret}.ics"

    return _make


# -- the closure import (tests/feeds/test_imports.py, test_import_*.py) ----------------------


@pytest.fixture
def lab(app):
    """A facility in Asia/Shanghai with two instruments and its manager (committed)."""
    facility = factories.make_facility(code="NANO", timezone="Asia/Shanghai")
    sem = factories.make_instrument(facility, name="SEM")
    xrd = factories.make_instrument(facility, name="XRD")
    manager = factories.make_user_with_role("facility_manager", facility=facility)
    db.session.commit()
    return facility, [sem, xrd], manager


@pytest.fixture
def site():
    server = Site()
    server.routes["/holidays.ics"] = (200, "text/calendar; charset=utf-8", ics(NATIONAL_DAY), {})
    yield server
    server.stop()
