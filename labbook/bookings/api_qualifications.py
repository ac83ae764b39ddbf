"""Qualifications over the API (issue 3 item 8): managers grant and revoke them, everyone
lists what they may see and asks to be qualified.

Managers grant on instruments of the facilities they manage; a category-wide
qualification spans facilities, so only admins grant it (``labbook.bookings.
qualifications`` holds these rules). A qualification is visible to its holder, the
managers concerned and admins; to anyone else it does not exist (404).
"""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user

from labbook.api import ID, bp, json_body, paginate
from labbook.api.openapi import component, operation, page_of
from labbook.api.schema import (
    MAX_ID,
    PAGE_PROPS,
    Choice,
    DateTime,
    Integer,
    Schema,
    String,
    response_schema,
)
from labbook.auth.guards import authorize, get_or_404
from labbook.auth.models import User
from labbook.bookings.visibility import may_see_qualification, qualifications_visible_to
from labbook.db import run_with_retry
from labbook.bookings.models import Qualification, QualificationRequest
from labbook.bookings.qualifications import (
    grant_qualification,
    request_qualification,
    revoke_qualification,
)
from labbook.db import now_utc
from labbook.errors import NotFound, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument

TAGS = ("qualifications",)
LEVELS = ("basic", "advanced")

QUALIFICATION_CREATE = Schema("QualificationCreate", {
    "user_id": Integer(minimum=1, maximum=MAX_ID, required=True, description="who is qualified"),
    "instrument_id": Integer(minimum=1, maximum=MAX_ID, nullable=True, description=(
        "the instrument; give this or `category`")),
    "category": String(min_length=1, max_length=80, nullable=True, description=(
        "every instrument of this category (admins only); give this or `instrument_id`")),
    "level": Choice(choices=LEVELS, default="basic",
                    description="advanced may also book outside staffed hours"),
    "expires_at": DateTime(nullable=True, description="ISO 8601 with offset; null: never"),
    "note": String(max_length=500, description="e.g. the training given"),
}, read_only=("id", "granted_at", "granted_by_id", "revoked_at", "live"))
QUALIFICATION_QUERY = Schema("QualificationQuery", {
    "user": Integer(minimum=1, maximum=MAX_ID, description="only this user's"),
    "instrument": Integer(minimum=1, maximum=MAX_ID,
                          description="only those naming this instrument"),
    **PAGE_PROPS,
})
REQUEST_CREATE = Schema("QualificationRequestCreate", {
    "instrument_id": Integer(minimum=1, maximum=MAX_ID, required=True),
    "message": String(max_length=1000, description="e.g. what you want to measure"),
}, read_only=("id", "user_id", "state", "created_at"))

_TIME = {"type": "string", "format": "date-time"}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
QUALIFICATION = component("Qualification", response_schema({
    "id": {"type": "integer"},
    "user_id": {"type": "integer"},
    "instrument_id": {"type": ["integer", "null"]},
    "category": {"type": ["string", "null"]},
    "level": {"type": "string", "enum": list(LEVELS)},
    "granted_at": _TIME,
    "granted_by_id": {"type": ["integer", "null"]},
    "expires_at": _NULL_TIME,
    "revoked_at": _NULL_TIME,
    "note": {"type": ["string", "null"]},
    "live": {"type": "boolean", "description": "neither revoked nor expired now"},
}))
QUALIFICATION_REQUEST = component("QualificationRequest", response_schema({
    "id": {"type": "integer"},
    "user_id": {"type": "integer"},
    "instrument_id": {"type": "integer"},
    "message": {"type": "string"},
    "state": {"type": "string", "enum": ["open", "granted", "declined"]},
    "created_at": _TIME,
}))


