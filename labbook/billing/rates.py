"""Rate cards (SPEC section 6): rows are added, never edited. A new rate is a draft until
published; a published rate prices every session from its ``effective_from`` day on (in
the instrument's zone) until a later published row of the same key. Nothing may take
effect inside a closed period, and finance can preview a month under the drafts before
publishing (``preview``)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.billing import ratebook
from labbook.billing.lines import lines_for_month
from labbook.billing.lock import PeriodClosed, ensure_month_open
from labbook.billing.models import (
    CHARGE_TYPES, INSTRUMENT_CHARGE_TYPES, BillingPeriod, ChargeLine, Consumable,
    CustomerClass, Rate,
)
from labbook.billing.money import parse_money
from labbook.billing.periods import find_period, next_month
from labbook.db import now_utc
from labbook.errors import Conflict, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.teams.models import Team

AUDITED = ("instrument_id", "consumable_id", "customer_class_code", "charge_type", "amount",
           "effective_from", "note", "published_at")


def _refuse(field: str, message: str) -> ValidationError:
    return ValidationError(message, {field: [message]})


def clean_rate(values: dict[str, Any]) -> dict[str, Any]:
    """Check a new rate's fields (already typed: ids int or None, ``effective_from`` a date
    or None, ``amount`` a string or Decimal).

    :raises ValidationError: naming every field that is wrong.
    """
    errors: dict[str, list[str]] = defaultdict(list)
    instrument_id, consumable_id = values.get("instrument_id"), values.get("consumable_id")
    _check_target(instrument_id, consumable_id, errors)
    if db.session.get(CustomerClass, values.get("customer_class") or "") is None:
        errors["customer_class"].append(_("Unknown customer class."))
    charge_type = values.get("charge_type") or ("unit" if consumable_id else None)
    allowed = INSTRUMENT_CHARGE_TYPES if consumable_id is None else ("unit",)
    if charge_type not in allowed:
        errors["charge_type"].append(
            _("Choose one of: %(types)s.", types=", ".join(allowed)) if charge_type in
            CHARGE_TYPES or charge_type is None else _("Unknown charge type."))
    try:
        amount = parse_money(values.get("amount"), places=4)
    except ValueError as error:
        errors["amount"].append(str(error))
        amount = None
    if not isinstance(values.get("effective_from"), date):
        errors["effective_from"].append(_("Give the first day the rate applies (YYYY-MM-DD)."))
    note = (values.get("note") or "").strip()
    if len(note) > 200:
        errors["note"].append(_("At most %(n)d characters.", n=200))
    if errors:
        raise ValidationError(_("The rate was not saved."), dict(errors))
    return {"instrument_id": instrument_id, "consumable_id": consumable_id,
            "customer_class_code": values["customer_class"], "charge_type": charge_type,
            "amount": amount, "effective_from": values["effective_from"], "note": note}


def _check_target(instrument_id: Any, consumable_id: Any,
                  errors: dict[str, list[str]]) -> None:
    if (instrument_id is None) == (consumable_id is None):
        errors["instrument_id"].append(_("Give an instrument or a consumable, not both."))
    elif instrument_id is not None and db.session.get(Instrument, instrument_id) is None:
        errors["instrument_id"].append(_("Unknown instrument."))
    elif consumable_id is not None and db.session.get(Consumable, consumable_id) is None:
        errors["consumable_id"].append(_("Unknown consumable."))


def _same_key(rate: dict[str, Any]) -> sa.Select:
    target = (Rate.instrument_id == rate["instrument_id"] if rate["instrument_id"]
              else Rate.consumable_id == rate["consumable_id"])
    return sa.select(Rate.id).where(
        target, Rate.customer_class_code == rate["customer_class_code"],
        Rate.charge_type == rate["charge_type"], Rate.effective_from == rate["effective_from"])


def ensure_takes_effect_in_open_period(day: date) -> None:
    """A rate from ``day`` would reprice every month from ``day``'s on: none of them may be
    closed. :raises PeriodClosed: naming the latest closed month it would reach."""
    month = day.replace(day=1)
    latest = db.session.scalar(sa.select(sa.func.max(BillingPeriod.month)).where(
        BillingPeriod.closed_at.is_not(None)))
    if latest is not None and latest >= month:
        raise PeriodClosed(latest, _(
            "The billing period %(month)s is closed: a rate can take effect from %(first)s "
            "at the earliest.", month=f"{latest:%Y-%m}", first=f"{next_month(latest):%Y-%m-%d}"))
    ensure_month_open(month)


def create_rate(actor: User, values: dict[str, Any], *, publish: bool = False,
                now: datetime | None = None) -> Rate:
    """Add a rate row (a draft unless ``publish``).

    :raises ValidationError: bad fields, or a rate of the same key already starts that day.
    :raises PeriodClosed: when publishing into a closed period.
    """
    clean = clean_rate(values)
    if db.session.scalar(_same_key(clean)) is not None:
        raise _refuse("effective_from", _("A rate for this item, class and charge type already "
                                          "starts on that day; choose another day."))
    if publish:
        ensure_takes_effect_in_open_period(clean["effective_from"])
    rate = Rate(**clean, created_by_id=actor.id if actor else None,
                published_at=(now or now_utc()) if publish else None)
    db.session.add(rate)
    db.session.flush()
    audit.record(actor, "rate.create", rate, after=audit.snapshot(rate, AUDITED))
    return rate


def publish_rate(actor: User, rate: Rate, now: datetime | None = None) -> Rate:
    """:raises Conflict: already published. :raises PeriodClosed: takes effect in a
    closed period."""
    if rate.published_at is not None:
        raise Conflict(_("This rate is published already."), reason="published")
    ensure_takes_effect_in_open_period(rate.effective_from)
    rate.published_at = now or now_utc()
    db.session.flush()
    audit.record(actor, "rate.publish", rate, after={"published_at": rate.published_at})
    return rate


def delete_draft(actor: User, rate: Rate) -> None:
    """:raises Conflict: a published rate is history and is never deleted."""
    if rate.published_at is not None:
        raise Conflict(_("A published rate is never deleted; add a new rate instead."),
                       reason="published")
    audit.record(actor, "rate.delete", rate, before=audit.snapshot(rate, AUDITED))
    db.session.delete(rate)
    db.session.flush()


@dataclass
class TeamDiff:
    team_id: int
    team_name: str
    current: Decimal
    preview: Decimal
    lines_changed: int

    @property
    def delta(self) -> Decimal:
        return self.preview - self.current


def preview(month: date, day: date | None = None) -> list[TeamDiff]:
    """``month``'s charges as they are, against the same sessions priced at the rates
    (published and drafts) in effect on ``day`` (default: the first day of the next
    month). Writes nothing."""
    day = day or next_month(month)
    period = find_period(month)
    period_id = period.id if period else 0
    current = lines_for_month(month, ratebook.load(), period_id)
    future = lines_for_month(month, ratebook.load(include_drafts=True), period_id, day=day)
    totals: dict[int, list[Any]] = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    for key in set(current) | set(future):
        old, new = current.get(key), future.get(key)
        team_id = (old or new)["team_id"]  # type: ignore[index]
        totals[team_id][0] += old["amount"] if old else Decimal(0)
        totals[team_id][1] += new["amount"] if new else Decimal(0)
        totals[team_id][2] += int((old or {}).get("amount") != (new or {}).get("amount"))
    names = dict(db.session.execute(
        sa.select(Team.id, Team.name).where(Team.id.in_(totals))).tuples().all())
    return sorted((TeamDiff(t, names[t], *v) for t, v in totals.items()),
                  key=lambda d: d.team_name.casefold())


def rate_history(instrument_id: int | None = None,
                 consumable_id: int | None = None) -> list[Rate]:
    stmt = sa.select(Rate).order_by(Rate.customer_class_code, Rate.charge_type,
                                    Rate.effective_from.desc(), Rate.id.desc())
    if instrument_id is not None:
        stmt = stmt.where(Rate.instrument_id == instrument_id)
    if consumable_id is not None:
        stmt = stmt.where(Rate.consumable_id == consumable_id)
    return list(db.session.scalars(stmt))


def lines_priced_by(rate: Rate) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(ChargeLine).where(
        ChargeLine.rate_id == rate.id)) or 0
