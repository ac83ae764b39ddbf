"""Outages API (issue 7 item 8): schedule an outage on an instrument or a whole facility
(``?dry_run=true`` lists the bookings it would cancel and writes nothing), list outages
(every signed-in user: titles are not secret), end or cancel one. Writing is for managers
of the facility and admins. The rules live in ``labbook.bookings.outages``."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Response, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user

from labbook.api import ID, bp, check_window, json_body, paginate
from labbook.api.openapi import component, operation, page_of
from labbook.api.schema import (
    MAX_ID,
    PAGE_PROPS,
    Boolean,
    Choice,
    ChoiceList,
    DateTime,
    Integer,
    Schema,
    String,
    response_schema,
)
from labbook.auth.guards import authorize
from labbook.auth.models import User
from labbook.bookings import outages
from labbook.bookings.models import Booking, Outage
from labbook.bookings.models.reservations import OUTAGE_STATES
from labbook.db import now_utc
from labbook.errors import NotFound, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument

TAGS = ("outages",)


class EndTime(DateTime):
    """An ISO 8601 time with offset, or the word ``now``."""

    def parse(self, value: Any) -> datetime | str:
        if value == "now":
            return "now"
        return super().parse(value)

    def type_schema(self) -> dict[str, Any]:
        return {"type": "string", "description": "ISO 8601 with offset, or \"now\""}


def _id(description: str) -> Integer:
    return Integer(minimum=1, maximum=MAX_ID, description=description)


OUTAGE_CREATE = Schema("OutageCreate", {
    "instrument_id": _id("the instrument (give this or facility_id)"),
    "facility_id": _id("every instrument of this facility (give this or instrument_id)"),
    "kind": Choice(choices=outages.OUTAGE_KINDS, required=True),
    "start": DateTime(required=True),
    "end": DateTime(nullable=True, description="null: unplanned, until further notice"),
    "title": String(max_length=outages.TITLE_MAX),
})
OUTAGE_CREATE_QUERY = Schema("OutageCreateQuery", {
    "dry_run": Boolean(default=False, description="only list the bookings it would cancel"),
})
OUTAGE_PATCH = Schema("OutagePatch", {
    "end": EndTime(description="set the end (e.g. \"now\" when an unplanned outage is fixed)"),
    "state": Choice(choices=("cancelled",), description="cancel the outage"),
})
OUTAGE_QUERY = Schema("OutageQuery", {
    "instrument": _id("only this instrument"),
    "facility": _id("only this facility's instruments"),
    "state": ChoiceList(choices=OUTAGE_STATES, description="default: scheduled"),
    "from": DateTime(description="only outages ending after this (default: now)"),
    "to": DateTime(description="only outages starting before this"),
    **PAGE_PROPS,
})

_TIME = {"type": "string", "format": "date-time"}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
OUTAGE = component("Outage", response_schema({
    "id": {"type": "integer"},
    "instrument_id": {"type": "integer"},
    "facility_id": {"type": "integer"},
    "kind": {"type": "string", "enum": list(outages.OUTAGE_KINDS)},
    "title": {"type": ["string", "null"]},
    "start": _TIME,
    "end": {**_NULL_TIME, "description": "null: until further notice"},
    "state": {"type": "string", "enum": list(OUTAGE_STATES)},
    "plan_id": {"type": ["integer", "null"]},
    "completed_at": _NULL_TIME,
    "sequence": {"type": "integer"},
}))
AFFECTED = component("AffectedBooking", {
    "type": "object",
    "required": ["id", "instrument_id", "start", "end", "state"],
    "properties": {
        "id": {"type": "integer"}, "instrument_id": {"type": "integer"},
        "start": _TIME, "end": _TIME, "state": {"type": "string"},
        "user_id": {"type": "integer", "description": "only where the caller may see it"},
        "user": {"type": "string", "description": "only where the caller may see it"},
    },
})
SCHEDULED = component("OutagesScheduled", response_schema({
    "dry_run": {"type": "boolean"},
    "outages": {"type": "array", "items": OUTAGE, "description": "empty on a dry run"},
    "affected_bookings": {"type": "array", "items": AFFECTED},
}))


def _at(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat()


def outage_to_dict(outage: Outage) -> dict[str, Any]:
    zone = ZoneInfo(outage.instrument.facility.timezone)
    return {
        "id": outage.id, "instrument_id": outage.instrument_id,
        "facility_id": outage.instrument.facility_id, "kind": outage.outage_kind,
        "title": outage.title, "start": _at(outage.start_at, zone),
        "end": _at(outage.end_at, zone), "state": outage.state, "plan_id": outage.plan_id,
        "completed_at": _at(outage.completed_at, zone), "sequence": outage.sequence,
    }


def affected_to_dict(booking: Booking, viewer: User) -> dict[str, Any]:
    zone = ZoneInfo(booking.instrument.facility.timezone)
    item: dict[str, Any] = {
        "id": booking.id, "instrument_id": booking.instrument_id,
        "start": _at(booking.start_at, zone), "end": _at(booking.end_at, zone),
        "state": booking.state,
    }
    if booking.can_see_details(viewer):
        item.update(user_id=booking.user_id, user=booking.user.name)
    return item


def _targets(values: dict[str, Any]) -> list[Instrument]:
    """:raises ValidationError: neither or both given. :raises NotFound: unknown."""
    if ("instrument_id" in values) == ("facility_id" in values):
        message = _("Give either instrument_id or facility_id.")
        raise ValidationError(_("The request has invalid values."),
                              {"instrument_id": [message], "facility_id": [message]})
    if "instrument_id" in values:
        instrument = db.session.get(Instrument, values["instrument_id"])
        if instrument is None:
            raise NotFound(_("No such instrument."))
        return [instrument]
    facility = db.session.get(Facility, values["facility_id"])
    if facility is None:
        raise NotFound(_("No such facility."))
    authorize(current_user.manages_facility(facility.id),
              _("Only managers of this facility may schedule outages."))
    return sorted((i for i in facility.instruments if i.status != "retired"), key=lambda i: i.id)


@bp.post("/outages")
@operation("Schedule an outage (or preview it)", tags=TAGS, body=OUTAGE_CREATE,
           query=OUTAGE_CREATE_QUERY, response=SCHEDULED, status=201, errors=(403, 404, 409),
           description=(
               "Managers of the facility and admins. On one instrument (`instrument_id`) or "
               "on every instrument of a facility (`facility_id`). Bookings in the window are "
               "cancelled (reason `instrument unavailable`, never charged) and their owners "
               "notified; `affected_bookings` lists them. With `?dry_run=true` nothing is "
               "written (200). Another outage or a running session in the way: 409."))
def create_outage() -> Response:
    args = OUTAGE_CREATE_QUERY.parse_query(request.args)
    values = OUTAGE_CREATE.parse(json_body())
    instruments = _targets(values)
    user, now = current_user._get_current_object(), now_utc()
    results = outages.schedule_facility_outage(
        user, instruments, values["start"], values.get("end"), values["kind"],
        values.get("title"), now=now, dry_run=args["dry_run"])
    body = {
        "dry_run": args["dry_run"],
        "outages": [outage_to_dict(r.outage) for r in results if r.outage is not None],
        "affected_bookings": [affected_to_dict(b, user) for r in results for b in r.affected],
    }
    if args["dry_run"]:
        db.session.rollback()
        return jsonify(body)
    db.session.commit()
    response = jsonify(body)
    response.status_code = 201
    return response


def _filtered(args: dict[str, Any]) -> sa.Select:
    """:raises ValidationError: ``to`` not after ``from``."""
    start = args.get("from", now_utc())
    check_window(start, args.get("to"))
    stmt = sa.select(Outage).where(Outage.state.in_(args.get("state", ["scheduled"])),
                                   sa.or_(Outage.end_at.is_(None), Outage.end_at > start))
    if "to" in args:
        stmt = stmt.where(Outage.start_at < args["to"])
    if "instrument" in args:
        stmt = stmt.where(Outage.instrument_id == args["instrument"])
    if "facility" in args:
        stmt = stmt.where(Outage.instrument_id.in_(
            sa.select(Instrument.id).where(Instrument.facility_id == args["facility"])))
    return stmt.order_by(Outage.start_at, Outage.id)


@bp.get("/outages")
@operation("Outages: current and upcoming by default", tags=TAGS, query=OUTAGE_QUERY,
           response=page_of(OUTAGE), description=(
               "Every signed-in user. Earliest first; by default scheduled outages that have "
               "not ended."))
def list_outages() -> Response:
    args = OUTAGE_QUERY.parse_query(request.args)
    return jsonify(paginate(_filtered(args), args["page"], args["per_page"], outage_to_dict))


@bp.get(f"/outages/<{ID}:outage_id>")
@operation("One outage", tags=TAGS, response=OUTAGE, errors=(404,),
           description="Every signed-in user.")
def get_outage(outage_id: int) -> Response:
    outage = db.session.get(Outage, outage_id)
    if outage is None:
        raise NotFound(_("No such outage."))
    return jsonify(outage_to_dict(outage))


def _end(user: User, outage: Outage, end: datetime | str, now: datetime) -> None:
    """:raises ValidationError: "now" for an outage that has already ended."""
    if end == "now":
        if outage.end_at is not None and outage.end_at <= now:
            raise ValidationError(_("The request has invalid values."),
                                  {"end": [_("The outage has already ended.")]})
        end = now
    assert isinstance(end, datetime)
    outages.end_outage(user, outage, end, now=now)


@bp.patch(f"/outages/<{ID}:outage_id>")
@operation("End or cancel an outage", tags=TAGS, body=OUTAGE_PATCH, response=OUTAGE,
           errors=(403, 404, 409), description=(
               "Managers of the facility and admins. `{\"end\": \"now\"}` ends an unplanned "
               "outage when the instrument is fixed; any `end` after the start moves its end "
               "(409 if that runs into another outage). `{\"state\": \"cancelled\"}` gives "
               "the window back."))
def patch_outage(outage_id: int) -> Response:
    values = OUTAGE_PATCH.parse(json_body())
    outage = db.session.get(Outage, outage_id)
    if outage is None:
        raise NotFound(_("No such outage."))
    user, now = current_user._get_current_object(), now_utc()
    if not values:
        raise ValidationError(_("The request has invalid values."),
                              {"end": [_("Give end or state.")]})
    if "end" in values:
        _end(user, outage, values["end"], now)
    if values.get("state") == "cancelled":
        outages.cancel_outage(user, outage, now=now)
    db.session.flush()
    body = outage_to_dict(outage)
    db.session.commit()
    return jsonify(body)