def _at(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat()


def qualification_to_dict(qualification: Qualification) -> dict[str, Any]:
    return {
        "id": qualification.id,
        "user_id": qualification.user_id,
        "instrument_id": qualification.instrument_id,
        "category": qualification.category,
        "level": qualification.level,
        "granted_at": _at(qualification.granted_at),
        "granted_by_id": qualification.granted_by_id,
        "expires_at": _at(qualification.expires_at),
        "revoked_at": _at(qualification.revoked_at),
        "note": qualification.note,
        "live": qualification.is_live(now_utc()),
    }


def request_to_dict(item: QualificationRequest) -> dict[str, Any]:
    return {
        "id": item.id,
        "user_id": item.user_id,
        "instrument_id": item.instrument_id,
        "message": item.message,
        "state": item.state,
        "created_at": _at(item.created_at),
    }


def _created(data: dict[str, Any]) -> Response:
    response = jsonify(data)
    response.status_code = 201
    return response


def _grant(actor: User, values: dict[str, Any]) -> Qualification:
    """Load what the body names and grant. :raises NotFound: unknown instrument.
    :raises ValidationError: unknown user. :raises NotAllowed: not the actor's to grant."""
    instrument = None
    if values.get("instrument_id") is not None:
        instrument = get_or_404(Instrument, values["instrument_id"], _("No such instrument."))
    user = db.session.get(User, values["user_id"])
    if user is None:
        raise ValidationError(_("The qualification could not be saved."),
                              {"user_id": [_("Unknown user.")]})
    return grant_qualification(actor, user, instrument=instrument,
                               category=values.get("category"),
                               level=values.get("level", "basic"),
                               expires_at=values.get("expires_at"), note=values.get("note"))


@bp.post("/qualifications")
@operation("Qualify a user on an instrument or a category", tags=TAGS,
           body=QUALIFICATION_CREATE, response=QUALIFICATION, status=201,
           errors=(403, 404), description=(
               "Managers of the instrument's facility; category-wide qualifications admins "
               "only. Granting again replaces the level, expiry and note of the live "
               "qualification. Closes the user's open request for the instrument."))
def post_qualification() -> Response:
    """Non-managers are refused before the body is judged, so a 403 reveals nothing about
    which users exist. :raises Forbidden, NotAllowed, NotFound, ValidationError."""
    actor = current_user._get_current_object()
    authorize(actor.manages_any_facility(),
              _("Only facility managers and administrators can grant qualifications."))
    values = QUALIFICATION_CREATE.parse(json_body())
    # Serialized inside the unit: the services flush, and after the commit every attribute
    # would be read again.
    return _created(run_with_retry(lambda: qualification_to_dict(_grant(actor, values))))


def _load_visible(qualification_id: int, user: User) -> Qualification:
    """:raises NotFound: unknown, or not the user's to see."""
    qualification = db.session.get(Qualification, qualification_id)
    if qualification is None or not may_see_qualification(user, qualification):
        raise NotFound(_("No such qualification."))
    return qualification


@bp.delete(f"/qualifications/<{ID}:qualification_id>")
@operation("Revoke a qualification", tags=TAGS, response=QUALIFICATION, errors=(403, 404),
           description=(
               "Managers of the instrument's facility (category-wide: admins). The "
               "qualification is kept, revoked (audited), and returned; revoking twice is "
               "harmless. Bookings already made stay."))
def delete_qualification(qualification_id: int) -> Response:
    actor = current_user._get_current_object()

    def unit() -> dict[str, Any]:
        return qualification_to_dict(
            revoke_qualification(actor, _load_visible(qualification_id, actor)))

    return jsonify(run_with_retry(unit))


@bp.get("/qualifications")
@operation("Qualifications: your own, and those you manage", tags=TAGS,
           query=QUALIFICATION_QUERY, response=page_of(QUALIFICATION), description=(
               "Unrevoked qualifications, expired ones included (see `live`). Everyone sees "
               "their own; managers also those on their facilities' instruments and "
               "category-wide ones; admins all."))
def list_qualifications() -> Response:
    args = QUALIFICATION_QUERY.parse_query(request.args)
    stmt = qualifications_visible_to(current_user._get_current_object())
    if "user" in args:
        stmt = stmt.where(Qualification.user_id == args["user"])
    if "instrument" in args:
        stmt = stmt.where(Qualification.instrument_id == args["instrument"])
    stmt = stmt.order_by(Qualification.id)
    return jsonify(paginate(stmt, args["page"], args["per_page"], qualification_to_dict))


@bp.post("/qualification-requests")
@operation("Ask to be qualified on an instrument", tags=TAGS, body=REQUEST_CREATE,
           response=QUALIFICATION_REQUEST, status=201, errors=(404,), description=(
               "The facility's managers see the request; asking again while a request is "
               "open returns that request."))
def post_qualification_request() -> Response:
    values = REQUEST_CREATE.parse(json_body())
    user = current_user._get_current_object()

    def unit() -> dict[str, Any]:
        instrument = get_or_404(Instrument, values["instrument_id"], _("No such instrument."))
        return request_to_dict(request_qualification(user, instrument, values.get("message", "")))

    return _created(run_with_retry(unit))
