"""How the bookings API shows a booking (the ``Booking`` component of the OpenAPI
document), shared by every bookings API module."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from labbook.bookings.models import Booking


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
