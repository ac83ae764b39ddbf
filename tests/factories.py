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
