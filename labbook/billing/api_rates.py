"""Rate cards API (routes attach to ``labbook.api.bp``): list, add (published or draft),
publish and delete drafts, and preview a month under the drafts (SPEC section 6).

Who: finance and admins write; finance, admins and facility managers read the rates. The
preview shows every team's totals, so it is for finance and admins only. A rate may not
take effect inside a closed period (409, ``reason: "period_closed"``).
"""
from __future__ import annotations

from datetime import date
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
    Boolean,
    Date,
    DecimalString,
    Integer,
    Schema,
    String,
    response_schema,
)
from labbook.auth.guards import authorize, get_or_404
from labbook.auth.models import User
from labbook.billing.api import DECIMAL, NULL_TIME, TIME, created, decimal_text
from labbook.billing.models import CHARGE_TYPES, Rate
from labbook.billing.periods import next_month, parse_month
from labbook.billing.rates import create_rate, delete_draft, preview, publish_rate
from labbook.bookings.api import body_optional
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.feeds.api import answers

TAGS = ("billing",)

RATE_CREATE = Schema("RateCreate", {
    "instrument_id": Integer(minimum=1, maximum=MAX_ID, nullable=True,
                             description="an instrument (or give consumable_id)"),
    "consumable_id": Integer(minimum=1, maximum=MAX_ID, nullable=True,
                             description="a consumable (charge type unit)"),
    "customer_class": String(min_length=1, max_length=32, required=True),
    "charge_type": String(max_length=20, nullable=True, description=(
        "one of " + ", ".join(CHARGE_TYPES) + "; default unit for a consumable")),
    "amount": DecimalString(places=4, minimum=Decimal(0), required=True,
                            description="price per hour, session, sample or unit"),
    "effective_from": Date(required=True, description="first day (local) the rate applies"),
    "note": String(max_length=200),
    "publish": Boolean(default=True, description="false saves a draft"),
})
RATE_QUERY = Schema("RateQuery", {
    "instrument_id": Integer(minimum=1, maximum=MAX_ID),
    "consumable_id": Integer(minimum=1, maximum=MAX_ID),
    "customer_class": String(max_length=32),
    "include_drafts": Boolean(default=False, description="also the unpublished rates"),
    **PAGE_PROPS,
})
PREVIEW_QUERY = Schema("RatePreviewQuery", {
    "day": Date(description="price at the rates in effect on this day (drafts included); "
                            "default: the first day of the next month"),
})
RATE_PUBLISH = Schema("RatePublish", {
    "note": String(max_length=200, description="optional; replaces the draft's note"),
})
RATE = component("Rate", response_schema({
    "id": {"type": "integer"},
    "instrument_id": {"type": ["integer", "null"]},
    "consumable_id": {"type": ["integer", "null"]},
    "customer_class": {"type": "string"},
    "charge_type": {"type": "string", "enum": list(CHARGE_TYPES)},
    "amount": DECIMAL,
    "effective_from": {"type": "string", "format": "date"},
    "note": {"type": "string"},
    "published": {"type": "boolean"},
    "published_at": NULL_TIME,
    "created_at": TIME,
}))
TEAM_DIFF = component("RatePreviewTeam", response_schema({
    "team": response_schema({"id": {"type": "integer"}, "name": {"type": "string"}}),
    "current": DECIMAL, "preview": DECIMAL, "delta": DECIMAL,
    "lines_changed": {"type": "integer", "minimum": 0},
}))
PREVIEW = {**list_of(TEAM_DIFF)}
PREVIEW["properties"] = {**PREVIEW["properties"], "month": {"type": "string"},
                         "day": {"type": "string", "format": "date"}, "total_delta": DECIMAL}
PREVIEW["required"] = ["items", "month", "day", "total_delta"]


def rate_to_dict(rate: Rate) -> dict[str, Any]:
    return {
        "id": rate.id, "instrument_id": rate.instrument_id, "consumable_id": rate.consumable_id,
        "customer_class": rate.customer_class_code, "charge_type": rate.charge_type,
        "amount": decimal_text(rate.amount), "effective_from": rate.effective_from.isoformat(),
        "note": rate.note, "published": rate.published_at is not None,
        "published_at": rate.published_at.isoformat() if rate.published_at else None,
        "created_at": rate.created_at.isoformat(),
    }


def _may_read(user: User) -> bool:
    return user.is_finance or user.manages_any_facility()


def _write_only() -> str:
    return _("Only finance can change rates.")


@bp.get("/rates")
@operation("Rates, by class, charge type and newest first", tags=TAGS, query=RATE_QUERY,
           response=page_of(RATE), errors=(403,),
           description="Finance, admins and facility managers; drafts on request.")
