"""Draft statements: ``refresh_period`` recomputes an open period's charge lines from
their sources, idempotently (a second run with nothing changed writes nothing), and
``statements_for`` groups a period's lines into one statement per team: subtotal, tax
once on the subtotal (half-up, the team's class rate), total, and per-account subtotals.
A closed period's statements are the frozen ``Statement`` rows (labbook/billing/closing.py).
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal

import sqlalchemy as sa
from psycopg.types.json import Json
from sqlalchemy.orm import joinedload

from labbook.billing import ratebook
from labbook.billing.lines import Spec, lines_for_month
from labbook.billing.lock import PeriodClosed
from labbook.billing.models import (
    Adjustment, BillingPeriod, ChargeLine, CustomerClass, Statement, UsageItem,
)
from labbook.billing.money import currency, tax_on
from labbook.billing.periods import get_period, month_of
from labbook.bookings.models import Reservation
from labbook.db import now_utc
from labbook.extensions import db
from labbook.teams.models import Team

COMPARED = (
    "period_id", "kind", "charge_type", "team_id", "account_id", "user_id", "instrument_id",
    "consumable_id", "reservation_id", "usage_item_id", "adjustment_id", "rate_id",
    "occurred_at", "description", "quantity", "unit_amount", "amount", "missing_rate",
    "explanation",
)


@dataclass
class RefreshResult:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted


def refresh_period(month: date, now: datetime | None = None) -> RefreshResult:
    """Bring the open period's lines in step with their sources.

    :raises PeriodClosed: for a closed period (its lines are frozen).
    """
    period = get_period(month, lock=True)
    if period.closed_at is not None:
        raise PeriodClosed(month)
    existing = stored_lines(period)
    specs = lines_for_month(month, ratebook.load(), period.id, known=existing)
    result = write_lines(period, specs, existing)
    period.refreshed_at = now or now_utc()
    return result


def digest_of(spec: Spec) -> str:
    """A stable hash of a computed line's values. Both sides of a comparison come from
    freshly computed specs, so equal inputs always give equal digests."""
    values = [spec[name] for name in COMPARED]
    text = json.dumps(values, sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _plain(value: object) -> str:
    """One text per value, however it was obtained (``Decimal("1.50")`` from a column and
    ``Decimal("1.5")`` from a form hash the same)."""
    if isinstance(value, Decimal):
        return str(value.normalize())
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    return str(value)


def stored_lines(period: BillingPeriod) -> dict[str, tuple[int, str | None]]:
    """The period's lines as source key -> (id, digest): three columns, no ORM objects."""
    return {key: (line_id, digest) for line_id, key, digest in db.session.execute(
        sa.select(ChargeLine.id, ChargeLine.source_key, ChargeLine.digest)
        .where(ChargeLine.period_id == period.id))}


def write_lines(period: BillingPeriod, specs: dict[str, Spec | None],
                existing: dict[str, tuple[int, str | None]]) -> RefreshResult:
    """Insert, update or remove lines so the period holds exactly ``specs`` (None: a
    stored line known unchanged). Lines whose digest did not change are not touched: a
    second run writes nothing."""
    existing = dict(existing)
    for key, line in _moved_lines(period, set(specs) - set(existing)).items():
        existing[key] = (line.id, None)
    result = RefreshResult()
    inserts, updates = [], []
    for key, spec in specs.items():
        if spec is None:
            continue
        digest = spec.pop("digest", None) or digest_of(spec)
        found = existing.get(key)
        if found is None:
            inserts.append({**spec, "digest": digest})
        elif found[1] != digest:
            updates.append({"id": found[0], **spec, "digest": digest})
    stale_ids = [line_id for key, (line_id, _) in existing.items() if key not in specs]
    stale = list(db.session.scalars(sa.select(ChargeLine).where(
        ChargeLine.id.in_(stale_ids)))) if stale_ids else []
    stale, relocated = _relocate(period, stale)
    result.deleted = drop_lines(stale)
    if updates:
        db.session.execute(sa.update(ChargeLine), updates)
    if inserts:
        insert_lines(inserts)
    result.inserted, result.updated = len(inserts), len(updates) + relocated
    if result.changed:
        db.session.expire_all()
    return result


