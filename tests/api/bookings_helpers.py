"""Shared scene and helpers of the bookings API tests (test_bookings*.py,
test_availability.py, test_qualifications.py).

The API uses the wall clock (``now_utc()``), so times here are built relative to it: the
scene's ``start`` is a whole hour two days ahead. The facility is in Asia/Shanghai (UTC+8,
no DST), so a whole UTC hour is a whole local hour too.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.bookings.models import Qualification, QualificationRequest, Reservation
from labbook.db import now_utc
from labbook.extensions import db
from tests import factories

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOT_FOUND_ID = 2147483647


def whole_hour(days: float = 2.0) -> datetime:
    """The first whole hour (UTC) at least ``days`` from now."""
    moment = now_utc() + timedelta(days=days)
    return moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def iso(moment: datetime) -> str:
    """``moment`` as the API writes it: in the facility's zone, with the offset."""
    return moment.astimezone(SHANGHAI).isoformat()


def make_scene(api_token: Callable[[Any], dict[str, str]], **instrument_kw: Any) -> SimpleNamespace:
    """One instrument in its own facility; an owner and a stranger, both qualified
    (advanced, so staffed hours never get in the way) with a default account each; a
    manager of the facility, a manager of another facility and an admin."""
    facility = factories.make_facility()
    instrument = factories.make_instrument(facility, name="Alpha SEM", category="SEM",
                                           **instrument_kw)
    scene = SimpleNamespace(
        facility=facility,
        instrument=instrument,
        owner=factories.make_booker(instrument, level="advanced", name="Olivia Owner"),
        stranger=factories.make_booker(instrument, level="advanced"),
        manager=factories.make_user_with_role("facility_manager", facility=facility),
        other_manager=factories.make_user_with_role("facility_manager"),
        admin=factories.make_user_with_role("admin"),
        start=whole_hour(),
    )
    db.session.commit()
    tokens = {user.id: api_token(user) for user in (
        scene.owner, scene.stranger, scene.manager, scene.other_manager, scene.admin)}

    def headers(user: Any) -> dict[str, str]:
        """Bearer headers of ``user``; the scene's users get theirs up front, so that
        asking for them writes nothing (a new token is audited)."""
        if user.id not in tokens:
            tokens[user.id] = api_token(user)
        return tokens[user.id]

    scene.headers = headers
    return scene


def body_for(scene: SimpleNamespace, start: datetime | None = None, minutes: int = 60,
             **extra: Any) -> dict[str, Any]:
    """A valid POST /bookings body for ``scene.instrument``."""
    start = start or scene.start
    return {"instrument_id": scene.instrument.id, "start": iso(start),
            "end": iso(start + timedelta(minutes=minutes)), **extra}


def count(model: Any) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def written() -> dict[str, int]:
    """Row counts of everything the bookings API writes; equal before and after a refused
    request means nothing was written. Uncommitted leftovers are dropped first: only what
    the request committed counts."""
    from labbook.billing.models import (
        Adjustment, ChargeLine, Consumable, CustomerClass, Rate, Statement, UsageItem,
    )
    from labbook.care.models import FaultReport
    from labbook.feeds.models import CalendarFeed
    from labbook.notifications.models import Notification

    db.session.rollback()
    counts = {model.__name__: count(model) for model in (
        Reservation, AuditEntry, Qualification, QualificationRequest, CalendarFeed,
        FaultReport, Rate, Adjustment, ChargeLine, Statement, CustomerClass, Consumable,
        UsageItem)}
    counts["read notifications"] = db.session.scalar(
        sa.select(sa.func.count()).where(Notification.read_at.is_not(None)))
    return counts


def row_of(booking_id: int) -> dict[str, Any]:
    """A booking's stored columns, read fresh from the database."""
    db.session.rollback()
    row = db.session.execute(
        sa.select(Reservation.__table__).where(Reservation.__table__.c.id == booking_id)
    ).mappings().one()
    return dict(row)


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    """The error body, after checking status, content type and code."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    return error
