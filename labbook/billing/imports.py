"""Usage history imported from another system (SPEC section 6), as CSV, so a centre that
switches to labbook can bill the sessions and consumables it recorded elsewhere.

Columns: ``instrument`` (asset code), ``user`` (email), ``team`` (name), ``account``
(code; empty: the team's default), ``booked_start``, ``booked_end``, ``actual_start``,
``actual_end`` (ISO 8601 with offset; empty where not applicable), ``state``
(``completed``, ``cancelled``, ``no_show``), ``cancelled_at``, ``assisted``
(true/false). A consumable row names a ``consumable`` (code) and a ``quantity`` instead of
an instrument, and its time in ``actual_start``.

All or nothing: every row is checked first and EVERY bad row is reported with its line
number; if any is bad nothing is written. Imported sessions are history (completed,
cancelled, no-show): they do not hold their slot, so the no-overlap exclusion constraint
(which covers only slot-holding states) does not apply to them. A row in a closed billing
period is refused (labbook/billing/lock.py): its charges are frozen.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.billing.lock import PeriodClosed, ensure_open
from labbook.billing.models import Consumable, UsageItem
from labbook.bookings.models import Booking
from labbook.db import now_utc
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.teams.models import Account, Membership, Team

IMPORT_STATES = ("completed", "cancelled", "no_show")
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False,
            "": False}
REQUIRED_COLUMNS = ("user", "team")


@dataclass
class UsageImport:
    """What one import did (also the audit entry's object)."""

    source: str
    dry_run: bool = False
    bookings: int = 0
    items: int = 0
    id: None = None


@dataclass
class Lookups:
    """The file's instruments, users, teams, accounts and consumables, loaded in one
    query each (not one per row)."""

    instruments: dict[str, Instrument] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    consumables: dict[str, Consumable] = field(default_factory=dict)
    members: set[tuple[int, int]] = field(default_factory=set)


def _values(rows: list[dict[str, str]], column: str) -> set[str]:
    return {row[column] for row in rows if row.get(column)}


def load_lookups(rows: list[dict[str, str]]) -> Lookups:
    found = Lookups()
    found.instruments = {i.asset_code: i for i in db.session.scalars(
        sa.select(Instrument).where(Instrument.asset_code.in_(_values(rows, "instrument"))))}
    found.users = {u.email.lower(): u for u in db.session.scalars(
        sa.select(User).where(sa.func.lower(User.email).in_(
            {v.lower() for v in _values(rows, "user")})))}
    found.teams = {t.name: t for t in db.session.scalars(
        sa.select(Team).where(Team.name.in_(_values(rows, "team"))))}
    team_ids = [t.id for t in found.teams.values()]
    found.accounts = {a.code: a for a in db.session.scalars(
        sa.select(Account).where(sa.or_(Account.code.in_(_values(rows, "account")),
                                        Account.team_id.in_(team_ids))))}
    found.consumables = {c.code: c for c in db.session.scalars(
        sa.select(Consumable).where(Consumable.code.in_(_values(rows, "consumable"))))}
    found.members = set(db.session.execute(
        sa.select(Membership.team_id, Membership.user_id).where(
            Membership.team_id.in_(team_ids))).tuples())
    return found


def parse_time(raw: str, column: str, problems: list[str]) -> datetime | None:
    """An ISO 8601 instant with its offset; a problem (not an exception) otherwise."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        problems.append(_("%(column)s is not an ISO 8601 time: %(value)s", column=column,
                          value=raw))
        return None
    if moment.tzinfo is None:
        problems.append(_("%(column)s has no UTC offset (write e.g. 2026-10-05T09:00+08:00)",
                          column=column))
        return None
    return moment


class RowChecker:
    """Checks one row against the lookups; collects its problems, builds its values."""

    def __init__(self, row: dict[str, str], found: Lookups, now: datetime) -> None:
        self.row, self.found, self.now = row, found, now
        self.problems: list[str] = []

    def get(self, column: str) -> str:
        return (self.row.get(column) or "").strip()

    def time(self, column: str) -> datetime | None:
        return parse_time(self.get(column), column, self.problems)

    def who(self) -> tuple[User | None, Team | None, Account | None]:
        user = self.found.users.get(self.get("user").lower())
        team = self.found.teams.get(self.get("team"))
        if user is None:
            self.problems.append(_("unknown user: %(v)s", v=self.get("user")))
        if team is None:
            self.problems.append(_("unknown team: %(v)s", v=self.get("team")))
            return user, None, None
        if user is not None and (team.id, user.id) not in self.found.members:
            self.problems.append(_("%(user)s is not a member of %(team)s",
                                   user=user.email, team=team.name))
        return user, team, self.account(team)

    def account(self, team: Team) -> Account | None:
        code = self.get("account")
        if not code:
            default = next((a for a in self.found.accounts.values()
                            if a.team_id == team.id and a.is_default), None)
            if default is None:
                self.problems.append(_("the team has no default account; name one"))
            return default
        account = self.found.accounts.get(code)
        if account is None:
            self.problems.append(_("unknown account: %(v)s", v=code))
        elif account.team_id != team.id:
            self.problems.append(_("account %(v)s is not the team's", v=code))
            return None
        return account

    def closed(self, *moments: datetime | None) -> None:
        try:
            ensure_open(*moments, now=self.now)
        except PeriodClosed as error:
            self.problems.append(error.message)

    def item(self) -> dict[str, Any] | None:
        user, team, account = self.who()
        consumable = self.found.consumables.get(self.get("consumable"))
        if consumable is None:
            self.problems.append(_("unknown consumable: %(v)s", v=self.get("consumable")))
        quantity = self.quantity()
        occurred = self.time("actual_start")
        if occurred is None and not self.get("actual_start"):
            self.problems.append(_("actual_start (the time of the consumable) is required"))
        self.closed(occurred)
        if self.problems or not (user and account and consumable and occurred and quantity):
            return None
        return {"charge_type": "unit", "consumable_id": consumable.id, "team_id": account.team_id,
                "account_id": account.id, "user_id": user.id, "quantity": quantity,
                "occurred_at": occurred, "note": _("imported")}

    def quantity(self) -> Decimal | None:
        try:
            value = Decimal(self.get("quantity"))
        except InvalidOperation:
            self.problems.append(_("quantity is not a number: %(v)s", v=self.get("quantity")))
            return None
        if not value.is_finite() or value <= 0:
            self.problems.append(_("quantity must be more than 0"))
            return None
        return value

    def booking(self) -> dict[str, Any] | None:
        user, team, account = self.who()
        instrument = self.found.instruments.get(self.get("instrument"))
        if instrument is None:
            self.problems.append(_("unknown instrument: %(v)s", v=self.get("instrument")))
        state = self.get("state")
        if state not in IMPORT_STATES:
            self.problems.append(_("unknown state %(v)s (completed, cancelled or no_show)",
                                   v=state))
        assisted = BOOLEANS.get(self.get("assisted").lower())
        if assisted is None:
            self.problems.append(_("assisted must be true or false"))
        times = self.session_times(state)
        if self.problems or not (user and account and instrument and times):
            return None
        return self.booking_values(instrument, user, account, state, times, bool(assisted))

    def session_times(self, state: str) -> dict[str, datetime | None] | None:
        t = {c: self.time(c) for c in ("booked_start", "booked_end", "actual_start",
                                       "actual_end", "cancelled_at")}
        start, end = t["booked_start"], t["booked_end"]
        if start is None or end is None:
            if not self.get("booked_start") or not self.get("booked_end"):
                self.problems.append(_("booked_start and booked_end are required"))
            return None
        self._order(t)
        if end > self.now:
            self.problems.append(_("the session has not ended: only history can be imported"))
        if state == "completed" and t["actual_start"] is None:
            self.problems.append(_("a completed session needs actual_start"))
        if state == "cancelled" and t["cancelled_at"] is None:
            self.problems.append(_("a cancelled session needs cancelled_at"))
        self.closed(start)
        return t

    def _order(self, t: dict[str, datetime | None]) -> None:
        for first, last in (("booked_start", "booked_end"), ("actual_start", "actual_end")):
            if t[first] is not None and t[last] is not None and t[last] <= t[first]:
                self.problems.append(_("%(end)s is not after %(start)s", end=last, start=first))

    def booking_values(self, instrument: Instrument, user: User, account: Account, state: str,
                       t: dict[str, Any], assisted: bool) -> dict[str, Any]:
        late = False
        if state == "cancelled":
            notice = timedelta(hours=instrument.late_cancel_notice_hours)
            late = t["cancelled_at"] > t["booked_start"] - notice
        return {
            "instrument_id": instrument.id, "user_id": user.id, "team_id": account.team_id,
            "account_id": account.id, "start_at": t["booked_start"], "end_at": t["booked_end"],
            "block_end": t["booked_end"], "buffer_minutes": 0, "state": state,
            "checked_in_at": t["actual_start"], "checked_out_at": t["actual_end"],
            "assisted": assisted, "late_cancel": late,
            "state_changed_at": t["cancelled_at"] if state == "cancelled" else t["booked_end"],
            "purpose": _("imported"),
        }


def read_rows(data: bytes) -> list[dict[str, str]]:
    """The CSV's rows (UTF-8, a BOM allowed).

    :raises ValidationError: for a file that is not UTF-8 CSV with the required columns.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(_("The file is not UTF-8 text.")) from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise ValidationError(_("Missing columns: %(cols)s", cols=", ".join(missing)))
    return list(reader)


def check_rows(rows: list[dict[str, str]], now: datetime
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, list[str]]]:
    """Every row's values (bookings, items) and every bad row's problems by line."""
    found = load_lookups(rows)
    bookings, items, problems = [], [], {}
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        checker = RowChecker(row, found, now)
        is_item = bool(checker.get("consumable"))
        values = checker.item() if is_item else checker.booking()
        if checker.problems:
            problems[_("line %(n)d", n=number)] = checker.problems
        elif values is not None:
            (items if is_item else bookings).append(values)
    return bookings, items, problems


