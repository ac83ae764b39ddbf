"""iCalendar building blocks (RFC 5545), generated with ``icalendar``, never by string
concatenation. Shared by the subscription feeds, the single-booking download and the
``.ics`` attached to notification mails.

* one VEVENT per reservation (each occurrence of a series is its own row, so its own
  event: every parser expands it identically because there is nothing to expand);
* ``UID`` = ``reservation-<id>@<host>``: stable across every change;
* ``SEQUENCE`` = the reservation's ``sequence`` column, raised by every change;
* DTSTART/DTEND in the facility's zone, with a VTIMEZONE per TZID used
  (``add_missing_timezones``);
* ``STATUS``: TENTATIVE for pending, CONFIRMED for confirmed/running/done/scheduled
  outages, CANCELLED for cancelled/rejected/expired/no-show, so clients drop the event;
* no METHOD (plain publication): never REQUEST, which would need ORGANIZER/ATTENDEE.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from icalendar import Calendar, Event

from labbook.bookings.models import Reservation

PRODID = "-//labbook//labbook calendar 1.0//EN"
STATUS = {
    "pending": "TENTATIVE",
    "confirmed": "CONFIRMED",
    "in_use": "CONFIRMED",
    "completed": "CONFIRMED",
    "scheduled": "CONFIRMED",
    "cancelled": "CANCELLED",
    "rejected": "CANCELLED",
    "expired": "CANCELLED",
    "no_show": "CANCELLED",
}
# An open-ended (unplanned) outage is shown as lasting this long from now, renewed on
# every fetch, so it always covers the near future without claiming an end.
OPEN_END_SHOWN = timedelta(days=1)


def ical_host() -> str:
    """The host part of UIDs: ``LABBOOK_ICAL_HOST`` or the base URL's host."""
    configured = current_app.config.get("LABBOOK_ICAL_HOST")
    return configured or urlsplit(current_app.config["LABBOOK_BASE_URL"]).hostname or "labbook"


def reservation_uid(reservation: Reservation) -> str:
    return f"reservation-{reservation.id}@{ical_host()}"


def reservation_url(reservation: Reservation) -> str:
    base = current_app.config["LABBOOK_BASE_URL"].rstrip("/")
    if reservation.kind == "booking":
        return f"{base}/bookings/{reservation.id}"
    return f"{base}/instruments/{reservation.instrument_id}"


def new_calendar(name: str, *, refresh: timedelta | None = None) -> Calendar:
    """An empty VCALENDAR with the header every client wants."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("name", name)
    cal.add("x-wr-calname", name)
    if refresh is not None:
        cal.add("refresh-interval", refresh, parameters={"VALUE": "DURATION"})
        cal.add("x-published-ttl", refresh)
    return cal


def _summary(reservation: Reservation, show_details: bool) -> str:
    instrument = reservation.instrument.name
    if reservation.kind == "outage":
        title = reservation.title or _("Unavailable")
        return f"{instrument}: {title}"
    if not show_details:
        return f"{instrument}: {_('Busy')}"
    purpose = (reservation.purpose or "").strip()
    return f"{instrument}: {purpose}" if purpose else instrument


def _description(reservation: Reservation, show_details: bool) -> str:
    lines = []
    if reservation.kind == "booking" and show_details:
        lines.append(_("Booked by %(name)s", name=reservation.user.name))
        if reservation.purpose:
            lines.append(reservation.purpose)
    lines.append(reservation_url(reservation))
    return "\n".join(lines)


def reservation_event(
    reservation: Reservation, *, show_details: bool, now: datetime
) -> Event:
    """The VEVENT for one booking or outage. ``show_details``: may the viewer see who
    booked and why (SPEC section 7: privacy)."""
    instrument = reservation.instrument
    zone = ZoneInfo(instrument.facility.timezone)
    end = reservation.end_at or max(now, reservation.start_at) + OPEN_END_SHOWN
    event = Event()
    event.add("uid", reservation_uid(reservation))
    event.add("dtstamp", now)
    event.add("created", reservation.created_at)
    event.add("last-modified", reservation.updated_at)
    event.add("sequence", reservation.sequence)
    event.add("dtstart", reservation.start_at.astimezone(zone))
    event.add("dtend", end.astimezone(zone))
    event.add("summary", _summary(reservation, show_details))
    location = ", ".join(p for p in (instrument.facility.name, instrument.location) if p)
    if location:
        event.add("location", location)
    event.add("description", _description(reservation, show_details))
    event.add("url", reservation_url(reservation))
    event.add("status", STATUS.get(reservation.state, "CONFIRMED"))
    event.add("transp", "TRANSPARENT" if STATUS.get(reservation.state) == "CANCELLED"
              else "OPAQUE")
    return event


def to_bytes(cal: Calendar) -> bytes:
    """Serialize with a VTIMEZONE for every TZID used; CRLF lines folded at 75 octets."""
    cal.add_missing_timezones()
    return cal.to_ical()


def booking_ics(reservation: Reservation, *, now: datetime) -> bytes:
    """A one-event calendar for a download or a mail attachment; its reader is the
    booking's owner or someone allowed to see it, so details are shown."""
    cal = new_calendar(_summary(reservation, True))
    cal.add_component(reservation_event(reservation, show_details=True, now=now))
    return to_bytes(cal)
