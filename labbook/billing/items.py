"""Consumables and usage items (consumables sold by the unit, samples measured on an
instrument). Facility managers record them for their facilities; each is charged to a
team's account and lies in the billing period of ``occurred_at``, so the close lock
applies (labbook/billing/lock.py)."""
from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.billing.lock import ensure_open
from labbook.billing.models import ChargeLine, Consumable, UsageItem
from labbook.billing.money import parse_money
from labbook.billing.statements import drop_lines
from labbook.bookings.models import Booking
from labbook.errors import Forbidden, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument
from labbook.teams.models import Account

CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ITEM_AUDITED = ("charge_type", "consumable_id", "instrument_id", "team_id", "account_id",
                "user_id", "quantity", "occurred_at", "note")


def create_consumable(actor: User, values: dict[str, Any]) -> Consumable:
    """:raises ValidationError: bad or duplicate code, missing name, unknown facility.
    :raises Forbidden: unless finance or a manager of the facility."""
    errors: dict[str, list[str]] = {}
    code = values.get("code") if isinstance(values.get("code"), str) else ""
    name = (values.get("name") or "").strip() if isinstance(values.get("name"), str) else ""
    unit = (values.get("unit") or "unit").strip() if isinstance(values.get("unit"), str) else ""
    facility = db.session.get(Facility, values.get("facility_id")) if isinstance(
        values.get("facility_id"), int) else None
    if not CODE.match(code or ""):
        errors["code"] = [_("Letters, digits, '.', '_' or '-', at most 64.")]
    elif db.session.scalar(sa.select(Consumable.id).where(Consumable.code == code)):
        errors["code"] = [_("This code is taken.")]
    if not name or len(name) > 160:
        errors["name"] = [_("A name of at most 160 characters is required.")]
    if not unit or len(unit) > 20:
        errors["unit"] = [_("A unit of at most 20 characters (e.g. piece, mL).")]
    if facility is None:
        errors["facility_id"] = [_("Unknown facility.")]
    if errors:
        raise ValidationError(_("The consumable was not saved."), errors)
    if not (actor.is_finance or actor.manages_facility(facility)):
        raise Forbidden(_("Only finance or the facility's managers may add consumables."))
    consumable = Consumable(code=code, name=name, name_zh=values.get("name_zh") or None,
                            unit=unit, facility_id=facility.id)  # type: ignore[union-attr]
    db.session.add(consumable)
    db.session.flush()
    audit.record(actor, "consumable.create", consumable,
                 after={"code": code, "name": name, "unit": unit})
    return consumable


def _target(values: dict[str, Any], errors: dict[str, list[str]]) -> tuple[Any, int | None]:
    """The consumable or instrument of an item, and its facility id."""
    if values.get("consumable_id") is not None and values.get("instrument_id") is not None:
        errors["instrument_id"] = [_("Give a consumable or an instrument, not both.")]
        return None, None
    if values.get("consumable_id") is not None:
        found = db.session.get(Consumable, values["consumable_id"])
        if found is None or not found.active:
            errors["consumable_id"] = [_("Unknown or inactive consumable.")]
            return None, None
        return found, found.facility_id
    found = db.session.get(Instrument, values.get("instrument_id") or 0)
    if found is None:
        errors["instrument_id"] = [_("Give a consumable, or an instrument for samples.")]
        return None, None
    return found, found.facility_id


