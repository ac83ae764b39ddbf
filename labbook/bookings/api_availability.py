"""What is free when, over the API: an instrument's busy and free intervals, and "find a
slot" across instruments (SPEC section 3, issue 3 item 9). Read-only; who booked and why
only where the caller may see it (``labbook.bookings.availability`` filters)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Response, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user

from labbook.api import ID, bp
from labbook.api.openapi import component, list_of, operation
from labbook.api.schema import MAX_ID, DateTime, Integer, Schema, String
from labbook.auth.guards import get_or_404
from labbook.bookings.availability import MAX_WINDOW, SlotQuery, availability, find_slots
from labbook.db import now_utc
from labbook.errors import ValidationError
from labbook.instruments.models import Instrument

TAGS = ("availability",)
DEFAULT_SLOT_WINDOW = timedelta(days=14)
MAX_SLOT_MINUTES = 24 * 60

AVAILABILITY_QUERY = Schema("AvailabilityQuery", {
    "start": DateTime(required=True, description="window start, ISO 8601 with offset"),
    "end": DateTime(required=True, description="window end (exclusive); at most 62 days "
                                               "after start"),
})
SLOT_QUERY = Schema("SlotQuery", {
    "minutes": Integer(minimum=1, maximum=MAX_SLOT_MINUTES, required=True,
                       description="length of the wanted slot"),
    "field": Integer(minimum=1, maximum=MAX_ID, description="research field id"),
    "category": String(max_length=80, description="exact instrument category"),
    "facility": Integer(minimum=1, maximum=MAX_ID, description="facility id"),
    "start": DateTime(description="search from here; default now"),
    "end": DateTime(description="search until here; default 14 days after start, at most 62"),
    "limit": Integer(minimum=1, maximum=50, default=10, description="at most this many slots"),
})

_TIME = {"type": "string", "format": "date-time"}
_INTERVAL = {"type": "object", "required": ["start", "end"],
             "properties": {"start": _TIME, "end": _TIME}}
BUSY = {
    "type": "object",
    "required": ["kind", "state", "start", "end", "blocked_until"],
    "properties": {
        "kind": {"type": "string", "enum": ["booking", "outage"]},
        "state": {"type": "string"},
        "start": _TIME,
        "end": {"type": ["string", "null"], "format": "date-time",
                "description": "null: an outage whose end is not known yet"},
        "blocked_until": {"type": ["string", "null"], "format": "date-time",
                          "description": "end plus the turnaround buffer"},
        "mine": {"type": "boolean", "description": "bookings: the caller's own"},
        "booking_id": {"type": "integer", "description": "only where the caller may see it"},
        "user": {"type": "string", "description": "only where the caller may see it"},
        "purpose": {"type": "string", "description": "only where the caller may see it"},
        "outage_kind": {"type": "string", "description": "outages only"},
        "title": {"type": ["string", "null"], "description": "outages only"},
    },
}
AVAILABILITY = component("Availability", {
    "type": "object",
    "required": ["busy", "free"],
    "properties": {"busy": {"type": "array", "items": BUSY},
                   "free": {"type": "array", "items": _INTERVAL}},
})
SLOT = component("FreeSlot", {
    "type": "object",
    "required": ["instrument_id", "instrument", "start", "end"],
    "properties": {"instrument_id": {"type": "integer"},
                   "instrument": {"type": "string", "description": "the instrument's name"},
                   "start": _TIME, "end": _TIME},
})


def _check_window(start: datetime, end: datetime) -> None:
    """:raises ValidationError: unless ``start < end`` within ``MAX_WINDOW``."""
    if end <= start:
        message = _("Must be after start.")
    elif end - start > MAX_WINDOW:
        message = _("At most %(n)d days after start.", n=MAX_WINDOW.days)
    else:
        return
    raise ValidationError(_("The request has invalid parameters."), {"end": [message]})


@bp.get(f"/instruments/<{ID}:instrument_id>/availability")
@operation("Busy and free intervals of an instrument", tags=TAGS, query=AVAILABILITY_QUERY,
           response=AVAILABILITY, errors=(404,), description=(
               "Slot holders (bookings, outages) meeting the window, with their blocked end "
               "(end plus buffer), and the free gaps between them. Who booked and why only "
               "for your own bookings, or as the facility's manager."))
def instrument_availability(instrument_id: int) -> Response:
    args = AVAILABILITY_QUERY.parse_query(request.args)
    _check_window(args["start"], args["end"])
    instrument = get_or_404(Instrument, instrument_id, _("No such instrument."))
    start, end = (args[name].astimezone(timezone.utc) for name in ("start", "end"))
    return jsonify(availability(instrument, start, end, current_user._get_current_object()))


def _slot_query(args: dict[str, Any]) -> SlotQuery:
    # In UTC: find_slots orders its answers by their ISO text, which needs one offset.
    start = args["start"].astimezone(timezone.utc) if "start" in args else now_utc()
    end = args["end"].astimezone(timezone.utc) if "end" in args else start + DEFAULT_SLOT_WINDOW
    _check_window(start, end)
    return SlotQuery(minutes=args["minutes"], start=start, end=end, field_id=args.get("field"),
                     category=args.get("category"), facility_id=args.get("facility"),
                     limit=args["limit"])


@bp.get("/slots")
@operation("Find a slot: the earliest free interval on each instrument you may book",
           tags=TAGS, query=SLOT_QUERY, response=list_of(SLOT), description=(
               "Across the instruments matching the filters that you are qualified for, "
               "within their policy (length, lead time, horizon, staffed hours), earliest "
               "first."))
def list_slots() -> Response:
    query = _slot_query(SLOT_QUERY.parse_query(request.args))
    return jsonify({"items": find_slots(current_user._get_current_object(), query)})
