"""Billing API, part 1 (routes attach to ``labbook.api.bp``): customer classes, consumables,
adjustments and account balances. Rates are in ``api_rates``, periods and statements in
``api_periods`` (docs/billing-api.md describes all three).

Who: every caller reads the customer classes and consumables; finance (and admins) manage
classes; finance or a manager of the facility add consumables. Adjustments follow
``labbook.billing.adjustments`` (``may_request`` / ``may_decide``). Money, rates and
fractions travel as decimal strings, never floats (SPEC section 8).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Response, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user

from labbook.api import ID, bp, json_body, optional_json_body, paginate
from labbook.api.openapi import component, list_of, operation, page_of
from labbook.api.schema import (
    MAX_ID,
    PAGE_PROPS,
    Choice,
    DecimalString,
    Integer,
    Schema,
    String,
    response_schema,
)
from labbook.auth.guards import authorize, get_or_404
from labbook.auth.models import User
from labbook.billing import accounts as balances
from labbook.billing.adjustments import (
    approve_adjustment,
    may_request,
    reject_adjustment,
    request_adjustment,
)
from labbook.billing.classes import all_classes, create_class, update_class
from labbook.billing.items import create_consumable
from labbook.billing.models import (
    ADJUSTMENT_STATES,
    Adjustment,
    ChargeLine,
    Consumable,
    CustomerClass,
)
from labbook.bookings.api import body_optional
from labbook.db import run_with_retry
from labbook.errors import NotFound, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.teams.models import Account

TAGS = ("billing",)
DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2,4}$",
           "description": "decimal string"}
NULL_DECIMAL = {**DECIMAL, "type": ["string", "null"]}
TIME = {"type": "string", "format": "date-time"}
NULL_TIME = {"type": ["string", "null"], "format": "date-time"}


def decimal_text(value: Decimal | None) -> str | None:
    """A decimal string with two to four decimals (``"0.06"``, ``"0.065"``, ``"120.5000"``
    becomes ``"120.50"``): rates and fractions keep what they have, at least cents."""
    if value is None:
        return None
    exact = Decimal(value).quantize(Decimal("0.0001")).normalize()
    if exact.as_tuple().exponent > -2:  # type: ignore[operator]
        exact = exact.quantize(Decimal("0.01"))
    return f"{exact:f}"


def created(body: dict[str, Any]) -> Response:
    """The 201 answer of a POST that created ``body``'s object."""
    response = jsonify(body)
    response.status_code = 201
    return response


# -- customer classes --------------------------------------------------------------------

CLASS_CREATE = Schema("CustomerClassCreate", {
    "code": String(min_length=2, max_length=32, required=True,
                   description="lower-case letters, digits and '_'"),
    "name": String(min_length=1, max_length=80, required=True),
    "name_zh": String(max_length=80, nullable=True),
    "tax_rate": DecimalString(places=4, minimum=Decimal(0), required=True,
                              description="VAT as a fraction below 1, e.g. \"0.06\""),
})
CLASS_UPDATE = Schema("CustomerClassUpdate", {
    name: prop for name, prop in CLASS_CREATE.partial("_").props.items() if name != "code"
}, read_only=("code",))
CLASS = component("CustomerClass", response_schema({
    "code": {"type": "string"}, "name": {"type": "string"},
    "name_zh": {"type": ["string", "null"]}, "tax_rate": DECIMAL,
}))


def class_to_dict(klass: CustomerClass) -> dict[str, Any]:
    return {"code": klass.code, "name": klass.name, "name_zh": klass.name_zh,
            "tax_rate": decimal_text(klass.tax_rate)}


@bp.get("/customer-classes")
@operation("The customer classes and their tax rates", tags=TAGS, response=list_of(CLASS))
def list_classes() -> Response:
    """Every caller: the classes decide rates and tax, which members may want to know."""
    return jsonify({"items": [class_to_dict(k) for k in all_classes()]})


@bp.post("/customer-classes")
@operation("Add a customer class", tags=TAGS, body=CLASS_CREATE, response=CLASS, status=201,
           errors=(403,), description="Finance and admins only; audited.")
