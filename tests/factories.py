"""Plain factory functions with overridable defaults. They add and flush; tests commit
when the code under test needs committed rows (the fixture rolls everything back)."""

from __future__ import annotations

import itertools
from datetime import date, time
from decimal import Decimal
from functools import lru_cache
from typing import Any

from werkzeug.security import generate_password_hash

from labbook.auth.models import User, UserRole
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument, OpeningHours, Platform, ResearchField
from labbook.teams.models import Account, Membership, Team

PASSWORD = "correct horse battery"
_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


@lru_cache(maxsize=1)
def _password_hash() -> str:
    # Hashing with scrypt costs ~50 ms; tests share one hash of PASSWORD.
    return generate_password_hash(PASSWORD, method="scrypt")


def make_user(roles: tuple[str, ...] = ("researcher",), **kw: Any) -> User:
    n = _n()
    user = User(
        email=kw.pop("email", f"user{n}@example.org"),
        name=kw.pop("name", f"User {n}"),
        password_hash=kw.pop("password_hash", _password_hash()),
        **kw,
    )
    user.role_rows = [UserRole(role=r) for r in roles]
    db.session.add(user)
    db.session.flush()
    return user


def make_platform(**kw: Any) -> Platform:
    n = _n()
    platform = Platform(code=kw.pop("code", f"plat{n}"), name=kw.pop("name", f"Platform {n}"), **kw)
    db.session.add(platform)
    db.session.flush()
    return platform


def make_field(**kw: Any) -> ResearchField:
    n = _n()
    field = ResearchField(code=kw.pop("code", f"field{n}"), name=kw.pop("name", f"Field {n}"), **kw)
    db.session.add(field)
    db.session.flush()
    return field


def make_facility(platform: Platform | None = None, **kw: Any) -> Facility:
    n = _n()
    facility = Facility(
        platform=platform or make_platform(),
        code=kw.pop("code", f"fac{n}"),
        name=kw.pop("name", f"Facility {n}"),
        location=kw.pop("location", f"Building {n}"),
        timezone=kw.pop("timezone", "Asia/Shanghai"),
        description=kw.pop("description", ""),
        **kw,
    )
    facility.opening_hours = [
        OpeningHours(weekday=d, opens=time(8, 30), closes=time(17, 30)) for d in range(5)
    ]
    db.session.add(facility)
    db.session.flush()
    return facility


def make_instrument(facility: Facility | None = None, **kw: Any) -> Instrument:
    n = _n()
    fields = kw.pop("fields", None)
    fields = list(fields) if fields is not None else [make_field()]
    facility = facility or make_facility()
    instrument = Instrument(
        facility=facility,
        name=kw.pop("name", f"Instrument {n}"),
        asset_code=kw.pop("asset_code", f"ASSET-{n:05d}"),
        category=kw.pop("category", "SEM"),
        make=kw.pop("make", "Acme"),
        model=kw.pop("model", f"M{n}"),
        location=kw.pop("location", ""),
        description=kw.pop("description", ""),
        **kw,
    )
    instrument.fields = fields
    db.session.add(instrument)
    db.session.flush()
    return instrument


def make_team(customer_class: str = "internal", **kw: Any) -> Team:
    n = _n()
    team = Team(name=kw.pop("name", f"Team {n}"), customer_class_code=customer_class, **kw)
    db.session.add(team)
    db.session.flush()
    return team


def make_account(team: Team | None = None, **kw: Any) -> Account:
    n = _n()
    account = Account(
        team=team or make_team(),
        code=kw.pop("code", f"ACC-{n:05d}"),
        name=kw.pop("name", f"Account {n}"),
        kind=kw.pop("kind", "cost_centre"),
        valid_from=kw.pop("valid_from", date(2026, 1, 1)),
        valid_until=kw.pop("valid_until", None),
        spending_limit=kw.pop("spending_limit", Decimal("100000.00")),
        **kw,
    )
    db.session.add(account)
    db.session.flush()
    return account


def add_member(team: Team, user: User, is_lead: bool = False) -> Membership:
    membership = Membership(team=team, user=user, is_lead=is_lead)
    db.session.add(membership)
    db.session.flush()
    return membership


def make_user_with_role(role: str | None, **kw: Any) -> User:
    """A user holding ``role`` with a sensible scope: a facility manager manages a new
    facility (or ``facility=``), a team lead leads a new team (or ``team=``), a researcher
    belongs to a new team (or ``team=``)."""
    facility = kw.pop("facility", None)
    team = kw.pop("team", None)
    user = make_user(roles=(role,) if role else (), **kw)
    if role == "facility_manager":
        (facility or make_facility()).managers.append(user)
    elif role in ("team_lead", "researcher"):
        add_member(team or make_team(), user, is_lead=role == "team_lead")
    db.session.flush()
    return user


