"""From billable facts to charge lines (SPEC section 6). ``lines_for_month`` reads the
month's sources in three queries (sessions, usage items, approved adjustments) and prices
each with the pure functions of labbook/billing/charges.py; the result is a dict of
column values per ``source_key``, which ``refresh_period`` writes idempotently.

What is charged for a session that started in the month (centre zone):
* ``completed`` or ``in_use`` (running: priced on its booked time until checked out): a
  ``time`` line at the hourly rate (``assisted_hour`` when assisted, else
  ``instrument_hour``) and a ``session`` line when the instrument has a session rate;
* ``no_show``: the booked slot's price x the no-show fraction;
* ``cancelled`` late by its owner: the booked slot's price x the late-cancel fraction
  (cancellations by the facility or because of an outage are never late, so never charged).
Usage items are priced quantity x unit (consumable) or sample rate; approved adjustments
are copied as they are. A session whose rate is missing still gets its line, for 0.00 and
flagged ``missing_rate``: the pre-close checklist lists it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import lru_cache
from types import SimpleNamespace
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import aliased, joinedload

from labbook.billing.charges import Cap, Policy, Session, time_charge, unit_charge
from labbook.billing.models import Adjustment, BillingPolicy, ChargeLine, Consumable, UsageItem
from labbook.billing.money import currency
from labbook.billing.periods import month_bounds
from labbook.billing.ratebook import RateBook
from labbook.bookings.models import Reservation
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument
from labbook.teams.models import Team

Spec = dict[str, Any]
# Part of every session's input digest: raise it whenever pricing code changes, so stored
# lines are recomputed once instead of being taken as unchanged.
PRICING_VERSION = 1
POLICY_COLUMNS = ("basis", "increment_minutes", "minimum_minutes", "cap_from", "cap_to",
                  "cap_max_minutes", "late_cancel_fraction", "no_show_fraction")
HOURS = Decimal("0.0001")
QUANTITY = Decimal("0.001")  # usage_items.quantity's scale (explanations stay stable)
CHARGED_STATES = ("completed", "in_use", "no_show", "cancelled")
FEE_KINDS = {"no_show": "no_show_fraction", "cancelled": "late_cancel_fraction"}


def session_query(start: datetime, end: datetime | None = None, *,
                  states: tuple[str, ...] = CHARGED_STATES) -> sa.Select:
    """Sessions starting in [start, end) in ``states`` (cancelled ones only when late)."""
    r = Reservation
    stmt = (
        sa.select(
            r.id, r.instrument_id, r.user_id, r.team_id, r.account_id, r.start_at, r.end_at,
            r.checked_in_at, r.checked_out_at, r.assisted, r.state, r.late_cancel,
            Team.customer_class_code, Instrument.name.label("instrument_name"),
            Instrument.asset_code, Facility.timezone, BillingPolicy.basis,
            BillingPolicy.increment_minutes, BillingPolicy.minimum_minutes,
            BillingPolicy.cap_from, BillingPolicy.cap_to, BillingPolicy.cap_max_minutes,
            BillingPolicy.late_cancel_fraction, BillingPolicy.no_show_fraction,
        )
        .join(Team, Team.id == r.team_id)
        .join(Instrument, Instrument.id == r.instrument_id)
        .join(Facility, Facility.id == Instrument.facility_id)
        .outerjoin(BillingPolicy, BillingPolicy.instrument_id == r.instrument_id)
        .where(
            r.kind == "booking", r.start_at >= start, r.state.in_(states),
            sa.or_(r.state != "cancelled", r.late_cancel.is_(True)),
        )
    )
    return stmt if end is None else stmt.where(r.start_at < end)


def policy_of(row: Any) -> Policy:
    """The row's billing policy; the defaults of ``Policy`` when the instrument has none."""
    return _policy(row.basis, row.increment_minutes, row.minimum_minutes, row.cap_from,
                   row.cap_to, row.cap_max_minutes, row.late_cancel_fraction,
                   row.no_show_fraction)