def post_class() -> Response:
    """:raises Forbidden: not finance. :raises ValidationError: bad or taken code, bad
    name or tax rate (nothing is written)."""
    authorize(current_user.is_finance, _("Only finance can manage customer classes."))
    klass = create_class(current_user._get_current_object(), CLASS_CREATE.parse(json_body()))
    db.session.commit()
    return created(class_to_dict(klass))


@bp.patch("/customer-classes/<code>")
@operation("Change a customer class's names or tax rate", tags=TAGS, body=CLASS_UPDATE,
           response=CLASS, errors=(403, 404), description=(
               "Finance and admins only. A new tax rate reprices the drafts of open "
               "periods; closed statements keep the rate they froze."))
def patch_class(code: str) -> Response:
    """:raises Forbidden, NotFound, ValidationError: as the POST."""
    authorize(current_user.is_finance, _("Only finance can manage customer classes."))
    klass = get_or_404(CustomerClass, code, _("No such customer class."))
    values = CLASS_UPDATE.parse(json_body())
    values.setdefault("name", klass.name)  # the service wants a name on every save
    update_class(current_user._get_current_object(), klass, values)
    db.session.commit()
    return jsonify(class_to_dict(klass))


# -- consumables --------------------------------------------------------------------------

CONSUMABLE_CREATE = Schema("ConsumableCreate", {
    "code": String(min_length=1, max_length=64, required=True),
    "name": String(min_length=1, max_length=160, required=True),
    "name_zh": String(max_length=160, nullable=True),
    "unit": String(min_length=1, max_length=20, default="unit", description="e.g. piece, mL"),
    "facility_id": Integer(minimum=1, maximum=MAX_ID, required=True),
})
CONSUMABLE_QUERY = Schema("ConsumableQuery", {
    "facility_id": Integer(minimum=1, maximum=MAX_ID, description="only this facility's"),
})
CONSUMABLE = component("Consumable", response_schema({
    "id": {"type": "integer"}, "code": {"type": "string"}, "name": {"type": "string"},
    "name_zh": {"type": ["string", "null"]}, "unit": {"type": "string"},
    "facility_id": {"type": "integer"}, "active": {"type": "boolean"},
}))


def consumable_to_dict(item: Consumable) -> dict[str, Any]:
    return {"id": item.id, "code": item.code, "name": item.name, "name_zh": item.name_zh,
            "unit": item.unit, "facility_id": item.facility_id, "active": item.active}


@bp.get("/consumables")
@operation("The consumables sold by the unit", tags=TAGS, query=CONSUMABLE_QUERY,
           response=list_of(CONSUMABLE))
def list_consumables() -> Response:
    """Every caller (a catalog of what is sold).

    :raises ValidationError: bad query parameters."""
    args = CONSUMABLE_QUERY.parse_query(request.args)
    stmt = sa.select(Consumable).order_by(Consumable.code)
    if "facility_id" in args:
        stmt = stmt.where(Consumable.facility_id == args["facility_id"])
    return jsonify({"items": [consumable_to_dict(c) for c in db.session.scalars(stmt)]})


@bp.post("/consumables")
@operation("Add a consumable", tags=TAGS, body=CONSUMABLE_CREATE, response=CONSUMABLE,
           status=201, errors=(403,),
           description="Finance, admins and managers of the consumable's facility.")
def post_consumable() -> Response:
    """Callers who can add none are refused before the body is judged.

    :raises Forbidden: neither finance nor a manager (of this facility).
    :raises ValidationError: bad or taken code, unknown facility (nothing is written).
    """
    user = current_user._get_current_object()
    authorize(user.is_finance or user.manages_any_facility(),
              _("Only finance or the facility's managers may add consumables."))
    item = create_consumable(user, CONSUMABLE_CREATE.parse(json_body()))
    db.session.commit()
    return created(consumable_to_dict(item))


# -- adjustments --------------------------------------------------------------------------

