"""Demo data for ZJU-Hangzhou Global Scientific and Technological Innovation Center: the five
research fields, the four platforms, seven facilities, 40+ instruments, teams of every
customer class with accounts, and one login per role.

The catalog's data (fields, platforms, facilities, instruments) is in demo_catalog.py, the
bookings in demo_bookings.py, the billing months in demo_billing.py. Seeding is idempotent:
every row is keyed by its code, email or name and only created when missing, so a second run
adds nothing and changes nothing. Instruments, users, teams and accounts go through the
services (validation and audit included); the caller commits once.
"""
from __future__ import annotations

from collections import Counter, namedtuple
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import date
from typing import Any, TypeVar

import sqlalchemy as sa

from labbook import audit, demo_billing, demo_bookings
from labbook.demo_catalog import (
    CATEGORY_NOTES,
    DEFAULT_NOTE,
    FACILITIES,
    FIELDS,
    INSTRUMENTS,
    PLATFORMS,
    SATURDAY_MORNING,
    WEEKDAYS,
    DemoInstrument,
)
from labbook.auth.models import User
from labbook.auth.services import create_user, find_user
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument, OpeningHours, Platform, ResearchField
from labbook.instruments.services import create_instrument
from labbook.teams.models import Account, Membership, Team
from labbook.teams.services import add_member, create_team, find_team, save_account

T = TypeVar("T")
Progress = Callable[[Sequence[T], str], AbstractContextManager[Iterable[T]]]

DEMO_PASSWORD = "labbook-demo"

DemoUser = namedtuple("DemoUser", "email name roles")


DEMO_USERS = (
    DemoUser("researcher@example.org", "Wang Fang", ("researcher",)),
    DemoUser("lead@example.org", "Prof. Chen Jie", ("researcher", "team_lead")),
    DemoUser("manager@example.org", "Zhao Lei", ("facility_manager",)),
    DemoUser("finance@example.org", "Sun Li", ("finance",)),
    DemoUser("admin@example.org", "Liu Yang", ("admin",)),
)
MANAGED_FACILITIES = ("NFC", "EMC")
HOME_TEAM = "Micro-Nano Devices Group"

TEAMS = (  # name, customer class, invoice title, tax id, (code, name, kind, from, until, limit)
    (HOME_TEAM, "internal", None, None, ("NSFC-62474101", "NSFC General Program 62474101",
                                         "grant", date(2025, 1, 1), date(2028, 12, 31), "400000")),
    ("Synthetic Biology Design Group", "internal", None, None,
     ("ZJKRD-2026C01017", "Zhejiang Key R&D Program 2026C01017", "grant", date(2026, 1, 1),
      date(2027, 12, 31), "250000")),
    ("Westlake University Protein Engineering Lab", "external_academic", "Westlake University",
     None, ("PO-WU-2026-0042", "Westlake PO 2026-0042", "purchase_order", date(2026, 3, 1),
            date(2026, 12, 31), "60000")),
    ("NanoSense Microsystems (Hangzhou) Co., Ltd.", "startup",
     "NanoSense Microsystems (Hangzhou) Co., Ltd.", "91330109MA7DEMO01X",
     ("PO-NS-2026-001", "NanoSense PO 2026-001", "purchase_order", date(2026, 1, 1),
      date(2026, 12, 31), "50000")),
    ("Qiantang Advanced Materials Co., Ltd.", "industry", "Qiantang Advanced Materials Co., Ltd.",
     "91330100MA2DEMO02Y", ("PO-QAM-2026-117", "Qiantang PO 2026-117", "purchase_order",
                            date(2026, 6, 1), None, "120000")),
)


def _no_progress(items: Sequence[T], label: str) -> AbstractContextManager[Iterable[T]]:
    return nullcontext(items)


def _find(model: type, code: str, name: str) -> Any:
    """An existing row with this code or this name (both are unique)."""
    return db.session.scalar(
        sa.select(model).where(sa.or_(model.code == code, model.name == name)).limit(1)
    )


def _ensure_named(model: type, rows: tuple, action: str, created: Counter) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for code, name, name_zh in rows:
        obj = _find(model, code, name)
        if obj is None:
            obj = model(code=code, name=name, name_zh=name_zh)
            db.session.add(obj)
            db.session.flush()
            audit.record(None, action, obj, after={"code": code, "name": name})
            created[model.__tablename__.replace("_", " ")] += 1
        found[code] = obj
    return found


def _ensure_facilities(platforms: dict[str, Platform], created: Counter) -> dict[str, Facility]:
    found: dict[str, Facility] = {}
    for spec in FACILITIES:
        facility = _find(Facility, spec.code, spec.name)
        if facility is None:
            hours = WEEKDAYS + (SATURDAY_MORNING if spec.saturday else ())
            facility = Facility(
                platform=platforms[spec.platform], code=spec.code, name=spec.name,
                name_zh=spec.name_zh, location=spec.location, timezone="Asia/Shanghai",
                description=spec.description,
                opening_hours=[OpeningHours(weekday=d, opens=o, closes=c) for d, o, c in hours],
            )
            db.session.add(facility)
            db.session.flush()
            audit.record(None, "facility.create", facility,
                         after={"code": spec.code, "name": spec.name})
            created["facilities"] += 1
        found[spec.code] = facility
    return found


