"""Who hears about what happens to a booking. The booking services call these inside
their transaction; labbook/notifications/services.py queues the mail in the same one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from labbook.bookings.models import Reservation
from labbook.notifications.models import Notification
from labbook.notifications.services import notify


def booking_params(reservation: Reservation, **extra: Any) -> dict[str, Any]:
    """What a message about ``reservation`` needs, frozen at the time of the event (local
    times in the facility's zone, so the text reads as the facility's clock)."""
    instrument = reservation.instrument
    zone = ZoneInfo(instrument.facility.timezone)
    params: dict[str, Any] = {
        "booking_id": reservation.id,
        "instrument": instrument.name,
        "instrument_id": instrument.id,
        "facility": instrument.facility.name,
        "timezone": instrument.facility.timezone,
        "start": reservation.start_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "end": (
            reservation.end_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
            if reservation.end_at is not None else ""
        ),
        "state": reservation.state,
    }
    if getattr(reservation, "state_reason", None):
        params["reason"] = reservation.state_reason
    params.update(extra)
    return params


def notify_owner(
    reservation: Reservation, kind: str, now: datetime | None = None, **extra: Any
) -> Notification:
    """Tell the booking's owner about ``kind``."""
    return notify(
        reservation.user, kind, reservation=reservation,
        params=booking_params(reservation, **extra), now=now,
    )
