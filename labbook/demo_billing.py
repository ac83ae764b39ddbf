"""Demo billing data (SPEC section 6), so a fresh ``make run`` shows billing at work: invoice
details for the external teams (a Chinese-named start-up among them) and one guest user
each, a billing policy on every instrument, published rates for every instrument x
customer class, a rate change from the 1st of this month and a draft for next month (the
preview page has something to show), consumables with usage, settled sessions in the two
previous months, the month before last closed with numbered statements, last month's
draft statements refreshed and a credit awaiting a decision.

Everything goes through the billing services (validation and audit included) except the
past sessions, which are written as settled rows: the booking rules refuse the past.
Idempotent: each part only adds what is missing; the caller commits.
"""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from labbook.auth.models import User
from labbook.auth.services import create_user, find_user
from labbook.billing.adjustments import request_adjustment
from labbook.billing.closing import close_period
from labbook.billing.items import create_consumable, record_item
from labbook.billing.models import (
    Adjustment, BillingPolicy, ChargeLine, Consumable, Rate, UsageItem,
)
from labbook.billing.money import money
from labbook.billing.periods import (
    centre_zone, current_month, find_period, next_month, previous_month,
)
from labbook.billing.policy import update_policy
from labbook.billing.rates import create_rate
from labbook.billing.statements import refresh_period
from labbook.bookings.models import Booking
from labbook.db import now_utc
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.teams.models import Account
from labbook.teams.services import add_member, create_team, find_team, save_account

CHINESE_TEAM = "杭州微光生物科技有限公司"
# team name -> (invoice title, tax id): filled in where the team has no tax id yet.
INVOICES = {
    "Westlake University Protein Engineering Lab": ("西湖大学", "12330000MB0DEMO03W"),
    CHINESE_TEAM: ("杭州微光生物科技有限公司", "91330106MA2DEMO04Z"),
}
GUESTS = (  # email, name, team, account code used for their sessions
    ("lin.xiaoyu@westlake.example.org", "Lin Xiaoyu",
     "Westlake University Protein Engineering Lab", "PO-WU-2026-0042"),
    ("zhou.hao@nanosense.example.com", "Zhou Hao",
     "NanoSense Microsystems (Hangzhou) Co., Ltd.", "PO-NS-2026-001"),
    ("qian.ming@qiantang.example.com", "Qian Ming",
     "Qiantang Advanced Materials Co., Ltd.", "PO-QAM-2026-117"),
    ("xu.jing@weiguang.example.com", "Xu Jing", CHINESE_TEAM, "PO-WG-2026-008"),
)
HOME_ACCOUNT = "NSFC-62474101"

# Internal price per instrument hour by category; the other classes pay a multiple.
HOURLY = {"SEM": 180, "TEM": 450, "FIB": 520, "XRD": 120, "XPS": 380, "Raman": 150,
          "AFM": 160, "FTIR": 60, "Thermal analysis": 90, "NMR": 300, "PPMS": 260,
          "E-beam lithography": 680, "Mask aligner": 120, "Laser lithography": 220,
          "ALD": 200, "Sputter": 180, "Evaporator": 160, "ICP-RIE": 240, "DRIE": 260,
          "Sequencer": 200, "LC-MS": 320, "Cell sorter": 280, "ICP-MS": 260}
DEFAULT_HOURLY = 100
CLASS_FACTORS = {"internal": Decimal("1"), "external_academic": Decimal("1.5"),
                 "startup": Decimal("1.8"), "industry": Decimal("2.5")}
ASSISTED = {"TEM", "FIB", "XPS", "NMR", "Cell sorter", "LC-MS", "E-beam lithography"}
ASSIST_SURCHARGE = 150
SESSION_FEES = {"SBC-SEQ-01": 800}  # per run (flow cell and reagents), internal
RATE_CHANGE = ("EMC-SEM-01", Decimal("1.10"), "Detector upgrade: new rate card")
DRAFT_CHANGE = ("EMC-TEM-01", Decimal("1.08"), "Proposed: service contract renewal")

# (basis, increment, minimum) cycled over the instruments; fractions and the cap by code.
POLICY_CYCLE = (("booked", 15, 0), ("actual", 15, 15), ("max", 30, 30), ("booked", 30, 60),
                ("actual", 60, 60), ("max", 15, 30))
POLICY_EXTRA = {
    "MCL-TGA-01": {"session_cap": {"from": "18:00", "to": "08:00", "max_minutes": 480}},
    "SBC-SEQ-01": {"late_cancel_fraction": "1", "no_show_fraction": "1"},
    "MCL-FTIR-01": {"late_cancel_fraction": "0", "no_show_fraction": "0.5"},
    "BPP-FER-01": {"late_cancel_fraction": "0.75"},
    "SBC-FCM-01": {"late_cancel_fraction": "0.25"},
}