def record_item(actor: User, values: dict[str, Any]) -> UsageItem:
    """Record a usage item: ``consumable_id`` (unit) or ``instrument_id`` (sample),
    ``account_id``, ``quantity`` (> 0, decimal string), ``occurred_at`` (aware),
    optional ``user_id`` and ``note``.

    :raises ValidationError: each bad field. :raises Forbidden: unless a manager of the
        facility. :raises PeriodClosed: ``occurred_at`` in a closed period.
    """
    errors: dict[str, list[str]] = {}
    target, facility_id = _target(values, errors)
    account = db.session.get(Account, values.get("account_id") or 0)
    if account is None:
        errors["account_id"] = [_("Unknown account.")]
    quantity = _quantity(values.get("quantity"), errors)
    occurred = values.get("occurred_at")
    if not isinstance(occurred, datetime) or occurred.tzinfo is None:
        errors["occurred_at"] = [_("A date and time with its UTC offset.")]
    note = values.get("note") or ""
    if not isinstance(note, str) or len(note) > 300:
        errors["note"] = [_("At most %(n)d characters.", n=300)]
    _check_links(values, facility_id, errors)
    if errors:
        raise ValidationError(_("The usage item was not saved."), errors)
    if not actor.manages_facility(facility_id):
        raise Forbidden(_("Only managers of this facility may record usage."))
    ensure_open(occurred)
    consumable = isinstance(target, Consumable)
    item = UsageItem(
        charge_type="unit" if consumable else "sample",
        consumable_id=target.id if consumable else None,
        instrument_id=None if consumable else target.id,
        team_id=account.team_id, account_id=account.id,  # type: ignore[union-attr]
        user_id=values.get("user_id"), quantity=quantity, occurred_at=occurred,
        note=note.strip(), created_by_id=actor.id, reservation_id=values.get("reservation_id"),
    )
    db.session.add(item)
    db.session.flush()
    audit.record(actor, "usage_item.create", item, after=audit.snapshot(item, ITEM_AUDITED))
    return item


def _check_links(values: dict[str, Any], facility_id: int | None,
                 errors: dict[str, list[str]]) -> None:
    """The optional user who used it and booking it belongs to must exist (the booking on
    an instrument of the item's facility)."""
    user_id, booking_id = values.get("user_id"), values.get("reservation_id")
    if user_id is not None and db.session.get(User, user_id) is None:
        errors["user_id"] = [_("Unknown user.")]
    if booking_id is not None:
        booking = db.session.get(Booking, booking_id)
        if booking is None or (facility_id is not None
                               and booking.instrument.facility_id != facility_id):
            errors["reservation_id"] = [_("Unknown booking, or one of another facility.")]


def items_of(facility_ids: set[int] | None) -> sa.Select:
    """Usage items of these facilities (consumables sold there, samples on their
    instruments; None: all), newest first."""
    stmt = (sa.select(UsageItem)
            .outerjoin(Consumable, Consumable.id == UsageItem.consumable_id)
            .outerjoin(Instrument, Instrument.id == UsageItem.instrument_id)
            .order_by(UsageItem.occurred_at.desc(), UsageItem.id.desc()))
    if facility_ids is None:
        return stmt
    return stmt.where(sa.or_(Consumable.facility_id.in_(facility_ids),
                             Instrument.facility_id.in_(facility_ids)))


def visible_items(user: User) -> sa.Select:
    """Usage items ``user`` may read: finance and admins every one, facility managers those
    of their facilities, nobody else any."""
    if user.is_finance:
        return items_of(None)
    return items_of({f.id for f in user.managed_facilities}
                    if user.manages_any_facility() else set())


def item_facility_id(item: UsageItem) -> int:
    return (item.consumable.facility_id if item.consumable is not None
            else item.instrument.facility_id)  # type: ignore[union-attr]


def _quantity(raw: Any, errors: dict[str, list[str]]) -> Decimal | None:
    try:
        value = parse_money(raw, places=3)
    except ValueError as error:
        errors["quantity"] = [str(error)]
        return None
    if value <= 0:
        errors["quantity"] = [_("The quantity must be more than 0.")]
        return None
    return value


def delete_item(actor: User, item: UsageItem) -> None:
    """:raises Forbidden: unless a manager of the facility. :raises PeriodClosed: in a
    closed period."""
    if not actor.manages_facility(item_facility_id(item)):
        raise Forbidden(_("Only managers of this facility may remove usage."))
    ensure_open(item.occurred_at)
    audit.record(actor, "usage_item.delete", item, before=audit.snapshot(item, ITEM_AUDITED))
    # Its draft charge line goes too (kept at 0.00 if an adjustment refers to it).
    lines = db.session.scalars(sa.select(ChargeLine).where(ChargeLine.usage_item_id == item.id))
    stale = list(lines)
    for line in stale:
        line.usage_item_id = None
    drop_lines(stale)
    db.session.delete(item)
    db.session.flush()