def import_usage(actor: User | None, data: bytes, *, source: str = "",
                 dry_run: bool = False, now: datetime | None = None) -> UsageImport:
    """Check every row, then write them all (or, with any bad row, nothing).

    :raises ValidationError: with ``fields`` = {"line N": [problems]} for every bad row,
        or for an unreadable file or an empty one.
    """
    rows = read_rows(data)
    if not rows:
        raise ValidationError(_("The file has no rows."))
    bookings, items, problems = check_rows(rows, now or now_utc())
    if problems:
        raise ValidationError(
            _("%(n)d of %(total)d rows cannot be imported; nothing was imported.",
              n=len(problems), total=len(rows)), fields=problems)
    result = UsageImport(source, dry_run, len(bookings), len(items))
    if not dry_run:
        _write(actor, bookings, items)
        audit.record(actor, "billing.usage_import", result, after={
            "source": source, "bookings": result.bookings, "items": result.items})
    return result


def _write(actor: User | None, bookings: Iterable[dict[str, Any]],
           items: Iterable[dict[str, Any]]) -> None:
    actor_id = actor.id if actor else None
    for values in bookings:
        db.session.add(Booking(created_by_id=actor_id, **values))
    for values in items:
        db.session.add(UsageItem(created_by_id=actor_id, **values))
    db.session.flush()