def list_rates() -> Response:
    """:raises Forbidden: neither finance nor a facility manager.
    :raises ValidationError: bad query parameters."""
    authorize(_may_read(current_user), _("Only finance and facility managers see rates."))
    args = RATE_QUERY.parse_query(request.args)
    stmt = sa.select(Rate).order_by(Rate.instrument_id, Rate.consumable_id,
                                    Rate.customer_class_code, Rate.charge_type,
                                    Rate.effective_from.desc(), Rate.id.desc())
    for name, column in (("instrument_id", Rate.instrument_id),
                         ("consumable_id", Rate.consumable_id),
                         ("customer_class", Rate.customer_class_code)):
        if name in args:
            stmt = stmt.where(column == args[name])
    if not args["include_drafts"]:
        stmt = stmt.where(Rate.published_at.is_not(None))
    return jsonify(paginate(stmt, args["page"], args["per_page"], rate_to_dict))


@bp.post("/rates")
@operation("Add a rate (published unless publish is false)", tags=TAGS, body=RATE_CREATE,
           response=RATE, status=201, errors=(403, 409), description=(
               "Finance and admins only. Rates are never edited: a new row supersedes "
               "the previous one from its effective_from day. A published rate may not take "
               "effect in a closed period (409 period_closed); a draft prices nothing until "
               "published."))
def post_rate() -> Response:
    """:raises Forbidden: not finance. :raises ValidationError: bad fields (nothing is
    written). :raises PeriodClosed: published into a closed period."""
    authorize(current_user.is_finance, _write_only())
    values = RATE_CREATE.parse(json_body())
    publish = values.pop("publish", True)
    rate = create_rate(current_user._get_current_object(), values, publish=publish)
    db.session.commit()
    return created(rate_to_dict(rate))


@bp.post(f"/rates/<{ID}:rate_id>/publish")
@body_optional
@operation("Publish a draft rate", tags=TAGS, body=RATE_PUBLISH, response=RATE,
           errors=(403, 404, 409),
           description="Finance and admins only. Published already, or taking effect in a "
                       "closed period: 409. The body is optional.")
def post_publish_rate(rate_id: int) -> Response:
    """:raises Forbidden: not finance. :raises NotFound: unknown rate.
    :raises Conflict: published already. :raises PeriodClosed: into a closed period."""
    authorize(current_user.is_finance, _write_only())
    rate = get_or_404(Rate, rate_id, _("No such rate."))
    note = RATE_PUBLISH.parse(optional_json_body()).get("note")
    if note is not None and rate.is_draft:
        rate.note = note.strip()
    publish_rate(current_user._get_current_object(), rate)
    db.session.commit()
    return jsonify(rate_to_dict(rate))


@bp.delete(f"/rates/<{ID}:rate_id>")
@answers("204", "Deleted.")
@operation("Delete a draft rate", tags=TAGS, response={}, errors=(403, 404, 409),
           description="Finance and admins only; a published rate is history (409).")
def delete_rate(rate_id: int) -> Response:
    """:raises Forbidden: not finance. :raises NotFound: unknown rate.
    :raises Conflict: published (history is never deleted)."""
    authorize(current_user.is_finance, _write_only())
    rate = get_or_404(Rate, rate_id, _("No such rate."))
    delete_draft(current_user._get_current_object(), rate)
    db.session.commit()
    return Response(status=204)


@bp.get("/billing/periods/<month>/preview")
@operation("A month's charges per team under the draft rates", tags=TAGS,
           query=PREVIEW_QUERY, response=PREVIEW, errors=(403, 404), description=(
               "Finance and admins only. Per team: the month as charged now, as it would "
               "be at the rates (drafts included) in effect on `day`, the difference and "
               "how many lines change. Writes nothing."))
def preview_month(month: str) -> Response:
    """Finance only: it shows every team's money.

    :raises Forbidden: not finance. :raises NotFound: a malformed month.
    :raises ValidationError: a bad ``day`` or one before the month."""
    authorize(current_user.is_finance, _("Only finance can preview rate changes."))
    first = parse_month(month)
    args = PREVIEW_QUERY.parse_query(request.args)
    day: date | None = args.get("day")
    if day is not None and day < first:
        message = _("Give a day from the month's first day on.")
        raise ValidationError(message, {"day": [message]})
    diffs = preview(first, day)
    items = [{"team": {"id": d.team_id, "name": d.team_name},
              "current": decimal_text(d.current), "preview": decimal_text(d.preview),
              "delta": decimal_text(d.delta), "lines_changed": d.lines_changed} for d in diffs]
    total = sum((d.delta for d in diffs), Decimal(0))
    return jsonify({"month": f"{first:%Y-%m}", "day": (day or next_month(first)).isoformat(),
                    "total_delta": decimal_text(total), "items": items})