ADJUSTMENT_CREATE = Schema("AdjustmentCreate", {
    "line_id": Integer(minimum=1, maximum=MAX_ID, required=True,
                       description="the charge line corrected"),
    "amount": DecimalString(places=2, required=True,
                            description="negative: a credit; positive: a debit"),
    "reason": String(min_length=1, max_length=500, required=True),
})
ADJUSTMENT_QUERY = Schema("AdjustmentQuery", {
    "state": Choice(choices=ADJUSTMENT_STATES), **PAGE_PROPS,
})
ADJUSTMENT_REJECT = Schema("AdjustmentReject", {
    "note": String(min_length=1, max_length=500, required=True, description="why"),
})
ADJUSTMENT_APPROVE = Schema("AdjustmentApprove", {
    "note": String(max_length=500, description="optional; kept as the decision note"),
})
ADJUSTMENT = component("Adjustment", response_schema({
    "id": {"type": "integer"}, "line_id": {"type": "integer"}, "team_id": {"type": "integer"},
    "amount": DECIMAL, "reason": {"type": "string"},
    "state": {"type": "string", "enum": list(ADJUSTMENT_STATES)},
    "line_period": {"type": "string", "description": "YYYY-MM of the corrected line"},
    "period": {"type": ["string", "null"],
               "description": "YYYY-MM the approved adjustment lands in"},
    "requested_by_id": {"type": "integer"}, "requested_at": TIME,
    "decided_by_id": {"type": ["integer", "null"]}, "decided_at": NULL_TIME,
    "decision_note": {"type": ["string", "null"]},
}))


def adjustment_to_dict(adjustment: Adjustment) -> dict[str, Any]:
    line = adjustment.line
    return {
        "id": adjustment.id, "line_id": adjustment.line_id, "team_id": line.team_id,
        "amount": decimal_text(adjustment.amount), "reason": adjustment.reason,
        "state": adjustment.state, "line_period": line.period.label,
        "period": adjustment.period.label if adjustment.period else None,
        "requested_by_id": adjustment.requested_by_id,
        "requested_at": adjustment.requested_at.isoformat(),
        "decided_by_id": adjustment.decided_by_id,
        "decided_at": adjustment.decided_at.isoformat() if adjustment.decided_at else None,
        "decision_note": adjustment.decision_note,
    }


def _may_see_adjustments(user: User) -> bool:
    return user.is_finance or user.manages_any_facility() or any(
        m.is_lead for m in user.memberships)


def _visible_adjustments(user: User) -> sa.Select:
    """Finance: every adjustment; others those of lines they could adjust (lines of their
    facilities, or of teams they lead) -- the rule of ``may_request`` as SQL."""
    stmt = sa.select(Adjustment).join(Adjustment.line).order_by(Adjustment.id.desc())
    if user.is_finance:
        return stmt
    facilities = [f.id for f in user.managed_facilities] if user.manages_any_facility() else []
    led = [m.team_id for m in user.memberships if m.is_lead] if user.has_role("team_lead") else []
    instrument_facility = sa.select(Instrument.facility_id).where(
        Instrument.id == ChargeLine.instrument_id).scalar_subquery()
    consumable_facility = sa.select(Consumable.facility_id).where(
        Consumable.id == ChargeLine.consumable_id).scalar_subquery()
    return stmt.where(sa.or_(ChargeLine.team_id.in_(led),
                             instrument_facility.in_(facilities),
                             consumable_facility.in_(facilities)))


def _load_adjustment(adjustment_id: int, user: User) -> Adjustment:
    """:raises NotFound: unknown, or about a line the caller could not even adjust."""
    adjustment = db.session.get(Adjustment, adjustment_id) if adjustment_id <= MAX_ID else None
    if adjustment is None or not may_request(user, adjustment.line):
        raise NotFound(_("No such adjustment."))
    return adjustment


@bp.get("/billing/adjustments")
@operation("Adjustments, newest first", tags=TAGS, query=ADJUSTMENT_QUERY,
           response=page_of(ADJUSTMENT), errors=(403,), description=(
               "Finance and admins see all; facility managers those of their facilities' "
               "lines; team leads those of their teams' lines; others 403."))
def list_adjustments() -> Response:
    """:raises Forbidden: neither finance, a manager nor a team lead.
    :raises ValidationError: bad query parameters."""
    args = ADJUSTMENT_QUERY.parse_query(request.args)
    user = current_user._get_current_object()
    authorize(_may_see_adjustments(user), _("You may not see adjustments."))
    stmt = _visible_adjustments(user)
    if "state" in args:
        stmt = stmt.where(Adjustment.state == args["state"])
    return jsonify(paginate(stmt, args["page"], args["per_page"], adjustment_to_dict))


