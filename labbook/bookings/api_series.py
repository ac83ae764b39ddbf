"""Bookings API, the parts that know about series (issue 3 items 7 and 12): creating a
booking or a recurring series (``POST /bookings`` with ``recurrence``), cancelling one
occurrence, this-and-following or the whole series, and reading a series.

A series is visible to its owner, the managers of its instrument's facility and admins;
to anyone else it does not exist (404). The rules live in ``labbook.bookings.series``;
this module parses, loads, authorizes, calls one service and commits (through
``run_with_retry``, like every write of the bookings API).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, jsonify, url_for
from flask_babel import gettext as _
from flask_login import current_user

from labbook.api import ID, bp, json_body, optional_json_body
from labbook.api.openapi import component, operation
from labbook.api.schema import (
    MAX_ID,
    Boolean,
    Choice,
    DateTime,
    Integer,
    Invalid,
    Prop,
    Schema,
    String,
)
from labbook.auth.models import User
from labbook.bookings import series as series_service
from labbook.bookings.api import (
    BOOKING,
    OUTPUT_ONLY,
    PURPOSE,
    SEQUENCE,
    TAGS,
    _answer,
    _check_sequence,
    _final,
    _load_visible,
    body_optional,
)
from labbook.bookings.api_support import booking_to_dict
from labbook.bookings.series import CANCEL_SCOPES, cancel_in_scope
from labbook.db import run_with_retry
from labbook.bookings.models import Booking, BookingSeries
from labbook.bookings.recurrence import MAX_INTERVAL, MAX_OCCURRENCES
from labbook.bookings.services import create_booking, instrument_for_booking
from labbook.db import now_utc
from labbook.errors import NotFound, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument

RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["freq"],
    "properties": {
        "freq": {"type": "string", "enum": ["daily", "weekly"]},
        "interval": {"type": "integer", "minimum": 1, "maximum": MAX_INTERVAL, "default": 1,
                     "description": "every N days or weeks"},
        "byweekday": {"type": "array", "minItems": 1, "uniqueItems": True,
                      "items": {"type": "integer", "minimum": 0, "maximum": 6},
                      "description": "weekly only; 0 = Monday; must include the first "
                                     "booking's day; default: that day"},
        "count": {"type": "integer", "minimum": 1, "maximum": MAX_OCCURRENCES,
                  "description": "number of occurrences (give count or until)"},
        "until": {"type": "string", "format": "date",
                  "description": "last local date, inclusive (give count or until)"},
    },
}


@dataclass(frozen=True, kw_only=True)
class RecurrenceRule(Prop):
    """A recurrence rule object. Only its shape is checked here; its values are checked by
    ``recurrence.parse_rule`` (it needs the first booking's local date), which reports
    problems as ``recurrence.<name>`` fields."""

    def parse(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise Invalid(_("The repetition rule must be an object."))
        return value

    def type_schema(self) -> dict[str, Any]:
        return dict(RULE_SCHEMA)


BOOKING_CREATE = Schema("BookingCreate", {
    "instrument_id": Integer(minimum=1, maximum=MAX_ID, required=True,
                             description="the instrument to book"),
    "start": DateTime(required=True, description="ISO 8601 with offset, on the slot grid"),
    "end": DateTime(required=True, description="ISO 8601 with offset; exclusive"),
    "purpose": PURPOSE,
    "account_id": Integer(minimum=1, maximum=MAX_ID, nullable=True, description=(
        "the account to charge; default: the default account of your (only) team")),
    "assisted": Boolean(default=False, description="staff operate the instrument for you"),
    "recurrence": RecurrenceRule(description=(
        "book a series: `start`/`end` is the first occurrence; the others keep its local "
        "start time and length in the facility's zone")),
    "mode": Choice(choices=series_service.MODES, default="all_or_nothing", description=(
        "with `recurrence` only: book nothing unless every occurrence fits, or book what "
        "fits")),
}, read_only=OUTPUT_ONLY)
BOOKING_CANCEL = Schema("BookingCancel", {
    "reason": String(max_length=500, description="why (shown to the owner)"),
    "sequence": SEQUENCE,
    "scope": Choice(choices=CANCEL_SCOPES, default="occurrence", description=(
        "for a booking in a series: this one, this and the later ones, or every upcoming "
        "one")),
})

_FAILED = {
    "type": "object",
    "required": ["index", "local_start", "start", "end", "outcome", "rule", "message"],
    "properties": {
        "index": {"type": "integer", "description": "0 = the first occurrence"},
        "local_start": {"type": "string", "description": "wall-clock start, facility's zone"},
        "start": {"type": ["string", "null"], "format": "date-time"},
        "end": {"type": ["string", "null"], "format": "date-time"},
        "outcome": {"type": "string", "enum": ["failed"]},
        "rule": {"type": "string", "description": "the refusing rule (`overlap`: taken)"},
        "message": {"type": "string"},
        "status": {"type": "integer"},
        "conflicts": {"type": "array", "items": {"type": "object"}},
        "alternatives": {"type": "array", "items": {"type": "object"}},
    },
}
SERIES_CREATED = component("SeriesCreated", {
    "type": "object",
    "required": ["series_id", "mode", "booked", "failed"],
    "properties": {
        "series_id": {"type": "integer"},
        "mode": {"type": "string", "enum": list(series_service.MODES)},
        "booked": {"type": "array", "items": BOOKING},
        "failed": {"type": "array", "items": _FAILED,
                   "description": "`fit` mode: the occurrences that were not booked, and why"},
    },
})
CANCELLED = component("BookingsCancelled", {
    "type": "object",
    "required": ["cancelled"],
    "properties": {"cancelled": {"type": "array", "items": BOOKING}},
})
SERIES = component("BookingSeries", {
    "type": "object",
    "required": ["id", "instrument_id", "user_id", "rule", "timezone", "created_at",
                 "bookings"],
    "properties": {
        "id": {"type": "integer"},
        "instrument_id": {"type": "integer"},
        "user_id": {"type": "integer"},
        "rule": RULE_SCHEMA,
        "timezone": {"type": "string", "description": "the zone the rule is expanded in"},
        "created_at": {"type": "string", "format": "date-time"},
        "bookings": {"type": "array", "items": BOOKING,
                     "description": "every occurrence, whatever its state, by start"},
    },
})
LOCATION = {"Location": {"schema": {"type": "string"},
                         "description": "URL of the booking, or of the series"}}


def _local(value: str | None, zone: ZoneInfo) -> str | None:
    return None if value is None else datetime.fromisoformat(value).astimezone(zone).isoformat()


def _series_answer(result: series_service.SeriesResult, zone: ZoneInfo) -> dict[str, Any]:
    db.session.flush()
    failed = [{**item, "start": _local(item["start"], zone), "end": _local(item["end"], zone)}
              for item in result.failed]
    return {"series_id": result.series_id, "mode": result.mode,
            "booked": [booking_to_dict(b) for b in result.bookings], "failed": failed}


def _create(user: User, values: dict[str, Any]) -> dict[str, Any]:
    """Book one booking, or a series when ``recurrence`` is given (then the answer is the
    series' result)."""
    instrument = instrument_for_booking(values["instrument_id"], user)
    options = dict(purpose=values.get("purpose"), account_id=values.get("account_id"),
                   assisted=values.get("assisted", False))
    if "recurrence" not in values:
        return _final(create_booking(user, instrument, values["start"], values["end"],
                                     **options))
    result = series_service.create_series(
        user, instrument, values["start"], values["end"], values["recurrence"],
        mode=values.get("mode", "all_or_nothing"), **options)
    return _series_answer(result, ZoneInfo(instrument.facility.timezone))


@bp.post("/bookings")
@operation(
    "Book an instrument, once or as a recurring series", tags=TAGS, body=BOOKING_CREATE,
    response={"oneOf": [BOOKING, SERIES_CREATED]}, status=201, errors=(403, 404, 409),
    headers=LOCATION, description=(
        "Checks the instrument's booking policy (422 `validation` with `rule` naming the "
        "broken rule and `fields`), the caller's qualification (403 `forbidden` with `rule`) "
        "and the time (409 `conflict` with `conflicts` and up to three `alternatives` of the "
        "same length). The booking is `pending` when the instrument requires approval, else "
        "`confirmed`. 404: unknown instrument.\n\n"
        "With `recurrence` every occurrence is checked the same way and the answer is a "
        "`SeriesCreated`. `mode` `all_or_nothing` (default): when any occurrence cannot be "
        "booked nothing is written and the answer is 409 `conflict` (every failure a clash) "
        "or 422 `validation`, with `occurrences` (each `bookable` or `failed` with `rule` and "
        "`message`) and `failed`. `fit`: what fits is booked and `failed` lists the rest; "
        "when nothing fits, the same error as above. A malformed rule: 422 with fields "
        "`recurrence.<name>`. `mode` without `recurrence`: 422."))
def post_booking() -> Response:
    """:raises NotFound: unknown instrument. :raises ValidationError, NotAllowed,
    BookingConflict, SeriesNotBooked: refused by the rules (nothing is written)."""
    values = BOOKING_CREATE.parse(json_body())
    if "mode" in values and "recurrence" not in values:
        raise ValidationError(_("The request has invalid values."),
                              {"mode": [_("Only for a recurring booking (with recurrence).")]})
    data = run_with_retry(lambda: _create(current_user._get_current_object(), values))
    if "booked" not in data:
        return _answer(data, 201)
    response = jsonify(data)
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_series", series_id=data["series_id"])
    return response


def _cancel_scoped(user: User, booking: Booking, values: dict[str, Any]) -> dict[str, Any]:
    """Cancel ``booking`` alone (answer: the booking, as before series existed) or with the
    rest of its series (answer: ``{"cancelled": [...]}``).

    :raises ValidationError: a series scope for a booking outside any series.
    """
    scope = values.get("scope", "occurrence")
    cancelled = cancel_in_scope(user, booking, scope, values.get("reason"), now_utc())
    if scope == "occurrence":
        return _final(booking)
    db.session.flush()
    return {"cancelled": [booking_to_dict(b) for b in cancelled]}


@bp.post(f"/bookings/<{ID}:booking_id>/cancel")
@body_optional
@operation(
    "Cancel a booking, or the rest of its series", tags=TAGS, body=BOOKING_CANCEL,
    response={"oneOf": [BOOKING, CANCELLED]}, errors=(403, 404, 409), description=(
        "The owner until the start (inside the notice period it is flagged `late_cancel`), "
        "managers of the facility always. The body is optional. `scope` `occurrence` "
        "(default) cancels this booking and answers with it, as before series existed. "
        "For a booking in a series, `following` also cancels the later upcoming occurrences "
        "and `series` every upcoming one (started and past ones stay); both answer "
        "`{\"cancelled\": [...]}` with the bookings cancelled now (none when run twice). "
        "Those scopes on a booking outside a series: 422 with field `scope`."))
def cancel(booking_id: int) -> Response:
    values = BOOKING_CANCEL.parse(optional_json_body())
    user = current_user._get_current_object()

    def unit() -> dict[str, Any]:
        booking = _load_visible(booking_id, user, for_update=True)
        _check_sequence(booking, values)
        return _cancel_scoped(user, booking, values)

    return _answer(run_with_retry(unit))


def visible_series(series_id: int, user: User) -> BookingSeries:
    """The series, if ``user`` owns it, manages its facility or is an admin.

    :raises NotFound: unknown, or not visible to ``user``.
    """
    series = db.session.get(BookingSeries, series_id)
    if series is not None and series.user_id != user.id:
        instrument = db.session.get(Instrument, series.instrument_id)
        if instrument is None or not user.manages_facility(instrument.facility_id):
            series = None
    if series is None:
        raise NotFound(_("No such series."))
    return series


def series_to_dict(series: BookingSeries) -> dict[str, Any]:
    zone = ZoneInfo(series.timezone)
    return {
        "id": series.id,
        "instrument_id": series.instrument_id,
        "user_id": series.user_id,
        "rule": series.rule,
        "timezone": series.timezone,
        "created_at": series.created_at.astimezone(zone).isoformat(),
        "bookings": [booking_to_dict(b) for b in series.bookings],
    }


@bp.get(f"/series/<{ID}:series_id>")
@operation("A recurring series and its bookings", tags=TAGS, response=SERIES, errors=(404,),
           description="The owner, managers of its facility and admins; others get 404.")
def get_series(series_id: int) -> Response:
    return jsonify(series_to_dict(visible_series(series_id, current_user._get_current_object())))
