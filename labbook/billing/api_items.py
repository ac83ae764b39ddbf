"""Usage items API (routes attach to ``labbook.api.bp``): consumables sold by the unit and
samples measured on an instrument, as the usage-items page records them
(labbook/billing/items.py holds the rules; docs/billing-api.md describes the routes).

Who: managers of the item's facility (and admins) record and remove items; finance reads
every item, managers those of their facilities; anyone else gets 403 (lists) or 404 (one
item). An item lies in the billing period of ``occurred_at``: recording or removing one
in a closed period is 409 ``period_closed``. Quantities travel as decimal strings.
"""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask_babel import gettext as _
from flask_login import current_user

from labbook.api import ID, bp, check_window, json_body, paginate
from labbook.api.openapi import component, operation, page_of
from labbook.api.schema import (
    MAX_ID,
    PAGE_PROPS,
    DateTime,
    DecimalString,
    Integer,
    Schema,
    String,
    response_schema,
)
from labbook.auth.guards import authorize
from labbook.auth.models import User
from labbook.billing.api import created, decimal_text
from labbook.billing.items import (
    delete_item,
    item_facility_id,
    items_of,
    record_item,
    visible_items,
)
from labbook.billing.models import UsageItem
from labbook.billing.periods import centre_zone
from labbook.db import run_with_retry
from labbook.errors import NotFound
from labbook.extensions import db
from labbook.feeds.api import answers

TAGS = ("billing",)


def _id(description: str, required: bool = False) -> Integer:
    return Integer(minimum=1, maximum=MAX_ID, required=required, description=description)


ITEM_CREATE = Schema("UsageItemCreate", {
    "consumable_id": _id("a consumable sold by the unit (or `instrument_id`, not both)"),
    "instrument_id": _id("samples measured on this instrument (or `consumable_id`)"),
    "account_id": _id("the account charged", required=True),
    "quantity": DecimalString(places=3, required=True,
                              description="more than 0, at most 3 decimals"),
    "occurred_at": DateTime(required=True, description="when; decides the billing period"),
    "user_id": _id("who used it (optional)"),
    "reservation_id": _id("the booking it belongs to (optional, same facility)"),
    "note": String(max_length=300),
})
ITEM_QUERY = Schema("UsageItemQuery", {
    "facility_id": _id("only this facility's"),
    "from": DateTime(description="only items at or after this"),
    "to": DateTime(description="only items before this"),
    **PAGE_PROPS,
})
ITEM = component("UsageItem", response_schema({
    "id": {"type": "integer"},
    "charge_type": {"type": "string", "enum": ["unit", "sample"]},
    "consumable_id": {"type": ["integer", "null"]},
    "instrument_id": {"type": ["integer", "null"]},
    "facility_id": {"type": "integer"},
    "team_id": {"type": "integer"}, "account_id": {"type": "integer"},
    "user_id": {"type": ["integer", "null"]}, "reservation_id": {"type": ["integer", "null"]},
    "quantity": {"type": "string", "description": "decimal string"},
    "occurred_at": {"type": "string", "format": "date-time",
                    "description": "in the centre's zone, with its offset"},
    "note": {"type": "string"},
    "created_by_id": {"type": ["integer", "null"]},
    "created_at": {"type": "string", "format": "date-time"},
}))


def item_to_dict(item: UsageItem) -> dict[str, Any]:
    zone = centre_zone()
    return {
        "id": item.id, "charge_type": item.charge_type, "consumable_id": item.consumable_id,
        "instrument_id": item.instrument_id, "facility_id": item_facility_id(item),
        "team_id": item.team_id, "account_id": item.account_id, "user_id": item.user_id,
        "reservation_id": item.reservation_id, "quantity": decimal_text(item.quantity),
        "occurred_at": item.occurred_at.astimezone(zone).isoformat(), "note": item.note,
        "created_by_id": item.created_by_id,
        "created_at": item.created_at.astimezone(zone).isoformat(),
    }


def _may_read(user: User) -> bool:
    return user.is_finance or user.manages_any_facility()


def _load_visible(item_id: int, user: User) -> UsageItem:
    """:raises NotFound: unknown, or an item the caller may not read."""
    found = db.session.scalar(visible_items(user).where(UsageItem.id == item_id))
    if found is None:
        raise NotFound(_("No such usage item."))
    return found


@bp.get("/usage-items")
@operation("Usage items (consumables, samples), newest first", tags=TAGS, query=ITEM_QUERY,
           response=page_of(ITEM), errors=(403,), description=(
               "Finance and admins see every item, facility managers those of their "
               "facilities; others 403."))
def list_usage_items() -> Response:
    """:raises Forbidden: neither finance nor a manager. :raises ValidationError: bad query
    parameters (a window whose end is not after its start)."""
    args = ITEM_QUERY.parse_query(request.args)
    user = current_user._get_current_object()
    authorize(_may_read(user), _("Only finance and facility managers see usage items."))
    check_window(args.get("from"), args.get("to"))
    stmt = visible_items(user)
    if "facility_id" in args:
        mine = items_of({args["facility_id"]}).with_only_columns(UsageItem.id)
        stmt = stmt.where(UsageItem.id.in_(mine))
    if "from" in args:
        stmt = stmt.where(UsageItem.occurred_at >= args["from"])
    if "to" in args:
        stmt = stmt.where(UsageItem.occurred_at < args["to"])
    return jsonify(paginate(stmt, args["page"], args["per_page"], item_to_dict))


@bp.post("/usage-items")
@operation("Record consumables sold or samples measured", tags=TAGS, body=ITEM_CREATE,
           response=ITEM, status=201, errors=(403, 409), description=(
               "Managers of the item's facility and admins. Give `consumable_id` (charged "
               "per unit) or `instrument_id` (charged per sample), never both. 422 "
               "`validation` with `fields` for unknown consumables, instruments, accounts, "
               "users or bookings and for a quantity not above 0; 409 `conflict` with "
               "`reason` `period_closed` when `occurred_at` lies in a closed period. "
               "Audited as `usage_item.create`; the next refresh of the period prices it."))
def post_usage_item() -> Response:
    """Callers who manage no facility are refused before the body is judged.

    :raises Forbidden: not a manager (of this facility). :raises ValidationError,
        PeriodClosed: refused (nothing is written).
    """
    user = current_user._get_current_object()
    authorize(user.manages_any_facility(), _("Only managers of this facility may record usage."))
    values = ITEM_CREATE.parse(json_body())

    def unit() -> dict[str, Any]:
        item = record_item(user, values)
        return item_to_dict(item)

    return created(run_with_retry(unit))


@bp.get(f"/usage-items/<{ID}:item_id>")
@operation("One usage item", tags=TAGS, response=ITEM, errors=(404,),
           description="Finance, admins and managers of its facility; others 404.")
def get_usage_item(item_id: int) -> Response:
    return jsonify(item_to_dict(_load_visible(item_id, current_user._get_current_object())))


@bp.delete(f"/usage-items/<{ID}:item_id>")
@answers("204", "Removed.")
@operation("Remove a usage item while its period is open", tags=TAGS, response={},
           errors=(403, 404, 409), description=(
               "Managers of its facility and admins; finance 403 (they see it, may not "
               "remove it), others 404. Its draft charge line goes too (kept at 0.00 when "
               "an adjustment refers to it). 409 `period_closed` in a closed period. "
               "Audited as `usage_item.delete`."))
def delete_usage_item(item_id: int) -> Response:
    user = current_user._get_current_object()

    def unit() -> None:
        delete_item(user, _load_visible(item_id, user))

    run_with_retry(unit)
    return Response(status=204)
