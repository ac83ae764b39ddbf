"""Statement generation against a plain read of the same sessions (SPEC section 6; the
issue's target: generation within 5x the plain ``SELECT``).

On each backend (a temp SQLite file; a throw-away PostgreSQL database when
``LABBOOK_BENCH_DATABASE_URL`` names a server, see bench_catalog.on_each_backend) the demo
is seeded, then ``LABBOOK_BENCH_SESSIONS`` (default 100,000) settled sessions are
bulk-inserted into one month that has no demo data, spread over 500 extra instruments
(with rates for every class and varied billing policies) and 200 extra teams. Measured:

* plain SELECT: every column of the month's booking rows, fetched (best of 3);
* refresh, first run: ``refresh_period(month)`` + commit, inserting one line per charge;
* refresh, second run: the same with nothing changed (writes nothing);
* statements_for: the month's statements (all lines loaded and grouped, per team).

Times are printed with their ratio to the plain SELECT. Nothing here is asserted.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_migrate import upgrade

from bench.bench_catalog import make_app, on_each_backend
from labbook.auth.models import User
from labbook.billing.models import BillingPolicy, ChargeLine, Rate
from labbook.billing.periods import (
    centre_zone, current_month, get_period, month_bounds, previous_month,
)
from labbook.billing.statements import refresh_period, statements_for
from labbook.bookings.models import Reservation
from labbook.demo import seed_demo
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument
from labbook.teams.models import Account, Team

SESSIONS = int(os.environ.get("LABBOOK_BENCH_SESSIONS", "100000"))
INSTRUMENTS = 500
TEAMS = 200
CLASSES = ("internal", "external_academic", "startup", "industry")
BASES = (("booked", 15, 0), ("actual", 15, 15), ("max", 30, 30), ("actual", 60, 60))
CHUNK = 10_000


def bench_month() -> date:
    """Three months back: before the demo's settled sessions, still open."""
    month = current_month()
    for _ in range(3):
        month = previous_month(month)
    return month


def add_instruments() -> list[int]:
    """Extra instruments with a policy and published hour/assisted rates for every class."""
    facilities = db.session.scalars(sa.select(Facility.id).order_by(Facility.id)).all()
    db.session.execute(sa.insert(Instrument), [
        {"facility_id": facilities[n % len(facilities)], "asset_code": f"BILL-{n:04d}",
         "name": f"Billing bench unit {n:04d}", "category": "Bench", "make": "Bench",
         "model": "B", "location": "", "description": "", "status": "available"}
        for n in range(INSTRUMENTS)])
    ids = db.session.scalars(sa.select(Instrument.id).where(
        Instrument.asset_code.like("BILL-%")).order_by(Instrument.id)).all()
    db.session.execute(sa.insert(BillingPolicy), [
        {"instrument_id": iid, "basis": BASES[n % 4][0], "increment_minutes": BASES[n % 4][1],
         "minimum_minutes": BASES[n % 4][2], "late_cancel_fraction": Decimal("0.5"),
         "no_show_fraction": Decimal("1")} for n, iid in enumerate(ids)])
    published = datetime(2020, 1, 1, tzinfo=centre_zone())
    db.session.execute(sa.insert(Rate), [
        {"instrument_id": iid, "customer_class_code": klass, "charge_type": charge_type,
         "amount": Decimal(100 + n % 50) * (c + 1) + extra, "effective_from": date(2020, 1, 1),
         "note": "bench", "published_at": published}
        for n, iid in enumerate(ids) for c, klass in enumerate(CLASSES)
        for charge_type, extra in (("instrument_hour", 0), ("assisted_hour", 80))])
    return list(ids)


