"""Catalog API: instruments, facilities and research fields (SPEC section 8).

Everyone with a token may read the catalog. Only managers of an instrument's facility (and
admins) may change it or add instruments to it; finance may read but not change
instruments (SPEC section 1). The rules live in ``labbook.instruments.services``; the
views here parse, load, authorize, call one service and commit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
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
from labbook.billing.models import BillingPolicy
from labbook.billing.policy import (
    POLICY_API_FIELDS,
    clean_policy,
    policy_of,
    policy_to_dict,
    update_policy,
)
from labbook.errors import ValidationError
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
    validate_instrument,
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


@dataclass(frozen=True, kw_only=True)
class Passed(Prop):
    """A value handed on as it is, for a service that checks it itself (the billing
    policy: ``labbook.billing.policy.clean_policy``); ``schema`` documents it."""

    schema: dict[str, Any] = field(default_factory=dict)

    def parse(self, value: Any) -> Any:
        return value

    def type_schema(self) -> dict[str, Any]:
        return dict(self.schema)


_FRACTION = {"type": "string", "pattern": r"^[0-9](\.[0-9]{1,4})?$",
             "description": "a fraction from 0 to 1 as a decimal string, e.g. \"0.5\""}
_HHMM = {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"}
POLICY_PROPS: dict[str, Prop] = {
    "billing_basis": Passed(schema={"type": "string", "enum": ["booked", "actual", "max"]},
                            description="time billed: booked, actual or the greater"),
    "billing_increment_minutes": Passed(schema={"type": "integer", "minimum": 1,
                                                "maximum": 1440},
                                        description="billed time rounds up to this"),
    "minimum_charge_minutes": Passed(schema={"type": "integer", "minimum": 0,
                                             "maximum": 10080}),
    "late_cancel_fraction": Passed(schema=_FRACTION),
    "no_show_fraction": Passed(schema=_FRACTION),
    "session_cap": Passed(nullable=True, schema={
        "type": "object", "required": ["from", "to", "max_minutes"],
        "additionalProperties": False,
        "properties": {"from": _HHMM, "to": _HHMM,
                       "max_minutes": {"type": "integer", "minimum": 1, "maximum": 1440}}},
        description="at most max_minutes billed for a session in the window; null: no cap"),
}
INSTRUMENT_CREATE = Schema("InstrumentCreate", _instrument_props(), read_only=("id", "updated_at"))
INSTRUMENT_UPDATE = INSTRUMENT_CREATE.partial("InstrumentUpdate")
INSTRUMENT_PATCH = Schema("InstrumentUpdate", {**INSTRUMENT_UPDATE.props, **POLICY_PROPS},
                          read_only=("id", "updated_at"))
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
    **{name: prop.json_schema() for name, prop in POLICY_PROPS.items()},
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


def instrument_to_dict(instrument: Instrument, policy: BillingPolicy | None = None
                       ) -> dict[str, Any]:
    """``policy``: the instrument's billing policy when the caller loaded it already."""
    data = {name: getattr(instrument, name) for name in INSTRUMENT_OUTPUT}
    data["updated_at"] = instrument.updated_at.isoformat()
    data.update(policy_to_dict(policy or policy_of(instrument)))
    return data


def _with_policies(page: dict[str, Any]) -> dict[str, Any]:
    """Serialize a page of instruments with their billing policies, loaded in one query
    (an instrument without a row shows the defaults)."""
    instruments = page["items"]
    policies = {p.instrument_id: p for p in db.session.scalars(sa.select(BillingPolicy).where(
        BillingPolicy.instrument_id.in_([i.id for i in instruments])))}
    missing = next((i for i in instruments if i.id not in policies), None)
    default = policy_of(missing) if missing is not None else None
    page["items"] = [instrument_to_dict(i, policies.get(i.id) or default) for i in instruments]
    return page


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
    return jsonify(_with_policies(paginate(stmt, args["page"], args["per_page"], lambda i: i,
                                           options=[selectinload(Instrument.fields)])))


@bp.get(f"/instruments/<{ID}:instrument_id>")
@operation("One instrument", tags=TAGS, response=INSTRUMENT, errors=(404,))
def get_instrument(instrument_id: int) -> Response:
    instrument = get_or_404(Instrument, instrument_id, _("No such instrument."))
    return jsonify(instrument_to_dict(instrument))


def _parse_patch(instrument: Instrument, body: dict[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The instrument's and the policy's values of a PATCH body, all checked at once.

    :raises ValidationError: every bad field of both in one answer.
    """
    errors: dict[str, list[str]] = {}
    try:
        values = INSTRUMENT_PATCH.parse(body)
    except ValidationError as error:
        errors.update(error.fields)
        values = {k: body[k] for k in POLICY_API_FIELDS if k in body and k not in errors}
    policy = {k: values.pop(k) for k in POLICY_API_FIELDS if k in values}
    try:
        clean_policy(policy)
    except ValidationError as error:
        errors.update(error.fields)
    if not set(errors) - set(POLICY_API_FIELDS):  # the instrument's values are typed
        try:
            validate_instrument(current_user._get_current_object(), values, current=instrument)
        except ValidationError as error:
            errors.update(error.fields)
    if errors:
        raise ValidationError(_("The request has invalid values."), errors)
    return values, policy


@bp.patch(f"/instruments/<{ID}:instrument_id>")
@operation("Change some attributes of an instrument", tags=TAGS, body=INSTRUMENT_PATCH,
           response=INSTRUMENT, errors=(403, 404),
           description="Managers of the instrument's facility and admins only. Attributes "
                       "left out keep their values; the change is audited. The billing "
                       "policy fields (billing_basis ... session_cap) change the drafts of "
                       "open periods only. Bad values of either kind come in one 422.")
def patch_instrument(instrument_id: int) -> Response:
    """:raises NotFound: unknown id. :raises Forbidden: not a manager of its facility.
    :raises ValidationError: bad values (nothing is written)."""
    instrument = get_or_404(Instrument, instrument_id, _("No such instrument."))
    authorize(current_user.can_edit_instrument(instrument), _not_your_facility())
    values, policy = _parse_patch(instrument, json_body())
    user = current_user._get_current_object()
    update_instrument(user, instrument, values)
    if policy:
        update_policy(user, instrument, policy)
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