@lru_cache(maxsize=4096)
def _policy(*columns: Any) -> Policy:
    """Policies are few and immutable: one object per distinct set of columns."""
    row = SimpleNamespace(**dict(zip(POLICY_COLUMNS, columns)))
    if row.basis is None:
        return Policy()
    cap = None
    if row.cap_max_minutes is not None:
        cap = Cap(row.cap_from, row.cap_to, row.cap_max_minutes)
    return Policy(row.basis, row.increment_minutes, row.minimum_minutes, cap,
                  row.late_cancel_fraction, row.no_show_fraction)


def session_lines(row: Any, book: RateBook, day: date | None = None,
                  money_code: str | None = None) -> Iterator[Spec]:
    """The lines of one session row. ``day`` overrides the rate day (previews)."""
    zone = ZoneInfo(row.timezone)
    local_start = row.start_at.astimezone(zone)
    rate_day = day or local_start.date()
    policy = policy_of(row)
    klass = row.customer_class_code
    charge_type = "assisted_hour" if row.assisted else "instrument_hour"
    session = Session(row.start_at, row.end_at, row.checked_in_at, row.checked_out_at)
    hourly = book.find("instrument", row.instrument_id, klass, charge_type, rate_day)
    per_session = book.find("instrument", row.instrument_id, klass, "session", rate_day)
    base = _base(row, local_start, zone, klass)
    if row.state in FEE_KINDS:
        kind = "no_show" if row.state == "no_show" else "late_cancel"
        factor = getattr(policy, FEE_KINDS[row.state])
        if factor > 0:
            yield _time_line(base, kind, charge_type, policy, session, zone, hourly, factor,
                             money_code)
        return
    if hourly is not None or per_session is None:
        yield _time_line(base, "time", charge_type, policy, session, zone, hourly, Decimal(1),
                         money_code)
    if per_session is not None:
        yield _flat_line(base, "session", "session", Decimal(1), per_session, rate_day)


def _base(row: Any, local_start: datetime, zone: ZoneInfo, klass: str) -> Spec:
    local_end = row.end_at.astimezone(zone)
    return {
        "team_id": row.team_id, "account_id": row.account_id, "user_id": row.user_id,
        "instrument_id": row.instrument_id, "consumable_id": None,
        "reservation_id": row.id, "usage_item_id": None, "adjustment_id": None,
        "occurred_at": row.start_at,
        # isoformat slices: the same text as strftime("%Y-%m-%d %H:%M"), much cheaper
        "description": f"{row.instrument_name} ({row.asset_code}) "
                       f"{local_start.isoformat(' ')[:16]}-{local_end.isoformat()[11:16]}",
        "explanation": {"customer_class": klass, "state": row.state},
        "_source": f"booking:{row.id}",
    }


def _time_line(base: Spec, kind: str, charge_type: str, policy: Policy, session: Session,
               zone: ZoneInfo, rate: Any, factor: Decimal, money_code: str | None) -> Spec:
    fee = kind != "time"
    charge = time_charge(policy, session, zone, rate.amount if rate else Decimal(0), factor,
                         basis="booked" if fee else None, currency=money_code)
    explanation = {**base["explanation"], **charge.explanation, "charge_type": charge_type,
                   **_rate_facts(rate)}
    suffix = {"no_show": " - no-show", "late_cancel": " - late cancellation"}.get(kind, "")
    return {
        **_strip(base), "source_key": f"{base['_source']}:{kind}", "kind": kind,
        "charge_type": charge_type, "description": base["description"] + suffix,
        "quantity": (Decimal(charge.minutes) / 60).quantize(HOURS),
        "unit_amount": rate.amount if rate else None, "amount": charge.amount,
        "rate_id": rate.id if rate else None, "missing_rate": rate is None,
        "explanation": explanation,
    }