CONSUMABLES = (  # code, facility, name, Chinese name, unit, internal unit price
    ("NFC-WAF-SI100", "NFC", "Silicon wafer, 100 mm prime", "100 毫米硅片", "piece", "85.00"),
    ("NFC-PR-AZ5214", "NFC", "Photoresist AZ 5214E", "光刻胶 AZ 5214E", "mL", "6.50"),
    ("EMC-TEM-GRID", "EMC", "TEM grid, Cu 300 mesh", "铜网（300 目）", "piece", "12.00"),
    ("EMC-LN2", "EMC", "Liquid nitrogen", "液氮", "L", "4.00"),
)
ITEMS = (  # months back, day, consumable, account, quantity, note
    (2, 10, "NFC-WAF-SI100", "PO-NS-2026-001", "6", "MEMS run 3"),
    (2, 20, "EMC-TEM-GRID", "PO-WU-2026-0042", "10", ""),
    (1, 8, "NFC-WAF-SI100", HOME_ACCOUNT, "4", "Gate-oxide test wafers"),
    (1, 15, "NFC-PR-AZ5214", "PO-NS-2026-001", "25", ""),
    (1, 21, "EMC-LN2", "PO-QAM-2026-117", "30", "Cryo-stage cooling"),
)
# email, asset code, months back, day, local start, minutes, state, in/out shift, assisted
SESSIONS = (
    ("researcher@example.org", "EMC-SEM-01", 2, 3, time(9), 120, "completed", (0, -20), False),
    ("lead@example.org", "EMC-TEM-01", 2, 8, time(9), 240, "completed", (5, 30), True),
    (GUESTS[0][0], "SBC-CLSM-01", 2, 10, time(14), 180, "completed", (0, 0), False),
    (GUESTS[1][0], "NFC-EBL-01", 2, 14, time(10), 300, "completed", (0, 45), False),
    (GUESTS[2][0], "MCL-XPS-01", 2, 17, time(9), 240, "completed", (10, 0), True),
    ("researcher@example.org", "EMC-SEM-02", 2, 22, time(13), 90, "no_show", None, False),
    (GUESTS[3][0], "SBC-SEQ-01", 2, 24, time(9), 720, "completed", (0, 0), False),
    ("researcher@example.org", "EMC-SEM-01", 1, 6, time(9), 180, "completed", (0, 10), False),
    ("lead@example.org", "EMC-FIB-01", 1, 9, time(10), 240, "completed", (0, -60), True),
    (GUESTS[0][0], "SBC-FCM-01", 1, 12, time(14), 120, "late_cancel", None, False),
    (GUESTS[1][0], "NFC-ICP-01", 1, 14, time(9), 90, "completed", (0, 7), False),
    (GUESTS[2][0], "MCL-TGA-01", 1, 16, time(18), 840, "completed", (0, 0), False),
    (GUESTS[2][0], "MCL-XRD-01", 1, 20, time(9), 150, "completed", (0, -35), False),
    (GUESTS[3][0], "SBC-SEQ-01", 1, 22, time(9), 720, "completed", (0, 0), False),
    ("researcher@example.org", "MCL-FTIR-01", 1, 27, time(15), 60, "no_show", None, False),
)
CREDIT_REASON = "Beam drifted during the first hour; credit a quarter of the session."


def _months_back(n: int, now: datetime) -> date:
    month = current_month(now)
    for _ in range(n):
        month = previous_month(month)
    return month


def _workday(month: date, day: int) -> date:
    """``day`` of ``month``, moved on to the next weekday when it falls on a weekend."""
    found = month.replace(day=day)
    while found.weekday() >= 5:
        found += timedelta(days=1)
    return found


def _instruments() -> dict[str, Instrument]:
    return {i.asset_code: i for i in db.session.scalars(sa.select(Instrument))}


def _account(code: str) -> Account:
    found = db.session.scalar(sa.select(Account).where(Account.code == code))
    assert found is not None, code
    return found


