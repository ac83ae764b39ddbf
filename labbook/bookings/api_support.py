"""Helpers of the bookings API that belong elsewhere once the API has settled.

* ``run_with_retry`` → ``labbook/db.py`` (any caller that commits a write may use it);
* ``optional_json_body`` → ``labbook/api/__init__.py`` next to ``json_body``;
* ``bookings_visible_to``, ``change_purpose`` → ``labbook/bookings/services.py``;
* ``cancel_in_scope`` → ``labbook/bookings/series.py`` (the pages use it too);
* ``qualifications_visible_to``, ``may_see_qualification`` →
  ``labbook/bookings/qualifications.py``.

They live here for now because the API helper does not own those modules.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import request
from flask_babel import gettext as _

from labbook import audit
from labbook.api import json_body
from labbook.auth.models import Role, User
from labbook.bookings import series as series_service
from labbook.bookings.errors import BookingRefused, NotAllowed
from labbook.bookings.models import Booking, Qualification
from labbook.bookings.models.reservations import HOLDING_BOOKING_STATES
from labbook.bookings.services import cancel_booking
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument

T = TypeVar("T")
RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
MAX_ATTEMPTS = 4  # the first try and up to three retries


def run_with_retry(unit: Callable[[], T], attempts: int = MAX_ATTEMPTS) -> T:
    """Run ``unit`` and commit. When PostgreSQL aborts the transaction as the victim of a
    deadlock or a serialization race (SQLSTATE 40P01/40001), nothing is wrong with the
    request: roll back and run the whole unit again, on fresh data (so the unit must load
    what it needs itself). Any other error propagates at once, uncommitted.

    :raises sqlalchemy.exc.DBAPIError: after the last attempt, or for other database errors.
    """
    for attempt in range(1, attempts + 1):
        try:
            result = unit()
            db.session.commit()
            return result
        except sa.exc.DBAPIError as error:
            db.session.rollback()
            if getattr(error.orig, "sqlstate", None) not in RETRY_SQLSTATES or attempt == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def optional_json_body() -> dict[str, Any]:
    """The request's JSON object, or ``{}`` when the request has no body at all (for
    actions whose properties are all optional).

    :raises UnsupportedMediaType, BadRequest, ValidationError: as ``json_body``.
    """
    if not request.get_data(cache=True):
        return {}
    return json_body()


def _managed_instruments(user: User) -> sa.Select | None:
    """Ids of the instruments in the facilities ``user`` manages (None: no facility)."""
    if not (user.has_role(Role.FACILITY_MANAGER) and user.managed_facilities):
        return None
    return sa.select(Instrument.id).where(
        Instrument.facility_id.in_([f.id for f in user.managed_facilities]))


def bookings_visible_to(user: User) -> sa.Select:
    """Bookings ``user`` may see: their own, their led teams' bookings, those on instruments
    of the facilities they manage, and for admins every booking (the rule of
    ``Booking.can_see_details``)."""
    stmt = sa.select(Booking)
    if user.is_admin:
        return stmt
    conditions = [Booking.user_id == user.id]
    led = [m.team_id for m in user.memberships if m.is_lead] if user.has_role("team_lead") else []
    if led:
        conditions.append(Booking.team_id.in_(led))
    managed = _managed_instruments(user)
    if managed is not None:
        conditions.append(Booking.instrument_id.in_(managed))
    return stmt.where(sa.or_(*conditions))


def may_see_qualification(user: User, qualification: Qualification) -> bool:
    """The holder, managers of the instrument's facility, admins; a category-wide
    qualification concerns instruments everywhere, so every facility manager sees it."""
    if qualification.user_id == user.id:
        return True
    if qualification.instrument is None:
        return user.manages_any_facility()
    return user.manages_facility(qualification.instrument.facility_id)


def qualifications_visible_to(user: User) -> sa.Select:
    """Unrevoked qualifications ``user`` may see (``may_see_qualification`` as a query)."""
    stmt = sa.select(Qualification).where(Qualification.revoked_at.is_(None))
    if user.is_admin:
        return stmt
    managed = _managed_instruments(user)
    if managed is None:
        return stmt.where(Qualification.user_id == user.id)
    return stmt.where(sa.or_(Qualification.user_id == user.id,
                             Qualification.category.is_not(None),
                             Qualification.instrument_id.in_(managed)))


def change_purpose(actor: User, booking: Booking, purpose: str) -> Booking:
    """Change what an upcoming or running booking is for (owner or facility manager);
    audited, and ``sequence`` increases so calendars pick the change up.

    :raises NotAllowed: for anyone else. :raises BookingRefused: for a finished booking.
    """
    if not (booking.is_owner(actor) or booking.can_manage(actor)):
        raise NotAllowed("owner", _("Only the booking's owner or a facility manager may "
                                    "change it."))
    if booking.state not in HOLDING_BOOKING_STATES:
        raise BookingRefused("state", _("Only upcoming or running bookings can be changed."),
                             "state")
    purpose = purpose.strip()
    if purpose != (booking.purpose or ""):
        before = {"purpose": booking.purpose}
        booking.purpose = purpose
        booking.sequence += 1
        db.session.flush()
        audit.record(actor, "booking.update", booking, before=before, after={"purpose": purpose})
    return booking


def _at(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat()


def booking_to_dict(booking: Booking) -> dict[str, Any]:
    """A booking as the API shows it (the ``Booking`` component): times in the facility's
    zone with their offset. Here so that every bookings API module can use it."""
    zone = ZoneInfo(booking.instrument.facility.timezone)
    return {
        "id": booking.id,
        "instrument_id": booking.instrument_id,
        "user_id": booking.user_id,
        "team_id": booking.team_id,
        "account_id": booking.account_id,
        "start": _at(booking.start_at, zone),
        "end": _at(booking.end_at, zone),
        "state": booking.state,
        "purpose": booking.purpose or "",
        "assisted": booking.assisted,
        "series_id": booking.series_id,
        "sequence": booking.sequence,
        "late_cancel": booking.late_cancel,
        "created_at": _at(booking.created_at, zone),
        "updated_at": _at(booking.updated_at, zone),
        "state_reason": booking.state_reason,
        "checked_in_at": _at(booking.checked_in_at, zone),
        "checked_out_at": _at(booking.checked_out_at, zone),
    }


CANCEL_SCOPES = ("occurrence", "following", "series")


def cancel_in_scope(
    actor: User, booking: Booking, scope: str, reason: str | None, now: datetime
) -> list[Booking]:
    """Cancel ``booking`` alone (``occurrence``), with the later occurrences of its series
    (``following``) or every upcoming occurrence of its series (``series``); the bookings
    cancelled now, in order.

    :raises ValidationError: a series scope for a booking outside any series (field
        ``scope``). :raises NotAllowed, BookingRefused: as the series and booking services.
    """
    if scope not in CANCEL_SCOPES:
        raise ValidationError(_("The request has invalid values."),
                              {"scope": [_("Choose what to cancel.")]})
    if scope == "occurrence":
        return [cancel_booking(actor, booking, reason, now)]
    if booking.series_id is None:
        raise ValidationError(_("This booking is not part of a series."),
                              {"scope": [_("Only bookings of a series can be cancelled "
                                           "with this choice.")]})
    if scope == "following":
        return series_service.cancel_following(actor, booking, now=now, reason=reason)
    return series_service.cancel_series(actor, booking.series, now=now, reason=reason)