def _flat_line(base: Spec, kind: str, charge_type: str, quantity: Decimal, rate: Any,
               day: date) -> Spec:
    explanation = {**base["explanation"], "charge_type": charge_type,
                   "quantity": str(quantity), **_rate_facts(rate)}
    return {
        **_strip(base), "source_key": f"{base['_source']}:{kind}", "kind": kind,
        "charge_type": charge_type, "description": base["description"] + f" - {kind}",
        "quantity": quantity, "unit_amount": rate.amount if rate else None,
        "amount": unit_charge(quantity, rate.amount if rate else Decimal(0)),
        "rate_id": rate.id if rate else None, "missing_rate": rate is None,
        "explanation": explanation,
    }


def _rate_facts(rate: Any) -> dict[str, Any]:
    if rate is None:
        return {"rate_id": None, "rate_effective_from": None, "rate": None}
    return {"rate_id": rate.id, "rate_effective_from": rate.effective_from.isoformat(),
            "rate": str(rate.amount), "rate_draft": rate.draft}


def _strip(base: Spec) -> Spec:
    return {k: v for k, v in base.items() if not k.startswith("_")}


def item_query(start: datetime, end: datetime | None = None) -> sa.Select:
    consumable_facility = aliased(Facility)
    stmt = (
        sa.select(
            UsageItem, Team.customer_class_code,
            sa.func.coalesce(Facility.timezone, consumable_facility.timezone).label("timezone"),
            sa.func.coalesce(Instrument.name, Consumable.name).label("target_name"),
            sa.func.coalesce(Instrument.asset_code, Consumable.code).label("target_code"),
            Consumable.unit,
        )
        .join(Team, Team.id == UsageItem.team_id)
        .outerjoin(Instrument, Instrument.id == UsageItem.instrument_id)
        .outerjoin(Facility, Facility.id == Instrument.facility_id)
        .outerjoin(Consumable, Consumable.id == UsageItem.consumable_id)
        .outerjoin(consumable_facility, consumable_facility.id == Consumable.facility_id)
        .where(UsageItem.occurred_at >= start)
    )
    return stmt if end is None else stmt.where(UsageItem.occurred_at < end)


def item_line(row: Any, book: RateBook, day: date | None = None) -> Spec:
    item: UsageItem = row.UsageItem
    zone = ZoneInfo(row.timezone)
    local = item.occurred_at.astimezone(zone)
    target = ("consumable", item.consumable_id) if item.consumable_id else (
        "instrument", item.instrument_id)
    rate = book.find(target[0], target[1], row.customer_class_code, item.charge_type,
                     day or local.date())
    unit = row.unit or "sample"
    return {
        "source_key": f"item:{item.id}", "kind": item.charge_type, "charge_type": item.charge_type,
        "team_id": item.team_id, "account_id": item.account_id, "user_id": item.user_id,
        "instrument_id": item.instrument_id, "consumable_id": item.consumable_id,
        "reservation_id": item.reservation_id, "usage_item_id": item.id, "adjustment_id": None,
        "occurred_at": item.occurred_at,
        "description": f"{row.target_name} ({row.target_code}) {local:%Y-%m-%d} "
                       f"{item.quantity.normalize():f} {unit}",
        "quantity": item.quantity, "unit_amount": rate.amount if rate else None,
        "amount": unit_charge(item.quantity, rate.amount if rate else Decimal(0)),
        "rate_id": rate.id if rate else None, "missing_rate": rate is None,
        "explanation": {"customer_class": row.customer_class_code,
                        "charge_type": item.charge_type,
                        "quantity": str(item.quantity.quantize(QUANTITY)),
                        "unit": unit, "note": item.note, **_rate_facts(rate)},
    }