def ensure_billing(users: dict[str, User], created: Counter, now: datetime | None = None) -> None:
    """Seed every part of the billing demo that is missing. Adds the external guests to
    ``users`` (so the caller's clean-up of demo mail covers them too).

    :raises labbook.errors.LabbookError: when existing data clashes with the demo data.
    """
    now = now or now_utc()
    _ensure_invoicing(users, created)
    instruments = _instruments()
    _ensure_policies(instruments, created)
    _ensure_rates(instruments, users["finance@example.org"], now, created)
    _ensure_consumables(users["finance@example.org"], created)
    _ensure_sessions(users, instruments, now, created)
    _ensure_items(users["manager@example.org"], now, created)
    closed = _months_back(2, now)
    period = find_period(closed)
    if period is None or period.closed_at is None:
        close_period(users["finance@example.org"], closed, force=True, now=now)
        created["closed billing periods"] += 1
    refresh_period(_months_back(1, now), now)
    _ensure_credit(users["lead@example.org"], now, created)


def _ensure_invoicing(users: dict[str, User], created: Counter) -> None:
    """The Chinese-named start-up, invoice details where missing, one guest per team."""
    if find_team(CHINESE_TEAM) is None:
        team = create_team(None, {"name": CHINESE_TEAM, "customer_class_code": "startup"})
        save_account(None, team, {"code": "PO-WG-2026-008", "name": "微光生物 PO 2026-008",
                                  "kind": "purchase_order", "valid_from": date(2026, 1, 1),
                                  "valid_until": date(2026, 12, 31), "spending_limit": "40000"})
        created["teams"] += 1
        created["accounts"] += 1
    for name, (title, tax_id) in INVOICES.items():
        team = find_team(name)
        if team is not None and team.tax_id is None:
            team.invoice_title, team.tax_id = title, tax_id
    from labbook.demo import DEMO_PASSWORD

    for email, name, team_name, _code in GUESTS:
        user = find_user(email)
        if user is None:
            user = create_user(None, email, name, DEMO_PASSWORD, ("researcher",))
            add_member(None, find_team(team_name), user)
            created["users"] += 1
        users[email] = user
    db.session.flush()


def _ensure_policies(instruments: dict[str, Instrument], created: Counter) -> None:
    have = set(db.session.scalars(sa.select(BillingPolicy.instrument_id)))
    for n, code in enumerate(sorted(instruments)):
        instrument = instruments[code]
        if instrument.id in have:
            continue
        basis, increment, minimum = POLICY_CYCLE[n % len(POLICY_CYCLE)]
        update_policy(None, instrument, {
            "billing_basis": basis, "billing_increment_minutes": increment,
            "minimum_charge_minutes": minimum, **POLICY_EXTRA.get(code, {})})
        created["billing policies"] += 1


def _price(base: int | Decimal, klass: str, factor: Decimal = Decimal(1)) -> str:
    return str(money(Decimal(base) * CLASS_FACTORS[klass] * factor))


def _card(instrument: Instrument) -> dict[str, int]:
    """Internal amounts per charge type for one instrument."""
    hourly = HOURLY.get(instrument.category, DEFAULT_HOURLY)
    card = {"instrument_hour": hourly}
    if instrument.category in ASSISTED:
        card["assisted_hour"] = hourly + ASSIST_SURCHARGE
    if instrument.asset_code in SESSION_FEES:
        card["session"] = SESSION_FEES[instrument.asset_code]
    return card


def _ensure_rates(instruments: dict[str, Instrument], finance: User, now: datetime,
                  created: Counter) -> None:
    """Published rates from 1 January of the year before last month's, for every instrument
    x class; the rate change from this month; the draft from next month."""
    if db.session.scalar(sa.select(Rate.id).where(Rate.instrument_id.is_not(None)).limit(1)):
        return
    since = _months_back(2, now).replace(month=1, day=1)
    for code in sorted(instruments):
        instrument = instruments[code]
        for charge_type, base in _card(instrument).items():
            for klass in CLASS_FACTORS:
                create_rate(finance, {
                    "instrument_id": instrument.id, "customer_class": klass,
                    "charge_type": charge_type, "amount": _price(base, klass),
                    "effective_from": since, "note": "Rate card"}, publish=True, now=now)
                created["rates"] += 1
    for (code, factor, note), day, publish in (
            (RATE_CHANGE, current_month(now), True),
            (DRAFT_CHANGE, next_month(current_month(now)), False)):
        base = _card(instruments[code])["instrument_hour"]
        for klass in CLASS_FACTORS:
            create_rate(finance, {
                "instrument_id": instruments[code].id, "customer_class": klass,
                "charge_type": "instrument_hour", "amount": _price(base, klass, factor),
                "effective_from": day, "note": note}, publish=publish, now=now)
            created["rates"] += 1


