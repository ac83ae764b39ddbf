"""iCalendar building blocks (RFC 5545), generated with ``icalendar``, never by string
concatenation. Shared by the subscription feeds, the single-booking download and the
``.ics`` attached to notification mails.

* one VEVENT per reservation (each occurrence of a series is its own row, so its own
  event: every parser expands it identically because there is nothing to expand);
* ``UID`` = ``reservation-<id>@<host>``: stable across every change;
* ``SEQUENCE`` = the reservation's ``sequence`` column, raised by every change;
* ``DTSTAMP`` = the reservation's ``updated_at``: with no METHOD, RFC 5545 (3.8.7.2) defines
  it as the time the event was last revised in the calendar store, and it keeps the bytes
  of an unchanged feed identical (its ETag is strong);
* DTSTART/DTEND in the facility's zone, with a VTIMEZONE per TZID used (``vtimezone.py``:
  yearly rules as Outlook writes them, which ical.js/Thunderbird read too); an outage
  covering whole local days (an imported holiday) is an all-day event (``VALUE=DATE``);
* ``STATUS``: TENTATIVE for pending, CONFIRMED for confirmed/running/done/scheduled
  outages, CANCELLED for cancelled/rejected/expired/no-show, so clients drop the event;
* no METHOD (plain publication): never REQUEST, which would need ORGANIZER/ATTENDEE.

Events are built from ``EventData``: plain values, so a feed of thousands of events reads
them with one query (no ORM objects, no lazy loads) and a single booking adapts its ORM
object with ``event_data``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import get_locale
from flask_babel import gettext as _
from icalendar import Calendar, Event
from icalendar.prop import vDDDTypes, vDuration, vInt, vText, vUri

from labbook.bookings.models import Reservation
from labbook.feeds.vtimezone import vtimezone

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
# An open-ended (unplanned) outage is shown as lasting this long from ``now``, so it
# always covers the near future without claiming an end. Feeds pass the start of the
# day as ``now``, so the event (and the feed's bytes) change once a day, not per fetch.
OPEN_END_SHOWN = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class EventData:
    """Everything one VEVENT shows. ``label`` heads the summary (the instrument's name,
    or the facility's for a facility-wide closure); ``show_details``: may the calendar's
    reader see who booked and why."""

    id: int
    kind: str
    state: str
    start_at: datetime
    end_at: datetime | None
    sequence: int
    created_at: datetime
    updated_at: datetime
    purpose: str | None
    title: str | None
    instrument_id: int
    label: str
    location: str
    timezone: str
    user_name: str | None
    show_details: bool
    uid: str | None = None
    url: str | None = None


def ical_host() -> str:
    """The host part of UIDs: ``LABBOOK_ICAL_HOST`` or the base URL's host."""
    configured = current_app.config.get("LABBOOK_ICAL_HOST")
    return configured or urlsplit(current_app.config["LABBOOK_BASE_URL"]).hostname or "labbook"


def base_url() -> str:
    return current_app.config["LABBOOK_BASE_URL"].rstrip("/")


def reservation_uid(reservation: Reservation | EventData) -> str:
    return f"reservation-{reservation.id}@{ical_host()}"


def reservation_url(reservation: Reservation | EventData, show_details: bool = True) -> str:
    """The booking's page, or the instrument's for an outage and for a booking the reader
    may not open (a link to a page that answers 404 helps nobody)."""
    if reservation.kind == "booking" and show_details:
        return f"{base_url()}/bookings/{reservation.id}"
    return f"{base_url()}/instruments/{reservation.instrument_id}"


def location_of(facility_name: str, instrument_location: str | None) -> str:
    return ", ".join(p for p in (facility_name, instrument_location) if p)


def event_data(reservation: Reservation, show_details: bool) -> EventData:
    """The ``EventData`` of an ORM reservation (facility name in the current locale)."""
    instrument = reservation.instrument
    facility = instrument.facility
    user = getattr(reservation, "user", None) if reservation.kind == "booking" else None
    return EventData(
        id=reservation.id, kind=reservation.kind, state=reservation.state,
        start_at=reservation.start_at, end_at=reservation.end_at,
        sequence=reservation.sequence, created_at=reservation.created_at,
        updated_at=reservation.updated_at, purpose=reservation.purpose,
        title=reservation.title, instrument_id=reservation.instrument_id,
        label=instrument.name,
        location=location_of(facility.display_name(str(get_locale() or "en")),
                             instrument.location),
        timezone=facility.timezone, user_name=user.name if user is not None else None,
        show_details=show_details,
    )


def new_calendar(name: str, *, refresh: timedelta | None = None) -> Calendar:
    """An empty VCALENDAR with the header every client wants (RFC 7986 NAME and
    REFRESH-INTERVAL, and their older X- spellings for Outlook and Apple)."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("name", name)
    cal.add("x-wr-calname", name)
    if refresh is not None:
        cal.add("refresh-interval", vDuration(refresh), parameters={"VALUE": "DURATION"})
        # An X- property has no known type: without vDuration it would be written as
        # Python's "1:00:00" instead of "PT1H".
        cal.add("x-published-ttl", vDuration(refresh))
    return cal


def _summary(data: EventData) -> str:
    if data.kind == "outage":
        return f"{data.label}: {data.title or _('Unavailable')}"
    if not data.show_details:
        return f"{data.label}: {_('Busy')}"
    purpose = (data.purpose or "").strip()
    return f"{data.label}: {purpose}" if purpose else data.label


def _description(data: EventData, url: str) -> str:
    lines = []
    if data.kind == "booking" and data.show_details:
        if data.user_name:
            lines.append(_("Booked by %(name)s", name=data.user_name))
        if data.purpose:
            lines.append(data.purpose)
    lines.append(url)
    return "\n".join(lines)


def _whole_days(data: EventData, zone: ZoneInfo) -> tuple[date, date] | None:
    """The local days of an outage that covers whole days, else None (timed event)."""
    if data.kind != "outage" or data.end_at is None:
        return None
    start, end = data.start_at.astimezone(zone), data.end_at.astimezone(zone)
    if start.time() == time(0) and end.time() == time(0):
        return start.date(), end.date()
    return None


def build_event(data: EventData, now: datetime) -> Event:
    """The VEVENT for ``data``. Properties are set with their value types directly (no
    type guessing per value): a feed builds thousands of them."""
    zone = _zone(data.timezone)
    url = data.url or reservation_url(data, data.show_details)
    cancelled = STATUS.get(data.state) == "CANCELLED"
    event = Event()
    event["uid"] = vText(data.uid or reservation_uid(data))
    event["dtstamp"] = vDDDTypes(data.updated_at)
    event["created"] = vDDDTypes(data.created_at)
    event["last-modified"] = vDDDTypes(data.updated_at)
    event["sequence"] = vInt(data.sequence)
    days = _whole_days(data, zone)
    if days is not None:
        event["dtstart"], event["dtend"] = vDDDTypes(days[0]), vDDDTypes(days[1])
    else:
        end = data.end_at or max(now, data.start_at) + OPEN_END_SHOWN
        event["dtstart"] = vDDDTypes(data.start_at.astimezone(zone))
        event["dtend"] = vDDDTypes(end.astimezone(zone))
    event["summary"] = vText(_summary(data))
    if data.location:
        event["location"] = vText(data.location)
    event["description"] = vText(_description(data, url))
    event["url"] = vUri(url)
    event["status"] = vText(STATUS.get(data.state, "CONFIRMED"))
    event["transp"] = vText("TRANSPARENT" if cancelled else "OPAQUE")
    return event


def reservation_event(
    reservation: Reservation, *, show_details: bool, now: datetime
) -> Event:
    """The VEVENT for one booking or outage. ``show_details``: may the viewer see who
    booked and why (SPEC section 7: privacy)."""
    return build_event(event_data(reservation, show_details), now)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def add_timezones(cal: Calendar, tzids: Iterable[str], first: date | None = None,
                  last: date | None = None) -> None:
    """Put a VTIMEZONE for each of ``tzids`` first in ``cal``, valid from the year before
    ``first`` to the year after ``last`` (the events' span; default: this year)."""
    this_year = datetime.now(timezone.utc).year
    first_year = (first.year if first else this_year) - 1
    last_year = (last.year if last else this_year) + 1
    zones = [vtimezone(tzid, first_year, last_year) for tzid in sorted(set(tzids))]
    cal.subcomponents[0:0] = zones


def to_bytes(cal: Calendar) -> bytes:
    """Serialize with a VTIMEZONE for every TZID used; CRLF lines folded at 75 octets."""
    missing = cal.get_missing_tzids()
    if missing:
        starts = [e.decoded("dtstart") for e in cal.walk("VEVENT") if "DTSTART" in e]
        days = [s.date() if isinstance(s, datetime) else s for s in starts]
        add_timezones(cal, missing, min(days, default=None), max(days, default=None))
    return cal.to_ical()


def booking_ics(reservation: Reservation, *, now: datetime) -> bytes:
    """A one-event calendar for a download or a mail attachment; its reader is the
    booking's owner or someone allowed to see it, so details are shown."""
    data = event_data(reservation, True)
    cal = new_calendar(_summary(data))
    cal.add_component(build_event(data, now))
    return to_bytes(cal)