def insert_lines(rows: list[Spec]) -> None:
    """Insert new lines in bulk (a month's first refresh writes one row per session):
    PostgreSQL's COPY, else one driver-level executemany. Both are several times faster
    than Core's insert of a list of dicts, which processes every value of every row."""
    connection = db.session.connection()
    stamp = now_utc()
    columns = sorted(rows[0])  # every spec has the same keys (not in the same order)
    if connection.dialect.name != "postgresql":
        _executemany(connection, columns, rows, stamp)
        return
    sql = f"COPY charge_lines ({', '.join(columns)}, updated_at) FROM STDIN"
    with connection.connection.driver_connection.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row([*(Json(row[k]) if k == "explanation" else row[k] for k in columns),
                            stamp])


def _executemany(connection: sa.Connection, columns: list[str], rows: list[Spec],
                 stamp: datetime) -> None:
    """The rows (plus ``updated_at``) through the driver's executemany, each value bound by
    its column's own type processing (the UTC timestamps, JSON, decimals), as Core would:
    the processors are looked up once per column instead of once per value."""
    table, dialect = ChargeLine.__table__, connection.dialect
    names = [*columns, "updated_at"]
    if dialect.paramstyle != "qmark":  # not SQLite: Core's own way
        connection.execute(table.insert(), [{**row, "updated_at": stamp} for row in rows])
        return
    binds = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    sql = f"INSERT INTO charge_lines ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    connection.exec_driver_sql(sql, [
        tuple(bind(value) if bind else value
              for bind, value in zip(binds, [*(row[k] for k in columns), stamp]))
        for row in rows
    ])


def _moved_lines(period: BillingPeriod, missing: set[str]) -> dict[str, ChargeLine]:
    """Lines of these sources in another open period (a session moved across months)."""
    if not missing:
        return {}
    elsewhere = db.session.scalars(
        sa.select(ChargeLine.source_key).where(
            ChargeLine.period_id != period.id, ChargeLine.statement_id.is_(None))
    ).all()
    keys = missing.intersection(elsewhere)
    if not keys:
        return {}
    rows = db.session.scalars(sa.select(ChargeLine).where(ChargeLine.source_key.in_(keys)))
    return {line.source_key: line for line in rows}


def _source_moment(line: ChargeLine) -> datetime | None:
    """When the line's session or usage item lies now (None: gone, or an adjustment)."""
    if line.usage_item_id is not None:
        return db.session.scalar(
            sa.select(UsageItem.occurred_at).where(UsageItem.id == line.usage_item_id))
    if line.reservation_id is not None and line.kind != "adjustment":
        return db.session.scalar(
            sa.select(Reservation.start_at).where(Reservation.id == line.reservation_id))
    return None


def _relocate(period: BillingPeriod,
              stale: list[ChargeLine]) -> tuple[list[ChargeLine], int]:
    """Stale lines whose source moved to another open month go there, keeping their id
    (that month's refresh reprices them); whichever month is refreshed first, a moved
    session keeps its line. Returns the lines still to drop and how many moved."""
    keep, moved = [], 0
    for line in stale:
        moment = _source_moment(line)
        month = month_of(moment) if moment is not None else period.month
        if month == period.month:
            keep.append(line)
            continue
        target = get_period(month)
        if target.closed_at is not None:
            keep.append(line)
            continue
        line.period_id = target.id
        line.digest = None  # that month's refresh reprices it
        moved += 1
    if moved:
        db.session.flush()
    return keep, moved