@bp.post("/billing/adjustments")
@operation("Request an adjustment of a charge line", tags=TAGS, body=ADJUSTMENT_CREATE,
           response=ADJUSTMENT, status=201, errors=(403,), description=(
               "Finance, managers of the line's facility and leads of its team. A credit "
               "may not exceed what is left of the charge; the request is pending until "
               "someone else decides it."))
def post_adjustment() -> Response:
    """:raises Forbidden: may not adjust this line. :raises ValidationError: unknown line,
    bad amount or reason (nothing is written)."""
    user = current_user._get_current_object()
    authorize(_may_see_adjustments(user), _("You may not adjust charges."))
    values = ADJUSTMENT_CREATE.parse(json_body())
    line = db.session.get(ChargeLine, values["line_id"])
    if line is None:
        message = _("No such charge line.")
        raise ValidationError(message, {"line_id": [message]})
    adjustment = request_adjustment(user, line, values["amount"], values["reason"])
    db.session.commit()
    return created(adjustment_to_dict(adjustment))


@bp.post(f"/billing/adjustments/<{ID}:adjustment_id>/approve")
@body_optional
@operation("Approve an adjustment", tags=TAGS, body=ADJUSTMENT_APPROVE, response=ADJUSTMENT,
           errors=(403, 404, 409), description=(
               "Finance or a manager of the line's facility, not the requester. It becomes "
               "a charge line of the corrected line's period while that is open, else of "
               "the next open period. Decided already: 409. The body is optional."))
def approve_adjustment_api(adjustment_id: int) -> Response:
    """Run with retry: it locks the landing period, which a close may hold.

    :raises NotFound: unknown or invisible. :raises Forbidden: may not decide, or the
        requester. :raises Conflict: decided already, or the landing period closed."""
    user = current_user._get_current_object()
    note = (ADJUSTMENT_APPROVE.parse(optional_json_body()).get("note") or "").strip()

    def unit() -> dict[str, Any]:
        adjustment = approve_adjustment(user, _load_adjustment(adjustment_id, user))
        adjustment.decision_note = note or None
        return adjustment_to_dict(adjustment)

    return jsonify(run_with_retry(unit))


@bp.post(f"/billing/adjustments/<{ID}:adjustment_id>/reject")
@operation("Reject an adjustment, saying why", tags=TAGS, body=ADJUSTMENT_REJECT,
           response=ADJUSTMENT, errors=(403, 404, 409),
           description="Who: as approve. The note is kept.")
def reject_adjustment_api(adjustment_id: int) -> Response:
    """:raises NotFound, Forbidden, Conflict: as approve. :raises ValidationError: no note."""
    user = current_user._get_current_object()
    adjustment = _load_adjustment(adjustment_id, user)
    note = ADJUSTMENT_REJECT.parse(json_body())["note"]
    reject_adjustment(user, adjustment, note)
    db.session.commit()
    return jsonify(adjustment_to_dict(adjustment))


# -- account balance ----------------------------------------------------------------------

BALANCE = component("AccountBalance", response_schema({
    "account_id": {"type": "integer"}, "code": {"type": "string"},
    "spending_limit": {**NULL_DECIMAL, "description": "null: no limit"},
    "committed": {**DECIMAL, "description": "charged and to be charged, before tax"},
    "committed_with_tax": DECIMAL,
    "remaining": {**NULL_DECIMAL, "description": "limit minus committed with tax"},
}))


@bp.get(f"/accounts/<{ID}:account_id>/balance")
@operation("An account's spending against its limit", tags=TAGS, response=BALANCE,
           errors=(403, 404), description=(
               "Leads of the account's team, finance and admins. Committed counts the "
               "closed periods' frozen charges, every charge of open periods and the "
               "estimate of every booking still holding a slot."))
def get_account_balance(account_id: int) -> Response:
    """:raises NotFound: unknown account. :raises Forbidden: not a lead of its team nor
    finance."""
    account = get_or_404(Account, account_id, _("No such account."))
    user = current_user._get_current_object()
    authorize(user.is_finance or user.leads_team(account.team_id),
              _("Only the team's leads and finance see an account's balance."))
    return jsonify({"account_id": account.id, "code": account.code,
                    **balances.balance(account).as_dict()})
