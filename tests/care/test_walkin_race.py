"""Walk-ins racing bookings and each other on a fresh, really committed database (both
backends; on PostgreSQL the racers queue on the instrument's advisory lock with the
exclusion constraint behind it). Exactly one wins; the rest are refused; no overlap."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import sqlalchemy as sa

from labbook.auth.models import User
from labbook.bookings import services
from labbook.bookings.errors import BookingConflict, BookingRefused
from labbook.bookings.models import ACTIVE_STATES, Reservation
from labbook.care import walkin
from labbook.extensions import db
from labbook.instruments.models import Instrument
from tests.bookings.conftest import Committed, build_scene, committed  # noqa: F401

UTC = timezone.utc
NOW = datetime(2030, 1, 7, 2, 7, 12, tzinfo=UTC)  # Monday 10:07:12 in Shanghai
SLOT = datetime(2030, 1, 7, 2, 15, tzinfo=UTC)  # the next slot boundary
ROUNDS = 3
WALKERS = 8


def race(committed: Committed, acts: list[Callable[[], Any]]) -> list[Any]:  # noqa: F811
    """Run each act in its own thread, app context and session, released together; each
    result is what the act returned (committed) or the exception it raised (rolled back)."""
    barrier = threading.Barrier(len(acts))
    results: list[Any] = [None] * len(acts)

    def runner(i: int) -> None:
        def work() -> Any:
            barrier.wait(timeout=30)
            return acts[i]()

        try:
            results[i] = committed.run(work)
        except Exception as error:  # noqa: BLE001 - the result to check
            results[i] = error

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(len(acts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results


def walk_in(user_id: int, instrument_id: int) -> Callable[[], Any]:
    def act() -> Any:
        user, instrument = db.session.get(User, user_id), db.session.get(Instrument, instrument_id)
        return walkin.start_walk_in(user, instrument, minutes=60, now=NOW).id
    return act


def book(user_id: int, instrument_id: int) -> Callable[[], Any]:
    def act() -> Any:
        user, instrument = db.session.get(User, user_id), db.session.get(Instrument, instrument_id)
        return services.create_booking(user, instrument, SLOT, SLOT + timedelta(hours=1),
                                       now=NOW).id
    return act


def holders(committed: Committed, instrument_id: int) -> list[tuple[datetime, datetime]]:  # noqa
    def work() -> list[tuple[datetime, datetime]]:
        rows = db.session.scalars(sa.select(Reservation).where(
            Reservation.instrument_id == instrument_id, Reservation.state.in_(ACTIVE_STATES)
        ).order_by(Reservation.start_at)).all()
        return [(r.start_at, r.block_end) for r in rows]
    return committed.run(work)


def assert_no_overlap(spans: list[tuple[datetime, datetime]]) -> None:
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start


def test_walk_in_races_a_booking_exactly_one_wins(committed) -> None:  # noqa: F811
    for _ in range(ROUNDS):
        scene = build_scene(committed, 2, buffer_minutes=0)
        walker, booker = scene.booker_ids
        results = race(committed, [walk_in(walker, scene.instrument_id),
                                   book(booker, scene.instrument_id)])
        wins = [r for r in results if isinstance(r, int)]
        assert len(wins) == 1, results
        loser = next(r for r in results if not isinstance(r, int))
        assert isinstance(loser, BookingConflict), repr(loser)
        spans = holders(committed, scene.instrument_id)
        assert len(spans) == 1
        assert_no_overlap(spans)


def test_walk_ins_race_each_other_exactly_one_wins(committed) -> None:  # noqa: F811
    scene = build_scene(committed, WALKERS, buffer_minutes=15)
    results = race(committed, [walk_in(u, scene.instrument_id) for u in scene.booker_ids])
    wins = [r for r in results if isinstance(r, int)]
    assert len(wins) == 1, results
    for loser in (r for r in results if not isinstance(r, int)):
        assert isinstance(loser, (BookingConflict, BookingRefused)), repr(loser)
    spans = holders(committed, scene.instrument_id)
    assert len(spans) == 1 and spans[0][0] == NOW