def instrument_values(spec: DemoInstrument, facility: Facility,
                      fields: dict[str, ResearchField]) -> dict[str, Any]:
    """The typed values ``create_instrument`` takes for one demo instrument."""
    return {
        "asset_code": spec.asset_code, "name": spec.name, "category": spec.category,
        "make": spec.make, "model": spec.model, "status": spec.status,
        "location": f"{facility.location}, room {spec.room}",
        "description": CATEGORY_NOTES.get(spec.category, DEFAULT_NOTE),
        "facility_id": facility.id,
        "field_ids": [fields[code].id for code in spec.fields.split()],
        **spec.policy,
    }


def _ensure_instrument(spec: DemoInstrument, facilities: dict[str, Facility],
                       fields: dict[str, ResearchField], created: Counter) -> None:
    exists = db.session.scalar(
        sa.select(Instrument.id).where(Instrument.asset_code == spec.asset_code)
    )
    if exists is None:
        create_instrument(None, instrument_values(spec, facilities[spec.facility], fields))
        created["instruments"] += 1


def _ensure_teams(created: Counter) -> dict[str, Team]:
    found: dict[str, Team] = {}
    for name, klass, title, tax_id, account in TEAMS:
        team = find_team(name)
        if team is None:
            team = create_team(None, {"name": name, "customer_class_code": klass,
                                      "invoice_title": title, "tax_id": tax_id})
            created["teams"] += 1
        code, label, kind, start, end, limit = account
        if db.session.scalar(sa.select(Account.id).where(Account.code == code)) is None:
            save_account(None, team, {"code": code, "name": label, "kind": kind,
                                      "valid_from": start, "valid_until": end,
                                      "spending_limit": limit})
            created["accounts"] += 1
        found[name] = team
    return found


def _ensure_users(created: Counter) -> dict[str, User]:
    found: dict[str, User] = {}
    for spec in DEMO_USERS:
        user = find_user(spec.email)
        if user is None:
            user = create_user(None, spec.email, spec.name, DEMO_PASSWORD, spec.roles)
            created["users"] += 1
        found[spec.email] = user
    return found


def _ensure_links(users: dict[str, User], teams: dict[str, Team],
                  facilities: dict[str, Facility], created: Counter) -> None:
    """The demo researcher and lead in the home team (the lead leading it), the manager
    managing two facilities. Only missing links are added."""
    home = teams[HOME_TEAM]
    for email, is_lead in (("researcher@example.org", False), ("lead@example.org", True)):
        user = users[email]
        if db.session.get(Membership, (home.id, user.id)) is None:
            add_member(None, home, user, is_lead=is_lead)
            created["memberships"] += 1
    manager = users["manager@example.org"]
    for code in MANAGED_FACILITIES:
        facility = facilities[code]
        if manager not in facility.managers:
            facility.managers.append(manager)
            db.session.flush()
            audit.record(None, "facility.manager", facility, after={"user_id": manager.id})
            created["facility managers"] += 1


def seed_demo(progress: Progress = _no_progress) -> Counter:
    """Create whatever demo data is missing and return how many rows of each kind were
    created (all zero on a second run). ``progress(items, label)`` may wrap the long
    instrument loop in a progress bar. The caller commits.
    :raises labbook.errors.ValidationError: when existing data clashes with the demo data.
    """
    created: Counter = Counter()
    fields = _ensure_named(ResearchField, FIELDS, "field.create", created)
    platforms = _ensure_named(Platform, PLATFORMS, "platform.create", created)
    facilities = _ensure_facilities(platforms, created)
    with progress(INSTRUMENTS, "Instruments") as items:
        for spec in items:
            _ensure_instrument(spec, facilities, fields, created)
    teams = _ensure_teams(created)
    users = _ensure_users(created)
    _ensure_links(users, teams, facilities, created)
    demo_bookings.ensure_qualifications(users, created)
    demo_bookings.ensure_bookings(users, created)
    _ensure_faults(users, created)
    demo_billing.ensure_billing(users, created)
    _discard_demo_mail(users)
    return created


DEMO_FAULTS = {
    "down": "Cold head does not reach base temperature; compressor error E-17.",
    "limited": "Field sweeps above 7 T are unstable; use up to 7 T until serviced.",
}


def _ensure_faults(users: dict[str, User], created: Counter) -> None:
    """The demo's instruments that are down or limited have a fault report saying why
    (their status follows from it)."""
    from labbook.care.faults import report_fault
    from labbook.care.models import FaultReport

    for spec in INSTRUMENTS:
        if spec.status not in DEMO_FAULTS:
            continue
        instrument = db.session.scalar(
            sa.select(Instrument).where(Instrument.asset_code == spec.asset_code))
        if instrument is None or db.session.scalar(
                sa.select(FaultReport.id).where(FaultReport.instrument_id == instrument.id)
                .limit(1)) is not None:
            continue
        severity = "down" if spec.status == "down" else "degraded"
        reporter = users["researcher@example.org"]
        report_fault(reporter, instrument, severity, DEMO_FAULTS[spec.status])
        created["fault reports"] += 1


def _discard_demo_mail(users: dict[str, User]) -> None:
    """The demo people's addresses are fictitious: their bookings' in-app notifications
    stay, their mark for mail is cleared so the outbox starts (and stays) empty."""
    from labbook.notifications.models import Notification

    ids = [user.id for user in users.values()]
    db.session.execute(
        sa.update(Notification)
        .where(Notification.user_id.in_(ids), Notification.mail_pending == sa.true())
        .values(mail_pending=False)
        .execution_options(synchronize_session=False)
    )
