"""Bookings API (SPEC section 8, issue 3 item 12): create, list, read, change, and move
bookings through their states. Creating (once or as a series) and cancelling (one
occurrence or the rest of a series) are in ``api_series.py``.

Views parse, load, authorize, call one service and commit; the rules live in
``labbook.bookings.services``. A booking is visible to its owner, the managers of its
instrument's facility and admins; to anyone else it does not exist (404), so ids reveal
nothing. Times go out in the facility's zone, with their offset.

Writes run through ``run_with_retry`` (labbook/db.py): on PostgreSQL a
transaction can lose a deadlock or serialization race although nothing is wrong with the
request; the whole unit (load, check, write, commit) then runs again on fresh data.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Response, jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload

from labbook.api import ID, bp, check_window, json_body, optional_json_body, paginate
from labbook.api.openapi import component, operation, page_of
from labbook.api.schema import (
    MAX_ID,
    PAGE_PROPS,
    Boolean,
    ChoiceList,
    DateTime,
    Integer,
    Schema,
    String,
    response_schema,
)
from labbook.auth.guards import authorize
from labbook.auth.models import User
from labbook.bookings.api_support import booking_to_dict
from labbook.bookings.visibility import bookings_visible_to
from labbook.db import run_with_retry
from labbook.bookings.models import Booking
from labbook.bookings.models.reservations import BOOKING_STATES
from labbook.bookings.services import approve_booking, reject_booking, reschedule_booking
from labbook.bookings.usage import change_purpose, check_in, check_out
from labbook.errors import Conflict, NotFound
from labbook.extensions import db
from labbook.instruments.models import Instrument

F = TypeVar("F", bound=Callable[..., Any])
TAGS = ("bookings",)


def _id(description: str = "", required: bool = False) -> Integer:
    return Integer(minimum=1, maximum=MAX_ID, required=required, description=description)


SEQUENCE = Integer(minimum=0, maximum=MAX_ID, description=(
    "the booking's `sequence` as you last read it: if the booking has changed since, "
    "the request is refused with 409 instead of acting on a stale view"))
PURPOSE = String(max_length=500, description="what the time is for")
OUTPUT_ONLY = ("id", "user_id", "team_id", "state", "series_id", "sequence", "late_cancel",
               "created_at", "updated_at", "state_reason", "checked_in_at", "checked_out_at")
BOOKING_UPDATE = Schema("BookingUpdate", {
    "start": DateTime(description="new start (a running booking keeps its start)"),
    "end": DateTime(description="new end"),
    "purpose": PURPOSE,
    "sequence": SEQUENCE,
}, read_only=tuple(n for n in OUTPUT_ONLY if n != "sequence") + (
    "instrument_id", "account_id", "assisted"))
BOOKING_REJECT = Schema("BookingReject", {
    "reason": String(min_length=1, max_length=500, required=True,
                     description="why (shown to the owner)"),
    "sequence": SEQUENCE,
})
BOOKING_ACTION = Schema("BookingAction", {"sequence": SEQUENCE})
BOOKING_QUERY = Schema("BookingQuery", {
    "instrument": _id("only bookings of this instrument"),
    "facility": _id("only bookings in this facility (managers: everyone's bookings there)"),
    "state": ChoiceList(choices=BOOKING_STATES, description=(
        "only these states; repeat the parameter or give a comma-separated list")),
    "from": DateTime(description="only bookings ending after this"),
    "to": DateTime(description="only bookings starting before this"),
    "mine": Boolean(description=(
        "only your own bookings; default true, or false when `facility` is given")),
    **PAGE_PROPS,
})

_TIME = {"type": "string", "format": "date-time"}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
BOOKING = component("Booking", response_schema({
    "id": {"type": "integer"},
    "instrument_id": {"type": "integer"},
    "user_id": {"type": "integer"},
    "team_id": {"type": "integer"},
    "account_id": {"type": "integer"},
    "start": {**_TIME, "description": "in the facility's zone, with its offset"},
    "end": {**_TIME, "description": "exclusive"},
    "state": {"type": "string", "enum": list(BOOKING_STATES)},
    "purpose": {"type": "string"},
    "assisted": {"type": "boolean"},
    "series_id": {"type": ["integer", "null"]},
    "sequence": {"type": "integer", "description": "increases on every change"},
    "late_cancel": {"type": "boolean", "description": "cancelled inside the notice period"},
    "created_at": _TIME,
    "updated_at": _TIME,
    "state_reason": {"type": ["string", "null"]},
    "checked_in_at": _NULL_TIME,
    "checked_out_at": _NULL_TIME,
}))


def body_optional(view: F) -> F:
    """Document the request body of an ``@operation`` view as optional (apply it above
    ``@operation``): actions whose properties are all optional accept no body at all."""
    view._openapi["requestBody"]["required"] = False  # type: ignore[attr-defined]
    return view


def _load_visible(booking_id: int, user: User, for_update: bool = False) -> Booking:
    """The booking, if ``user`` may see it; locked against concurrent changes for a write.

    :raises NotFound: when it does not exist or the user may not see it.
    """
    stmt = sa.select(Booking).where(Booking.id == booking_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    booking = db.session.scalar(stmt)
    if booking is None or not booking.can_see_details(user):
        raise NotFound(_("No such booking."))
    return booking


def _check_sequence(booking: Booking, values: dict[str, Any]) -> None:
    """:raises Conflict: when the caller acts on an older version of the booking."""
    if "sequence" in values and values["sequence"] != booking.sequence:
        raise Conflict(_("The booking has changed since you read it; read it again."),
                       sequence=booking.sequence)


def _final(booking: Booking) -> dict[str, Any]:
    """The booking's answer, taken before the commit: flushed first, so it is exactly what
    is stored, and read while loaded (after a commit every attribute would be re-read)."""
    db.session.flush()
    return booking_to_dict(booking)


def _answer(data: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(data)
    response.status_code = status
    if status == 201:
        response.headers["Location"] = url_for("api.get_booking", booking_id=data["id"])
    return response


# -- routes -------------------------------------------------------------------------------------


def _filtered(user: User, args: dict[str, Any]) -> sa.Select:
    """The bookings list query for ``args``.

    :raises Forbidden: for another facility's bookings. :raises ValidationError: bad window.
    """
    stmt = bookings_visible_to(user)
    facility = args.get("facility")
    if args.get("mine", facility is None):
        stmt = stmt.where(Booking.user_id == user.id)
    elif facility is not None:
        authorize(user.manages_facility(facility),
                  _("Only managers of this facility may list its bookings."))
    if facility is not None:
        stmt = stmt.where(Booking.instrument_id.in_(
            sa.select(Instrument.id).where(Instrument.facility_id == facility)))
    if "instrument" in args:
        stmt = stmt.where(Booking.instrument_id == args["instrument"])
    if "state" in args:
        stmt = stmt.where(Booking.state.in_(args["state"]))
    check_window(args.get("from"), args.get("to"))
    if "from" in args:
        stmt = stmt.where(Booking.end_at > args["from"])
    if "to" in args:
        stmt = stmt.where(Booking.start_at < args["to"])
    return stmt.order_by(Booking.start_at, Booking.id)


@bp.get("/bookings")
@operation("Bookings: your own, or those of a facility you manage", tags=TAGS,
           query=BOOKING_QUERY, response=page_of(BOOKING), errors=(403,), description=(
               "Earliest first. Everyone sees their own bookings; with `mine=false` team "
               "leads also see their teams' bookings, managers those of the facilities they "
               "manage (or `facility=<id>`), admins every booking."))
def list_bookings() -> Response:
    args = BOOKING_QUERY.parse_query(request.args)
    stmt = _filtered(current_user._get_current_object(), args)
    options = [selectinload(Booking.instrument).selectinload(Instrument.facility)]
    return jsonify(paginate(stmt, args["page"], args["per_page"], booking_to_dict, options))


@bp.get(f"/bookings/<{ID}:booking_id>")
@operation("One booking", tags=TAGS, response=BOOKING, errors=(404,),
           description="The owner, managers of its facility and admins; others get 404.")
def get_booking(booking_id: int) -> Response:
    return _answer(booking_to_dict(_load_visible(booking_id, current_user._get_current_object())))


def _apply_changes(user: User, booking: Booking, values: dict[str, Any]) -> None:
    start = values.get("start", booking.start_at)
    end = values.get("end", booking.end_at)
    if (start, end) != (booking.start_at, booking.end_at):
        reschedule_booking(user, booking, start, end)
    if "purpose" in values:
        change_purpose(user, booking, values["purpose"])


def _act(booking_id: int, values: dict[str, Any],
         action: Callable[[User, Booking], Any]) -> Response:
    """Load the booking for a write (404), check ``sequence`` (409), apply ``action``
    (which raises the service's refusals) and commit, retrying lost races."""
    user = current_user._get_current_object()

    def unit() -> dict[str, Any]:
        booking = _load_visible(booking_id, user, for_update=True)
        _check_sequence(booking, values)
        action(user, booking)
        return _final(booking)

    return _answer(run_with_retry(unit))


@bp.patch(f"/bookings/<{ID}:booking_id>")
@operation("Move, extend, shorten or re-describe a booking", tags=TAGS, body=BOOKING_UPDATE,
           response=BOOKING, errors=(403, 404, 409), description=(
               "Give `start` and/or `end` (the other keeps its value) and/or `purpose`. The "
               "owner may change an upcoming booking within the policy (a change to a booking "
               "that needs approval makes it `pending` again), managers always; the time must "
               "be free (409 with `conflicts` and `alternatives`)."))
def patch_booking(booking_id: int) -> Response:
    values = BOOKING_UPDATE.parse(json_body())
    return _act(booking_id, values, lambda user, booking: _apply_changes(user, booking, values))


@bp.post(f"/bookings/<{ID}:booking_id>/approve")
@body_optional
@operation("Approve a pending booking", tags=TAGS, body=BOOKING_ACTION, response=BOOKING,
           errors=(403, 404, 409), description=(
               "Managers of the facility and admins. The body is optional. A booking whose "
               "start has passed cannot be approved (422, rule `expired`)."))
def approve(booking_id: int) -> Response:
    values = BOOKING_ACTION.parse(optional_json_body())
    return _act(booking_id, values, approve_booking)


@bp.post(f"/bookings/<{ID}:booking_id>/reject")
@operation("Reject a pending booking, saying why", tags=TAGS, body=BOOKING_REJECT,
           response=BOOKING, errors=(403, 404, 409),
           description="Managers of the facility and admins.")
def reject(booking_id: int) -> Response:
    values = BOOKING_REJECT.parse(optional_json_body())
    return _act(booking_id, values,
                lambda user, booking: reject_booking(user, booking, values["reason"]))


@bp.post(f"/bookings/<{ID}:booking_id>/check-in")
@body_optional
@operation("Start using a confirmed booking", tags=TAGS, body=BOOKING_ACTION, response=BOOKING,
           errors=(403, 404, 409), description=(
               "The owner or a manager, from a few minutes before the start until the end "
               "(422, rule `check_in_window`, otherwise). The body is optional."))
def post_check_in(booking_id: int) -> Response:
    values = BOOKING_ACTION.parse(optional_json_body())
    return _act(booking_id, values, check_in)


@bp.post(f"/bookings/<{ID}:booking_id>/check-out")
@body_optional
@operation("Finish a running booking", tags=TAGS, body=BOOKING_ACTION, response=BOOKING,
           errors=(403, 404, 409),
           description="The owner or a manager; frees the rest of the slot. Body optional.")
def post_check_out(booking_id: int) -> Response:
    values = BOOKING_ACTION.parse(optional_json_body())
    return _act(booking_id, values, check_out)


from labbook.bookings import api_series  # noqa: E402,F401  (routes attach to bp)
