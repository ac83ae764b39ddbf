"""Usage API (routes attach to ``labbook.api.bp``): a facility's sessions of a month with
booked and actual times, and a manager's correction of a session's actual times.

Who: managers of the facility, finance (every facility) and admins read; managers of the
facility and admins correct. Times go out in the facility's zone with their offset.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Response, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user

from labbook.api import ID, bp, json_body
from labbook.api.openapi import component, list_of, operation
from labbook.api.schema import MAX_ID, DateTime, Integer, Invalid, Prop, Schema, String
from labbook.auth.guards import authorize
from labbook.auth.models import User
from labbook.bookings.models import Booking
from labbook.care import usage
from labbook.db import now_utc, run_with_retry
from labbook.errors import NotFound
from labbook.extensions import db
from labbook.instruments.models import Facility

TAGS = ("usage",)


@dataclass(frozen=True, kw_only=True)
class Month(Prop):
    """A calendar month, ``YYYY-MM``."""

    def parse(self, value: Any) -> str:
        if not isinstance(value, str) or usage.parse_month(value) is None:
            raise Invalid(_("Enter a month as YYYY-MM, e.g. 2026-03."))
        return value

    def type_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}


USAGE_QUERY = Schema("UsageQuery", {
    "facility": Integer(minimum=1, maximum=MAX_ID, required=True, description="the facility"),
    "month": Month(description="the month on the facility's wall clock; default: the current"),
})
USAGE_CORRECTION = Schema("UsageCorrection", {
    "checked_in_at": DateTime(required=True, description="actual start"),
    "checked_out_at": DateTime(nullable=True, description=(
        "actual end; required for a finished session, absent or null while it runs")),
    "reason": String(min_length=1, max_length=usage.REASON_MAX, required=True,
                     description="why the times change (kept in the audit log)"),
})
_TIME = {"type": "string", "format": "date-time"}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULL_INT = {"type": ["integer", "null"]}
USAGE = component("UsageRecord", {
    "type": "object",
    "required": ["booking_id"],
    "properties": {
        "booking_id": {"type": "integer"},
        "instrument_id": {"type": "integer"},
        "user_id": {"type": "integer"},
        "team_id": {"type": "integer"},
        "account_id": {"type": "integer"},
        "state": {"type": "string", "enum": list(usage.SESSION_STATES)},
        "booked_start": _TIME,
        "booked_end": _TIME,
        "actual_start": _NULL_TIME,
        "actual_end": {**_NULL_TIME, "description": "null while the session runs"},
        "booked_minutes": {"type": "integer"},
        "actual_minutes": {**_NULL_INT, "description": "null for a no-show or open session"},
        "difference_minutes": {**_NULL_INT, "description": "actual minus booked"},
        "walk_in": {"type": "boolean"},
        "no_show": {"type": "boolean"},
        "overrun": {"type": "boolean", "description": "checked out after the booked end"},
        "open": {"type": "boolean", "description": "still running"},
        "needs_review": {"type": "boolean", "description": "closed by the system"},
    },
})
USAGE_LIST = {**list_of(USAGE)}
USAGE_LIST["required"] = ["items", "facility_id", "month"]
USAGE_LIST["properties"] = {**USAGE_LIST["properties"], "facility_id": {"type": "integer"},
                            "month": {"type": "string"}}


def _at(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat()


def usage_to_dict(row: usage.UsageRow) -> dict[str, Any]:
    b = row.booking
    zone = ZoneInfo(b.instrument.facility.timezone)
    return {
        "booking_id": b.id, "instrument_id": b.instrument_id, "user_id": b.user_id,
        "team_id": b.team_id, "account_id": b.account_id, "state": b.state,
        "booked_start": _at(b.start_at, zone), "booked_end": _at(b.end_at, zone),
        "actual_start": _at(b.checked_in_at, zone), "actual_end": _at(b.checked_out_at, zone),
        "booked_minutes": row.booked_minutes, "actual_minutes": row.actual_minutes,
        "difference_minutes": row.difference, "walk_in": row.walk_in, "no_show": row.no_show,
        "overrun": row.overrun, "open": row.is_open, "needs_review": row.needs_review,
    }


@bp.get("/usage")
@operation("Usage records of a facility in a month", tags=TAGS, query=USAGE_QUERY,
           response=USAGE_LIST, errors=(403, 404), description=(
               "One record per session whose booked start falls in the month (the "
               "facility's wall clock): used sessions and no-shows, earliest first. Managers "
               "of the facility, finance and admins; others 403."))
def list_usage() -> Response:
    args = USAGE_QUERY.parse_query(request.args)
    user = current_user._get_current_object()
    facility = db.session.get(Facility, args["facility"])
    if facility is None:
        raise NotFound(_("No such facility."))
    authorize(user.manages_facility(facility) or user.is_finance,
              _("Only managers of this facility and finance see its usage."))
    month = (usage.parse_month(args.get("month"))
             or usage.current_month(ZoneInfo(facility.timezone), now_utc()))
    rows = usage.usage_rows(facility, month)
    return jsonify({"items": [usage_to_dict(r) for r in rows], "facility_id": facility.id,
                    "month": f"{month:%Y-%m}"})


def _load_session(booking_id: int, user: User) -> Booking:
    """The booking, locked for the write.

    :raises NotFound: unknown, or neither visible to ``user`` nor readable as usage.
    """
    booking = db.session.scalar(
        sa.select(Booking).where(Booking.id == booking_id)
        .with_for_update().execution_options(populate_existing=True))
    if booking is None or not (booking.can_see_details(user) or user.is_finance):
        raise NotFound(_("No such booking."))
    return booking


@bp.patch(f"/usage/<{ID}:booking_id>")
@operation("Correct a session's actual times", tags=TAGS, body=USAGE_CORRECTION,
           response=USAGE, errors=(403, 404, 409), description=(
               "Managers of the facility and admins (the owner and finance get 403, others "
               "404), with a reason; audited as `usage.correct`, and the session no longer "
               "needs review. Refused (422) for times in the future, an end not after the "
               "start or an overlap with another session; 409 `conflict` with `reason` "
               "`period_closed` and `period` when the billing period of the old or the new "
               "times is closed."))
def patch_usage(booking_id: int) -> Response:
    values = USAGE_CORRECTION.parse(json_body())
    user = current_user._get_current_object()

    def unit() -> dict[str, Any]:
        booking = _load_session(booking_id, user)
        usage.correct_times(user, booking, values["checked_in_at"],
                            values.get("checked_out_at"), values["reason"], now_utc())
        db.session.flush()
        return usage_to_dict(usage.UsageRow(booking))

    return jsonify(run_with_retry(unit))