def _ensure_consumables(finance: User, created: Counter) -> None:
    from labbook.instruments.models import Facility

    facilities = {f.code: f.id for f in db.session.scalars(sa.select(Facility))}
    since = date(2026, 1, 1)
    for code, facility, name, name_zh, unit, price in CONSUMABLES:
        if db.session.scalar(sa.select(Consumable.id).where(Consumable.code == code)):
            continue
        consumable = create_consumable(finance, {
            "code": code, "name": name, "name_zh": name_zh, "unit": unit,
            "facility_id": facilities[facility]})
        for klass in CLASS_FACTORS:
            factor = Decimal(1) if klass == "internal" else Decimal("1.2")
            create_rate(finance, {
                "consumable_id": consumable.id, "customer_class": klass, "charge_type": "unit",
                "amount": str(money(Decimal(price) * factor)), "effective_from": since,
                "note": "At cost" if klass == "internal" else "Cost + 20 %"}, publish=True)
            created["rates"] += 1
        created["consumables"] += 1


def _session_account(email: str) -> Account:
    codes = {guest[0]: guest[3] for guest in GUESTS}
    return _account(codes.get(email, HOME_ACCOUNT))


def _ensure_sessions(users: dict[str, User], instruments: dict[str, Instrument],
                     now: datetime, created: Counter) -> None:
    """Settled sessions in the two months before this one; skipped once any exist."""
    first = datetime.combine(_months_back(2, now), time(0), tzinfo=centre_zone())
    ids = [users[row[0]].id for row in SESSIONS]
    if db.session.scalar(sa.select(Booking.id).where(
            Booking.user_id.in_(ids), Booking.start_at >= first,
            Booking.start_at < datetime.combine(current_month(now), time(0),
                                                tzinfo=centre_zone())).limit(1)):
        return
    for row in SESSIONS:
        db.session.add(_settled(row, users, instruments, now))
        created["past sessions"] += 1
    db.session.flush()


def _settled(row: tuple, users: dict[str, User], instruments: dict[str, Instrument],
             now: datetime) -> Booking:
    email, code, back, day, start, minutes, outcome, shift, assisted = row
    instrument, user, account = instruments[code], users[email], _session_account(email)
    zone = centre_zone()
    begin = datetime.combine(_workday(_months_back(back, now), day), start, tzinfo=zone)
    end = begin + timedelta(minutes=minutes)
    values: dict[str, Any] = {"state": outcome}
    if shift is not None:
        values.update(checked_in_at=begin + timedelta(minutes=shift[0]),
                      checked_out_at=end + timedelta(minutes=shift[1]))
    if outcome == "late_cancel":
        values.update(state="cancelled", late_cancel=True, state_reason="Sample not ready",
                      state_changed_at=begin - timedelta(hours=3), state_changed_by_id=user.id)
    return Booking(instrument_id=instrument.id, user_id=user.id, team_id=account.team_id,
                   account_id=account.id, start_at=begin, end_at=end,
                   block_end=end + timedelta(minutes=instrument.buffer_minutes),
                   buffer_minutes=instrument.buffer_minutes, assisted=assisted,
                   purpose="Demo session", created_by_id=user.id, **values)


def _ensure_items(manager: User, now: datetime, created: Counter) -> None:
    """Consumables sold to teams in the two previous months (recorded by the manager of
    both facilities); skipped once any exist."""
    if db.session.scalar(sa.select(UsageItem.id).limit(1)) is not None:
        return
    consumables = {c.code: c.id for c in db.session.scalars(sa.select(Consumable))}
    for back, day, code, account, quantity, note in ITEMS:
        occurred = datetime.combine(_workday(_months_back(back, now), day), time(11),
                                    tzinfo=centre_zone())
        record_item(manager, {"consumable_id": consumables[code],
                              "account_id": _account(account).id, "quantity": quantity,
                              "occurred_at": occurred, "note": note})
        created["usage items"] += 1


def _ensure_credit(lead: User, now: datetime, created: Counter) -> None:
    """A credit the home team's lead asks for on last month's first home-team session,
    left pending for finance or the facility manager to decide."""
    if db.session.scalar(sa.select(Adjustment.id).limit(1)) is not None:
        return
    period = find_period(_months_back(1, now))
    line = period and db.session.scalar(
        sa.select(ChargeLine).where(
            ChargeLine.period_id == period.id, ChargeLine.kind == "time",
            ChargeLine.account_id == _account(HOME_ACCOUNT).id, ChargeLine.amount > 0,
        ).order_by(ChargeLine.occurred_at).limit(1))
    if not line:
        return
    request_adjustment(lead, line, str(-money(line.amount / 4)), CREDIT_REASON, now=now)
    created["adjustments"] += 1
