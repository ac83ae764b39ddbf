"""Which rate applies: the published row with the latest ``effective_from`` on or before
the session's local start day, for the instrument (or consumable), the team's customer
class and the line's charge type. A ``RateBook`` loads the rows once per computation so
pricing a month is one query, not one per line."""
from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from labbook.billing.models import Rate
from labbook.extensions import db

Key = tuple[str, int, str, str]  # ("instrument" | "consumable", id, class code, charge type)
# The column's scale: a rate read back from the database and one still in the session as
# typed ("120.5") must explain a line the same way, or a refresh would never settle.
RATE_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class RateRow:
    id: int
    amount: Decimal
    effective_from: date
    draft: bool


class RateBook:
    def __init__(self, rows: Iterable[Rate]) -> None:
        table: dict[Key, list[RateRow]] = defaultdict(list)
        for rate in rows:
            table[key_of(rate)].append(
                RateRow(rate.id, rate.amount.quantize(RATE_PLACES), rate.effective_from,
                        rate.published_at is None)
            )
        self._days: dict[Key, list[date]] = {}
        self._rows: dict[Key, list[RateRow]] = {}
        for key, found in table.items():
            found.sort(key=lambda r: r.effective_from)
            self._rows[key] = found
            self._days[key] = [r.effective_from for r in found]

    def find(self, target: str, target_id: int, klass: str, charge_type: str,
             day: date) -> RateRow | None:
        key = (target, target_id, klass, charge_type)
        days = self._days.get(key)
        if not days:
            return None
        index = bisect.bisect_right(days, day) - 1
        return self._rows[key][index] if index >= 0 else None

    def has_any(self, target: str, target_id: int, klass: str, charge_type: str) -> bool:
        return bool(self._days.get((target, target_id, klass, charge_type)))


def key_of(rate: Rate) -> Key:
    if rate.instrument_id is not None:
        return ("instrument", rate.instrument_id, rate.customer_class_code, rate.charge_type)
    assert rate.consumable_id is not None
    return ("consumable", rate.consumable_id, rate.customer_class_code, rate.charge_type)


def load(*, include_drafts: bool = False, draft_ids: Iterable[int] = ()) -> RateBook:
    """Every published rate, plus the drafts in ``draft_ids`` (or all drafts)."""
    stmt = sa.select(Rate)
    if not include_drafts:
        ids = list(draft_ids)
        condition = Rate.published_at.is_not(None)
        stmt = stmt.where(sa.or_(condition, Rate.id.in_(ids)) if ids else condition)
    return RateBook(db.session.scalars(stmt))