# -- booking engine -----------------------------------------------------------------------


def make_qualification(user: User, instrument: Instrument | None = None, **kw: Any):  # type: ignore
    from labbook.bookings.models import Qualification

    qualification = Qualification(
        user=user,
        instrument=instrument,
        category=kw.pop("category", None),
        level=kw.pop("level", "basic"),
        **kw,
    )
    db.session.add(qualification)
    db.session.flush()
    return qualification


def make_booker(instrument: Instrument, level: str = "basic", **kw: Any) -> User:
    """A researcher in a team with a default account, qualified on ``instrument``."""
    team = kw.pop("team", None) or make_team()
    user = make_user_with_role("researcher", team=team, **kw)
    if team.default_account is None:
        make_account(team=team, is_default=True, valid_from=date(2020, 1, 1), spending_limit=None)
    make_qualification(user, instrument, level=level)
    return user


def make_booking(  # type: ignore[no-untyped-def]
    instrument: Instrument | None = None, user: User | None = None, **kw: Any
):
    """A booking row written directly (no rules), for setting up a scene."""
    from datetime import datetime, timedelta, timezone

    from labbook.bookings.models import Booking

    instrument = instrument or make_instrument()
    user = user or make_booker(instrument)
    account = kw.pop("account", None) or user.memberships[0].team.default_account
    start = kw.pop("start", datetime(2030, 1, 7, 2, 0, tzinfo=timezone.utc))
    end = kw.pop("end", start + timedelta(hours=1))
    buffer = kw.pop("buffer_minutes", instrument.buffer_minutes)
    booking = Booking(
        instrument=instrument,
        user=user,
        team_id=account.team_id,
        account=account,
        start_at=start,
        end_at=end,
        block_end=end + timedelta(minutes=buffer),
        buffer_minutes=buffer,
        state=kw.pop("state", "confirmed"),
        purpose=kw.pop("purpose", ""),
        **kw,
    )
    db.session.add(booking)
    db.session.flush()
    return booking


# -- billing ---------------------------------------------------------------------------------


def make_rate(  # type: ignore[no-untyped-def]
    instrument: Instrument | None = None, amount: str = "100.00", **kw: Any
):
    """A published rate (``published=False`` for a draft) written directly."""
    from datetime import datetime, timezone

    from labbook.billing.models import Rate

    consumable = kw.pop("consumable", None)
    rate = Rate(
        instrument_id=None if consumable else (instrument or make_instrument()).id,
        consumable_id=consumable.id if consumable else None,
        customer_class_code=kw.pop("customer_class", "internal"),
        charge_type=kw.pop("charge_type", "unit" if consumable else "instrument_hour"),
        amount=Decimal(amount),
        effective_from=kw.pop("effective_from", date(2020, 1, 1)),
        published_at=(datetime(2020, 1, 1, tzinfo=timezone.utc)
                      if kw.pop("published", True) else None),
        **kw,
    )
    db.session.add(rate)
    db.session.flush()
    return rate


def make_policy(instrument: Instrument, **kw: Any):  # type: ignore[no-untyped-def]
    """A billing policy row (model column names: basis, increment_minutes, ...)."""
    from labbook.billing.models import BillingPolicy

    policy = BillingPolicy(
        instrument_id=instrument.id, basis=kw.pop("basis", "booked"),
        increment_minutes=kw.pop("increment_minutes", 15),
        minimum_minutes=kw.pop("minimum_minutes", 0),
        late_cancel_fraction=Decimal(kw.pop("late_cancel_fraction", "0.5")),
        no_show_fraction=Decimal(kw.pop("no_show_fraction", "1")), **kw,
    )
    db.session.add(policy)
    db.session.flush()
    return policy


def make_consumable(facility: Facility | None = None, **kw: Any):  # type: ignore
    from labbook.billing.models import Consumable

    n = _n()
    consumable = Consumable(facility_id=(facility or make_facility()).id,
                            code=kw.pop("code", f"CON-{n:05d}"),
                            name=kw.pop("name", f"Consumable {n}"), unit=kw.pop("unit", "piece"),
                            **kw)
    db.session.add(consumable)
    db.session.flush()
    return consumable


def make_item(account: Account, quantity: str = "1", **kw: Any):  # type: ignore
    """A usage item: ``consumable=`` (unit) or ``instrument=`` (sample), at ``occurred_at``."""
    from labbook.billing.models import UsageItem

    consumable = kw.pop("consumable", None)
    instrument = kw.pop("instrument", None)
    item = UsageItem(charge_type="unit" if consumable else "sample",
                     consumable_id=consumable.id if consumable else None,
                     instrument_id=instrument.id if instrument else None,
                     team_id=account.team_id, account_id=account.id,
                     quantity=Decimal(quantity), **kw)
    db.session.add(item)
    db.session.flush()
    return item
