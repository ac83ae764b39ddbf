"""Time on an instrument: locking, overlap queries, busy intervals and nearby free slots.

The no-double-booking guarantee has two layers:

* PostgreSQL: ``lock_instrument`` takes a per-instrument transaction-level advisory lock, so
  concurrent writers for one instrument queue instead of racing (and cannot deadlock on the
  exclusion constraint's index); the exclusion constraint ``ex_reservations_no_overlap`` is
  the backstop that makes an overlap impossible even for a writer that skipped the lock.
* SQLite: every transaction starts with ``BEGIN IMMEDIATE`` (labbook/db.py), so the check
  below and the insert that follows it run under the database's single write lock.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from labbook.bookings.models import ACTIVE_STATES, Reservation
from labbook.extensions import db

LOCK_NAMESPACE = 0x4C42  # "LB": first key of pg_advisory_xact_lock(int, int)
FAR_FUTURE = datetime.max.replace(year=9000)


def lock_instrument(instrument_id: int) -> None:
    """Serialize writers of one instrument until the transaction ends (PostgreSQL only;
    SQLite transactions already hold the database's write lock)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            sa.text("SELECT pg_advisory_xact_lock(:ns, :id)"),
            {"ns": LOCK_NAMESPACE, "id": instrument_id},
        )


def lock_instruments(instrument_ids: Iterable[int]) -> None:
    """Lock several instruments in a fixed order, so two writers never wait on each other."""
    for instrument_id in sorted(set(instrument_ids)):
        lock_instrument(instrument_id)


def overlapping(
    instrument_id: int,
    start: datetime,
    block_end: datetime | None,
    exclude_id: int | None = None,
) -> list[Reservation]:
    """Slot holders whose blocked interval meets ``[start, block_end)`` (None: unbounded)."""
    stmt = sa.select(Reservation).where(
        Reservation.instrument_id == instrument_id,
        # Literal states let SQLite use the partial index ix_reservations_active_span.
        Reservation.state.in_(sa.bindparam("active", ACTIVE_STATES, expanding=True,
                                           literal_execute=True)),
        sa.or_(Reservation.block_end.is_(None), Reservation.block_end > start),
    )
    if block_end is not None:
        stmt = stmt.where(Reservation.start_at < block_end)
    if exclude_id is not None:
        stmt = stmt.where(Reservation.id != exclude_id)
    return list(db.session.scalars(stmt.order_by(Reservation.start_at)))


@dataclass(frozen=True)
class Busy:
    start: datetime
    end: datetime  # FAR_FUTURE-like sentinel for open-ended outages


def busy_intervals(
    instrument_id: int, start: datetime, end: datetime, exclude_id: int | None = None
) -> list[Busy]:
    """Blocked intervals meeting ``[start, end)``, merged where they touch or overlap."""
    rows = overlapping(instrument_id, start, end, exclude_id)
    spans = sorted((r.start_at, r.block_end or _far(start)) for r in rows)
    merged: list[Busy] = []
    for s, e in spans:
        if merged and s <= merged[-1].end:
            if e > merged[-1].end:
                merged[-1] = Busy(merged[-1].start, e)
        else:
            merged.append(Busy(s, e))
    return merged


def _far(reference: datetime) -> datetime:
    return FAR_FUTURE.replace(tzinfo=reference.tzinfo)


def first_blocker(busy: list[Busy], start: datetime, block_end: datetime) -> Busy | None:
    """The (merged, sorted) busy interval that ``[start, block_end)`` runs into, if any."""
    index = bisect.bisect_left([b.start for b in busy], block_end) - 1
    return busy[index] if index >= 0 and busy[index].end > start else None


def is_free(busy: list[Busy], start: datetime, block_end: datetime) -> bool:
    """Whether ``[start, block_end)`` misses every (merged, sorted) busy interval."""
    return first_blocker(busy, start, block_end) is None


def nearest_free(
    busy: list[Busy],
    wanted: datetime,
    length: timedelta,
    buffer: timedelta,
    step: timedelta,
    earliest: datetime,
    latest: datetime,
    acceptable,  # type: ignore[no-untyped-def]  # callable(start, end) -> bool
    count: int = 3,
    max_steps: int = 4 * 24 * 14,
) -> list[tuple[datetime, datetime]]:
    """Up to ``count`` free starts nearest to ``wanted`` (alternating later/earlier by one
    ``step`` at a time), each respecting ``earliest``/``latest`` and ``acceptable``."""
    found: list[tuple[datetime, datetime]] = []
    for k in range(1, max_steps + 1):
        for candidate in (wanted + k * step, wanted - k * step):
            if not earliest <= candidate <= latest:
                continue
            end = candidate + length
            if is_free(busy, candidate, end + buffer) and acceptable(candidate, end):
                found.append((candidate, end))
                if len(found) == count:
                    return sorted(found)
    return sorted(found)