def adjustment_line(adjustment: Adjustment, original: ChargeLine, month: date) -> Spec:
    closed = original.period.closed_at is not None
    return {
        "source_key": f"adjustment:{adjustment.id}", "kind": "adjustment", "charge_type": None,
        "team_id": original.team_id, "account_id": original.account_id,
        "user_id": original.user_id, "instrument_id": original.instrument_id,
        "consumable_id": original.consumable_id, "reservation_id": original.reservation_id,
        "usage_item_id": None, "adjustment_id": adjustment.id,
        "occurred_at": adjustment.decided_at,
        "description": f"Adjustment of line {original.id}: {adjustment.reason}"[:300],
        "quantity": Decimal(1), "unit_amount": adjustment.amount, "amount": adjustment.amount,
        "rate_id": None, "missing_rate": False,
        "explanation": {
            "corrects_line_id": original.id, "corrects_period": f"{original.period.month:%Y-%m}",
            "corrects_description": original.description,
            "original_period_closed": closed, "reason": adjustment.reason,
            "requested_by_id": adjustment.requested_by_id,
            "approved_by_id": adjustment.decided_by_id,
            "landed_in": f"{month:%Y-%m}",
        },
    }


def lines_for_month(month: date, book: RateBook, period_id: int, day: date | None = None,
                    known: dict[str, tuple[int, str | None]] | None = None,
                    ) -> dict[str, Spec | None]:
    """Every line the month's sources produce, keyed by ``source_key``.

    With ``known`` (the period's stored lines: key -> (id, digest)), a session whose
    inputs hash to the digest its stored lines carry is not priced again: its keys map to
    None ("unchanged"). Session specs carry that input digest as ``digest``.
    """
    start, end = month_bounds(month)
    specs: dict[str, Spec | None] = {}
    stored = _digests_by_source(known or {})
    money_code = currency()
    for row in db.session.execute(session_query(start, end)):
        digest = session_digest(row, book, day, period_id, money_code)
        source = f"booking:{row.id}"
        if source in stored and stored[source][0] == {digest}:
            specs.update(dict.fromkeys(stored[source][1]))
            continue
        for spec in session_lines(row, book, day, money_code):
            spec["digest"] = digest
            specs[spec["source_key"]] = spec
    for row in db.session.execute(item_query(start, end)):
        spec = item_line(row, book, day)
        specs[spec["source_key"]] = spec
    adjustments = db.session.scalars(
        sa.select(Adjustment).where(Adjustment.period_id == period_id,
                                    Adjustment.state == "approved")
        .options(joinedload(Adjustment.line).joinedload(ChargeLine.period))
    )
    for adjustment in adjustments:
        spec = adjustment_line(adjustment, adjustment.line, month)
        specs[spec["source_key"]] = spec
    for spec in specs.values():
        if spec is not None:
            spec["period_id"] = period_id
    return specs


def _digests_by_source(
    known: dict[str, tuple[int, str | None]],
) -> dict[str, tuple[set[str | None], list[str]]]:
    """Stored booking lines grouped by their source: the digests they carry, their keys."""
    grouped: dict[str, tuple[set[str | None], list[str]]] = {}
    for key, (_line_id, digest) in known.items():
        if key.startswith("booking:"):
            digests, keys = grouped.setdefault(key.rpartition(":")[0], (set(), []))
            digests.add(digest)
            keys.append(key)
    return grouped


def session_digest(row: Any, book: RateBook, day: date | None, period_id: int,
                   money_code: str) -> str:
    """A hash of everything a session's lines are computed from: the row (times, state,
    policy, class, names), the rates in effect, the period, the currency and the pricing
    code's version. Equal digests mean equal lines (``session_lines`` is pure)."""
    rate_day = day or row.start_at.astimezone(ZoneInfo(row.timezone)).date()
    rates = [book.find("instrument", row.instrument_id, row.customer_class_code, kind, rate_day)
             for kind in ("instrument_hour", "assisted_hour", "session")]
    text = repr((tuple(row), rates, period_id, money_code, PRICING_VERSION))
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
