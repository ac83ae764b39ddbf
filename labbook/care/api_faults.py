"""Fault reports, service log and downtime in the JSON API (issue 7 items 3, 4, 8, 9).

A fault is visible to its reporter, the managers of its instrument's facility and admins;
to anyone else it does not exist (404). Photos are sent through the web form, not JSON.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Response, jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload

from labbook.api import ID, bp, json_body, paginate
from labbook.api.openapi import component, operation, page_of
from labbook.api.schema import (
    MAX_ID,
    PAGE_PROPS,
    Choice,
    Integer,
    Invalid,
    Prop,
    Schema,
    String,
    response_schema,
)
from labbook.auth.guards import get_or_404
from labbook.care import faults, status
from labbook.care.models import FAULT_SEVERITIES, FAULT_STATUSES, FaultReport
from labbook.db import now_utc, run_with_retry
from labbook.errors import NotFound
from labbook.extensions import db
from labbook.instruments.models import Instrument

TAGS = ("faults",)
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


class Month(Prop):
    """``YYYY-MM``."""

    def parse(self, value: Any) -> tuple[int, int]:
        if not isinstance(value, str) or not _MONTH.fullmatch(value):
            raise Invalid(_("Enter a month as YYYY-MM."))
        year, month = int(value[:4]), int(value[5:])
        if not 1900 <= year <= 2999:
            raise Invalid(_("Enter a month as YYYY-MM."))
        return year, month

    def type_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}


def _id(description: str, required: bool = False) -> Integer:
    return Integer(minimum=1, maximum=MAX_ID, required=required, description=description)


FAULT_CREATE = Schema("FaultCreate", {
    "instrument_id": _id("the instrument with the problem", required=True),
    "severity": Choice(choices=FAULT_SEVERITIES, required=True, description=(
        "`down` opens an unplanned outage at once (its bookings are cancelled)")),
    "description": String(min_length=1, max_length=faults.DESCRIPTION_MAX, required=True),
}, read_only=("id", "status", "reporter_id", "outage_id", "created_at", "resolved_at"))
FAULT_UPDATE = Schema("FaultUpdate", {
    "status": Choice(choices=FAULT_STATUSES, description="the new status"),
    "note": String(max_length=faults.NOTE_MAX, description="what was found or done"),
})
FAULT_QUERY = Schema("FaultQuery", {
    "instrument": _id("only faults of this instrument"),
    "facility": _id("only faults in this facility"),
    "status": Choice(choices=FAULT_STATUSES + ("unresolved",), description=(
        "only this status; `unresolved`: open, investigating or waiting_parts")),
    **PAGE_PROPS,
})
LOG_QUERY = Schema("ServiceLogQuery", dict(PAGE_PROPS))
DOWNTIME_QUERY = Schema("DowntimeQuery", {
    "month": Month(description="YYYY-MM in the facility's calendar; default the current month"),
})

_TIME = {"type": "string", "format": "date-time"}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULL_INT = {"type": ["integer", "null"]}
FAULT = component("Fault", response_schema({
    "id": {"type": "integer"},
    "instrument_id": {"type": "integer"},
    "reporter_id": _NULL_INT,
    "severity": {"type": "string", "enum": list(FAULT_SEVERITIES)},
    "status": {"type": "string", "enum": list(FAULT_STATUSES)},
    "description": {"type": "string"},
    "has_photo": {"type": "boolean"},
    "outage_id": {**_NULL_INT, "description": "the unplanned outage a down report opened"},
    "created_at": _TIME,
    "updated_at": _TIME,
    "resolved_at": _NULL_TIME,
    "notes": {"type": "array", "items": {"type": "object", "properties": {
        "at": _TIME, "author_id": _NULL_INT, "status": {"type": ["string", "null"]},
        "note": {"type": "string"}}}},
}))
LOG_ENTRY = component("ServiceLogEntry", response_schema({
    "at": _TIME,
    "end": _NULL_TIME,
    "kind": {"type": "string", "description": (
        "an outage kind (preventive, repair, calibration, closure), `completed`, `fault`, "
        "`fault_note` or `status`")},
    "title": {"type": "string"},
    "detail": {"type": "string"},
    "person": {"type": ["string", "null"], "description": "managers and admins only"},
    "fault_id": _NULL_INT,
    "outage_id": _NULL_INT,
}))
_HOURS = {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"}
DOWNTIME = component("Downtime", response_schema({
    "instrument_id": {"type": "integer"},
    "month": {"type": "string"},
    "planned_hours": _HOURS,
    "unplanned_hours": _HOURS,
    "total_hours": _HOURS,
    "faults_reported": {"type": "integer"},
    "faults_resolved": {"type": "integer"},
    "mean_time_to_repair_hours": {**_HOURS, "type": ["string", "null"]},
}))


def fault_to_dict(fault: FaultReport) -> dict[str, Any]:
    zone = ZoneInfo(fault.instrument.facility.timezone)

    def at(moment: datetime | None) -> str | None:
        return moment.astimezone(zone).isoformat() if moment is not None else None

    return {
        "id": fault.id, "instrument_id": fault.instrument_id, "reporter_id": fault.reporter_id,
        "severity": fault.severity, "status": fault.status, "description": fault.description,
        "has_photo": fault.photo_type is not None, "outage_id": fault.outage_id,
        "created_at": at(fault.created_at), "updated_at": at(fault.updated_at),
        "resolved_at": at(fault.resolved_at),
        "notes": [{"at": at(n.created_at), "author_id": n.author_id, "status": n.status,
                   "note": n.note} for n in fault.notes],
    }


def _visible(fault_id: int) -> FaultReport:
    """:raises NotFound: unknown, or not the caller's to see."""
    fault = db.session.get(FaultReport, fault_id)
    if fault is None or not faults.can_see(current_user, fault):
        raise NotFound(_("No such fault report."))
    return fault


