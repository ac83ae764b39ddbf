"""Catalog API: instruments, facilities and research fields (SPEC section 8).

Everyone with a token may read the catalog. Only managers of an instrument's facility (and
admins) may change it or add instruments to it; finance may read but not change
instruments (SPEC section 1). The rules live in ``labbook.instruments.services``; the
views here parse, load, authorize, call one service and commit.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, jsonify, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload

from labbook.api import ID, bp, json_body, paginate
from labbook.api.openapi import component, list_of, operation, page_of
from labbook.api.schema import (
    MAX_ID,
    PAGE_PROPS,
    Boolean,
    Choice,
    IdList,
    Integer,
    Prop,
    Schema,
    String,
    response_schema,
)
from labbook.auth.guards import authorize, get_or_404
from labbook.extensions import db
from labbook.instruments.models import INSTRUMENT_STATUSES, Facility, Instrument, ResearchField
from labbook.instruments.services import (
    BOOL_FIELDS,
    INT_RANGES,
    NULLABLE_INTS,
    REQUIRED_TEXT,
    TEXT_LIMITS,
    create_instrument,
    search_instruments,
    update_instrument,
)

TAGS = ("catalog",)


def _default(name: str) -> Any:
    column_default = Instrument.__table__.columns[name].default
    return column_default.arg if column_default is not None else None


def _instrument_props() -> dict[str, Prop]:
    """Input properties, with the limits the service enforces (one source for both)."""
    props: dict[str, Prop] = {
        name: String(max_length=limit, min_length=int(name in REQUIRED_TEXT),
                     required=name in REQUIRED_TEXT)
        for name, limit in TEXT_LIMITS.items()
    }
    props["facility_id"] = Integer(minimum=1, maximum=MAX_ID, required=True)
    props["field_ids"] = IdList(min_items=1, max_items=20, required=True,
                                description="research fields the instrument serves")
    props["status"] = Choice(choices=INSTRUMENT_STATUSES, default=_default("status"))
    for name, (low, high) in INT_RANGES.items():
        props[name] = Integer(minimum=low, maximum=high, nullable=name in NULLABLE_INTS,
                              default=_default(name))
    for name in BOOL_FIELDS:
        props[name] = Boolean(default=_default(name))
    return props


INSTRUMENT_CREATE = Schema("InstrumentCreate", _instrument_props(), read_only=("id", "updated_at"))
INSTRUMENT_UPDATE = INSTRUMENT_CREATE.partial("InstrumentUpdate")
INSTRUMENT_QUERY = Schema("InstrumentQuery", {
    "q": String(max_length=200, description="text in name, asset code, category, make, "
                                            "model or description"),
    "field": Integer(minimum=1, maximum=MAX_ID, description="research field id"),
    "platform": Integer(minimum=1, maximum=MAX_ID, description="platform id"),
    "facility": Integer(minimum=1, maximum=MAX_ID, description="facility id"),
    "category": String(max_length=TEXT_LIMITS["category"], description="exact category"),
    "status": Choice(choices=INSTRUMENT_STATUSES),
    **PAGE_PROPS,
})
INSTRUMENT_OUTPUT = tuple(INSTRUMENT_CREATE.props) + ("id", "updated_at")

INSTRUMENT = component("Instrument", response_schema({
    "id": {"type": "integer"},
    **{name: prop.json_schema() for name, prop in INSTRUMENT_CREATE.props.items()},
    "field_ids": {"type": "array", "items": {"type": "integer"}},  # older rows may have none
    "updated_at": {"type": "string", "format": "date-time"},
}))
FACILITY = component("Facility", response_schema({
    "id": {"type": "integer"},
    "code": {"type": "string"},
    "name": {"type": "string"},
    "name_zh": {"type": ["string", "null"]},
    "platform_id": {"type": "integer"},
    "platform": {"type": "string", "description": "the platform's name"},
    "location": {"type": "string"},
    "timezone": {"type": "string", "description": "IANA zone, e.g. Asia/Shanghai"},
    "description": {"type": "string"},
    "manager_ids": {"type": "array", "items": {"type": "integer"}},
    "opening_hours": {"type": "array", "items": response_schema({
        "weekday": {"type": "integer", "minimum": 0, "maximum": 6, "description": "0 = Monday"},
        "opens": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "closes": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
    })},
}))
FIELD = component("ResearchField", response_schema({
    "id": {"type": "integer"},
    "code": {"type": "string"},
    "name": {"type": "string"},
    "name_zh": {"type": ["string", "null"]},
}))


def _not_your_facility() -> str:
    return _("Only managers of this facility can change its instruments.")


def instrument_to_dict(instrument: Instrument) -> dict[str, Any]:
    data = {name: getattr(instrument, name) for name in INSTRUMENT_OUTPUT}
    data["updated_at"] = instrument.updated_at.isoformat()
    return data


def facility_to_dict(facility: Facility) -> dict[str, Any]:
    return {
        "id": facility.id,
        "code": facility.code,
        "name": facility.name,
        "name_zh": facility.name_zh,
        "platform_id": facility.platform_id,
        "platform": facility.platform.name,
        "location": facility.location,
        "timezone": facility.timezone,
        "description": facility.description,
        "manager_ids": [user.id for user in facility.managers],
        "opening_hours": [
            {"weekday": h.weekday, "opens": h.opens.strftime("%H:%M"),
             "closes": h.closes.strftime("%H:%M")}
            for h in facility.opening_hours
        ],
    }


def field_to_dict(field: ResearchField) -> dict[str, Any]:
    return {"id": field.id, "code": field.code, "name": field.name, "name_zh": field.name_zh}


@bp.get("/instruments")
@operation("Search the instrument catalog", tags=TAGS, query=INSTRUMENT_QUERY,
           response=page_of(INSTRUMENT))
def list_instruments() -> Response:
    args = INSTRUMENT_QUERY.parse_query(request.args)
    stmt = search_instruments(
        query=args.get("q"), field_id=args.get("field"), platform_id=args.get("platform"),
        facility_id=args.get("facility"), category=args.get("category"),
        status=args.get("status"),
    )
    return jsonify(paginate(stmt, args["page"], args["per_page"], instrument_to_dict,
                            options=[selectinload(Instrument.fields)]))


@bp.get(f"/instruments/<{ID}:instrument_id>")
@operation("One instrument", tags=TAGS, response=INSTRUMENT, errors=(404,))
def get_instrument(instrument_id: int) -> Response:
    instrument = get_or_404(Instrument, instrument_id, _("No such instrument."))
    return jsonify(instrument_to_dict(instrument))


@bp.patch(f"/instruments/<{ID}:instrument_id>")
@operation("Change some attributes of an instrument", tags=TAGS, body=INSTRUMENT_UPDATE,
           response=INSTRUMENT, errors=(403, 404),
           description="Managers of the instrument's facility and admins only. Attributes "
                       "left out keep their values; the change is audited.")
def patch_instrument(instrument_id: int) -> Response:
    """:raises NotFound: unknown id. :raises Forbidden: not a manager of its facility.
    :raises ValidationError: bad values (nothing is written)."""
    instrument = get_or_404(Instrument, instrument_id, _("No such instrument."))
    authorize(current_user.can_edit_instrument(instrument), _not_your_facility())
    values = INSTRUMENT_UPDATE.parse(json_body())
    update_instrument(current_user._get_current_object(), instrument, values)
    db.session.commit()
    return jsonify(instrument_to_dict(instrument))


def _authorize_target(target: Any) -> None:
    """Refuse a manager of another facility as soon as the target facility is known, before
    the body's other values are judged (a bad ``facility_id`` is left to validation).

    :raises Forbidden: when the caller does not manage the target facility.
    """
    if isinstance(target, int) and not isinstance(target, bool) and 1 <= target <= MAX_ID:
        authorize(current_user.manages_facility(target), _not_your_facility())


@bp.post("/instruments")
@operation("Add an instrument", tags=TAGS, body=INSTRUMENT_CREATE, response=INSTRUMENT,
           status=201, errors=(403,),
           headers={"Location": {"schema": {"type": "string"},
                                 "description": "URL of the new instrument"}},
           description="Managers of the target facility and admins only. Policy attributes "
                       "left out take the documented defaults.")
def post_instrument() -> Response:
    """Non-managers are refused before the body is even read, so a 403 reveals nothing
    about what a valid instrument looks like.

    :raises Forbidden: not a manager of the target facility.
    :raises ValidationError: bad values (nothing is written).
    """
    authorize(current_user.manages_any_facility(),
              _("Only facility managers and administrators can add instruments."))
    body = json_body()
    _authorize_target(body.get("facility_id"))
    instrument = create_instrument(current_user._get_current_object(),
                                   INSTRUMENT_CREATE.parse(body))
    db.session.commit()
    response = jsonify(instrument_to_dict(instrument))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_instrument", instrument_id=instrument.id)
    return response


@bp.get("/facilities")
@operation("Every facility, with its managers and opening hours", tags=TAGS,
           response=list_of(FACILITY))
def list_facilities() -> Response:
    facilities = db.session.scalars(
        sa.select(Facility).order_by(Facility.name).options(
            selectinload(Facility.platform),
            selectinload(Facility.managers),
            selectinload(Facility.opening_hours),
        )
    ).all()
    return jsonify({"items": [facility_to_dict(f) for f in facilities]})


@bp.get("/fields")
@operation("The research fields", tags=TAGS, response=list_of(FIELD))
def list_fields() -> Response:
    fields = db.session.scalars(sa.select(ResearchField).order_by(ResearchField.id)).all()
    return jsonify({"items": [field_to_dict(f) for f in fields]})