def add_teams() -> list[tuple[int, int]]:
    """Extra teams of every class, each with one account valid since 2020: (team, account)."""
    db.session.execute(sa.insert(Team), [
        {"name": f"Bench team {n:03d}", "customer_class_code": CLASSES[n % 4]}
        for n in range(TEAMS)])
    teams = db.session.scalars(sa.select(Team.id).where(
        Team.name.like("Bench team %")).order_by(Team.id)).all()
    db.session.execute(sa.insert(Account), [
        {"team_id": tid, "code": f"BENCH-{tid}", "name": "bench", "kind": "cost_centre",
         "valid_from": date(2020, 1, 1), "is_default": True} for tid in teams])
    return list(db.session.execute(sa.select(Account.team_id, Account.id).where(
        Account.code.like("BENCH-%")).order_by(Account.id)).tuples())


def session_row(n: int, instruments: list[int], accounts: list[tuple[int, int]],
                users: list[int], start: datetime) -> dict[str, Any]:
    """The ``n``-th settled session: per instrument, eight 80-minute slots a day."""
    per_instrument, slot = divmod(n, len(instruments))
    begin = start + timedelta(days=per_instrument // 8, minutes=90 * (per_instrument % 8))
    end = begin + timedelta(minutes=80)
    team_id, account_id = accounts[n % len(accounts)]
    state = "no_show" if n % 10 == 3 else "cancelled" if n % 20 == 7 else "completed"
    done = state == "completed"
    return {
        "kind": "booking", "instrument_id": instruments[slot], "start_at": begin,
        "end_at": end, "block_end": end, "state": state, "user_id": users[n % len(users)],
        "team_id": team_id, "account_id": account_id, "purpose": "bench",
        "assisted": n % 5 == 0, "late_cancel": state == "cancelled", "buffer_minutes": 0,
        "checked_in_at": begin + timedelta(minutes=n % 7) if done else None,
        "checked_out_at": end + timedelta(minutes=(n % 41) - 20) if done else None,
    }


def add_sessions(month: date) -> int:
    instruments, accounts = add_instruments(), add_teams()
    users = db.session.scalars(sa.select(User.id).order_by(User.id)).all()
    start = month_bounds(month)[0]
    table = Reservation.__table__
    for first in range(0, SESSIONS, CHUNK):
        db.session.execute(sa.insert(table), [
            session_row(n, instruments, accounts, users, start)
            for n in range(first, min(first + CHUNK, SESSIONS))])
    db.session.commit()
    return SESSIONS


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def plain_select(month: date) -> int:
    start, end = month_bounds(month)
    rows = db.session.execute(sa.select(Reservation.__table__).where(
        Reservation.kind == "booking", Reservation.start_at >= start,
        Reservation.start_at < end)).all()
    return len(rows)


def refreshed(month: date) -> Any:
    result = refresh_period(month)
    db.session.commit()
    return result


def measure_backend(url: str) -> dict[str, Any]:
    app = make_app(url)
    with app.app_context():
        month = bench_month()
        upgrade()
        seed_demo()
        db.session.commit()
        add_sessions(month)
        select_s, rows = min(timed(lambda: plain_select(month)) for _ in range(3))
        first_s, first = timed(lambda: refreshed(month))
        second_s, second = timed(lambda: refreshed(month))
        period = get_period(month)
        views_s, views = timed(lambda: statements_for(period))
        lines = db.session.scalar(sa.select(sa.func.count()).select_from(ChargeLine).where(
            ChargeLine.period_id == period.id))
        db.session.remove()
        db.engine.dispose()
    table = {
        "plain SELECT (fetch all)": (select_s, f"{rows:,} rows"),
        "refresh, first run": (first_s, f"{first.inserted:,} lines inserted"),
        "refresh, nothing changed": (second_s, f"{second.changed:,} lines changed"),
        "statements_for(period)": (views_s, f"{len(views)} statements"),
    }
    return {"month": f"{month:%Y-%m}", "charge lines": lines, "timings": {
        label: {"seconds": round(seconds, 3), "x SELECT": round(seconds / select_s, 1),
                "result": note} for label, (seconds, note) in table.items()}}


def run() -> dict[str, Any]:
    return on_each_backend(measure_backend)