def _created(data: dict[str, Any]) -> Response:
    response = jsonify(data)
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_fault", fault_id=data["id"])
    return response


@bp.post("/faults")
@operation("Report a problem on an instrument", tags=TAGS, body=FAULT_CREATE, response=FAULT,
           status=201, errors=(404,), description=(
               "Any user. A `down` report opens an unplanned repair outage from now "
               "(bookings in it are cancelled, their owners told) and the facility's "
               "managers are notified. Photos are attached through the web form only."))
def create_fault() -> Response:
    values = FAULT_CREATE.parse(json_body())
    user = current_user._get_current_object()

    def unit() -> dict[str, Any]:
        instrument = get_or_404(Instrument, values["instrument_id"], _("No such instrument."))
        fault = faults.report_fault(user, instrument, values["severity"],
                                    values["description"])
        db.session.flush()
        return fault_to_dict(fault)

    return _created(run_with_retry(unit))


@bp.get("/faults")
@operation("Fault reports you may see", tags=TAGS, query=FAULT_QUERY, response=page_of(FAULT),
           description=("Newest first: your own reports, and every report on the facilities "
                        "you manage (admins: all)."))
def list_faults() -> Response:
    args = FAULT_QUERY.parse_query(request.args)
    stmt = faults.visible_faults(current_user._get_current_object())
    if "instrument" in args:
        stmt = stmt.where(FaultReport.instrument_id == args["instrument"])
    if "facility" in args:
        stmt = stmt.where(FaultReport.instrument_id.in_(
            sa.select(Instrument.id).where(Instrument.facility_id == args["facility"])))
    if args.get("status") == "unresolved":
        stmt = stmt.where(FaultReport.status != "resolved")
    elif "status" in args:
        stmt = stmt.where(FaultReport.status == args["status"])
    stmt = stmt.order_by(FaultReport.created_at.desc(), FaultReport.id.desc())
    options = [selectinload(FaultReport.notes),
               selectinload(FaultReport.instrument).selectinload(Instrument.facility)]
    return jsonify(paginate(stmt, args["page"], args["per_page"], fault_to_dict, options))


@bp.get(f"/faults/<{ID}:fault_id>")
@operation("One fault report, with its triage notes", tags=TAGS, response=FAULT, errors=(404,),
           description="The reporter, managers of the facility and admins; others get 404.")
def get_fault(fault_id: int) -> Response:
    return jsonify(fault_to_dict(_visible(fault_id)))


@bp.patch(f"/faults/<{ID}:fault_id>")
@operation("Triage a fault: a new status and/or a note", tags=TAGS, body=FAULT_UPDATE,
           response=FAULT, errors=(403, 404), description=(
               "Managers of the facility and admins (the reporter gets 403, others 404). "
               "`resolved` ends the fault's outage now; the reporter and the owners of "
               "bookings it displaced are told of status changes."))
def patch_fault(fault_id: int) -> Response:
    values = FAULT_UPDATE.parse(json_body())
    user = current_user._get_current_object()

    def unit() -> dict[str, Any]:
        fault = _visible(fault_id)
        faults.triage_fault(user, fault, values.get("status"), values.get("note"))
        db.session.flush()
        return fault_to_dict(fault)

    return jsonify(run_with_retry(unit))


@bp.get(f"/instruments/<{ID}:instrument_id>/service-log")
@operation("An instrument's service log", tags=TAGS, query=LOG_QUERY, response=page_of(LOG_ENTRY),
           errors=(404,), description=(
               "Outages (and their completion), faults and triage notes, status changes, "
               "newest first. Everyone signed in; names of people only for managers of the "
               "facility and admins."))
def get_service_log(instrument_id: int) -> Response:
    args = LOG_QUERY.parse_query(request.args)
    instrument = get_or_404(Instrument, instrument_id, _("No such instrument."))
    entries = status.service_log(instrument, current_user._get_current_object(), now_utc())
    zone = ZoneInfo(instrument.facility.timezone)
    page, per_page = args["page"], args["per_page"]
    items = entries[(page - 1) * per_page:page * per_page]
    return jsonify({"items": [e.to_dict(zone) for e in items], "page": page,
                    "per_page": per_page, "total": len(entries)})


@bp.get(f"/instruments/<{ID}:instrument_id>/downtime")
@operation("An instrument's downtime in a month", tags=TAGS, query=DOWNTIME_QUERY,
           response=DOWNTIME, errors=(404,), description=(
               "Planned (preventive, calibration, closure) and unplanned (repair) outage "
               "hours inside the month of the facility's calendar, up to now, and the mean "
               "time to repair of the faults resolved in it. Everyone signed in."))
def get_downtime(instrument_id: int) -> Response:
    args = DOWNTIME_QUERY.parse_query(request.args)
    instrument = get_or_404(Instrument, instrument_id, _("No such instrument."))
    now = now_utc()
    if "month" in args:
        year, month = args["month"]
    else:
        local = now.astimezone(ZoneInfo(instrument.facility.timezone))
        year, month = local.year, local.month
    return jsonify(status.downtime(instrument, year, month, now))