def drop_lines(stale: list[ChargeLine]) -> int:
    """Delete lines whose source no longer charges; a line an adjustment refers to is kept
    at 0.00 so the adjustment still says what it corrected. Returns how many lines
    changed (a line already kept at 0.00 is not counted again: refreshing settles)."""
    if not stale:
        return 0
    referenced = set(db.session.scalars(
        sa.select(Adjustment.line_id).where(Adjustment.line_id.in_([s.id for s in stale]))))
    changed = 0
    for line in stale:
        if line.id in referenced:
            if line.amount != 0:
                line.amount = Decimal(0)
                line.explanation = {**line.explanation, "no_longer_charged": True}
                line.digest = None
                changed += 1
        else:
            db.session.delete(line)
            changed += 1
    db.session.flush()
    return changed


@dataclass
class StatementView:
    """A team's statement for a period: a live draft, or a frozen one (``number`` set)."""

    month: date
    team_id: int
    team_name: str
    customer_class: str
    tax_rate: Decimal
    currency: str
    lines: list[ChargeLine] = field(default_factory=list)
    subtotal: Decimal = Decimal(0)
    tax: Decimal = Decimal(0)
    total: Decimal = Decimal(0)
    number: str | None = None
    invoice_title: str | None = None
    tax_id: str | None = None
    accounts: dict[str, Decimal] = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        return self.number is not None


def period_lines(period: BillingPeriod, team_ids: set[int] | None = None) -> list[ChargeLine]:
    stmt = (sa.select(ChargeLine).where(ChargeLine.period_id == period.id)
            .options(joinedload(ChargeLine.account))
            .order_by(ChargeLine.team_id, ChargeLine.occurred_at, ChargeLine.id))
    if team_ids is not None:
        stmt = stmt.where(ChargeLine.team_id.in_(team_ids))
    return list(db.session.scalars(stmt))


def statements_for(period: BillingPeriod, team_ids: set[int] | None = None) -> list[StatementView]:
    """One view per team with lines in the period (``team_ids`` narrows it), by team name."""
    grouped: dict[int, list[ChargeLine]] = defaultdict(list)
    for line in period_lines(period, team_ids):
        grouped[line.team_id].append(line)
    frozen = {s.team_id: s for s in db.session.scalars(
        sa.select(Statement).where(Statement.period_id == period.id))}
    teams = {t.id: t for t in db.session.scalars(
        sa.select(Team).where(Team.id.in_(set(grouped) | set(frozen))))}
    classes = {c.code: c for c in db.session.scalars(sa.select(CustomerClass))}
    views = []
    for team_id in set(grouped) | set(frozen):
        if team_ids is not None and team_id not in team_ids:
            continue
        lines = grouped.get(team_id, [])
        team = teams[team_id]
        view = (_frozen_view(period, frozen[team_id]) if team_id in frozen
                else _draft_view(period, team, classes[team.customer_class_code], lines))
        view.lines = lines
        view.accounts = _account_subtotals(view.lines)
        views.append(view)
    return sorted(views, key=lambda v: (v.team_name.casefold(), v.team_id))


def _draft_view(period: BillingPeriod, team: Team, klass: CustomerClass,
                lines: list[ChargeLine]) -> StatementView:
    view = StatementView(period.month, team.id, team.name, klass.code, klass.tax_rate,
                         currency(), invoice_title=team.invoice_title, tax_id=team.tax_id)
    view.subtotal = sum((line.amount for line in lines), Decimal(0))
    view.tax = tax_on(view.subtotal, klass.tax_rate)
    view.total = view.subtotal + view.tax
    return view


def _frozen_view(period: BillingPeriod, statement: Statement) -> StatementView:
    return StatementView(
        period.month, statement.team_id, statement.team_name, statement.customer_class_code,
        statement.tax_rate, statement.currency, subtotal=statement.subtotal,
        tax=statement.tax, total=statement.total, number=statement.display_number,
        invoice_title=statement.invoice_title, tax_id=statement.tax_id,
    )


def _account_subtotals(lines: list[ChargeLine]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for line in lines:
        totals[line.account.code] += line.amount
    return dict(sorted(totals.items()))
