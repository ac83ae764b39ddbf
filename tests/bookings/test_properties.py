"""Property-based test of the booking engine (issue 3): random sequences of create, cancel,
reschedule, approve and outage on one instrument never leave overlapping slot holders,
never leave a slot-holding booking outside the policy's shape, and move states only along
the allowed transitions.

Every step is also checked against a plain Python model that predicts its exact outcome
(won; refused, naming which rule; forbidden; conflict), so a wrong refusal fails the test
just as a wrong acceptance does, and the database must equal the model after each step.
Each step runs like a request: its own app context and session, one commit (or a
rollback on refusal), on a fresh committed database of each backend.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from labbook.auth.models import User
from labbook.bookings import services, slots
from labbook.bookings.errors import BookingConflict, BookingRefused, NotAllowed
from labbook.bookings.models import ACTIVE_STATES, Booking, Outage, Reservation
from labbook.extensions import db
from labbook.instruments.models import Instrument
from tests import factories
from tests.bookings.conftest import Committed

UTC = timezone.utc
ZONE = ZoneInfo("Asia/Shanghai")
MIN = timedelta(minutes=1)
STEP = 15 * MIN
BUFFER = 15 * MIN
# Monday 2030-01-07 07:00 in Asia/Shanghai (Sunday 23:00 UTC); 48 grid steps to 19:00.
DAY0 = datetime(2030, 1, 6, 23, 0, tzinfo=UTC)
NOW = DAY0 - timedelta(days=7)
STAFFED = (DAY0 + 90 * MIN, DAY0 + 630 * MIN)  # the factories' 08:30-17:30 on weekdays
POLICY = {"slot_minutes": 15, "min_minutes": 30, "max_minutes": 120, "buffer_minutes": 15,
          "requires_approval": True}
# SPEC section 2, plus confirmed -> pending: an owner's change needs approval again.
ALLOWED = {
    "pending": {"confirmed", "rejected", "cancelled", "expired"},
    "confirmed": {"in_use", "cancelled", "no_show", "pending"},
    "in_use": {"completed"},
}
ACTORS = st.sampled_from(("basic", "advanced", "manager"))
SLOTS = st.integers(0, 47)
LENGTHS = st.integers(0, 10)  # grid steps: 0 to 150 minutes (min 30, max 120)
SHIFTS = st.sampled_from((0, 0, 0, 5))  # minutes off the grid
SETTINGS = settings(max_examples=20, stateful_step_count=25, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
Span = tuple[datetime, datetime]


@dataclass
class Held:
    """The model of one row: what the database must say about it."""

    kind: str
    start: datetime
    end: datetime
    state: str
    owner: str | None = None

    @property
    def block(self) -> Span:
        return (self.start, self.end + (BUFFER if self.kind == "booking" else timedelta()))


def meets(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def span(slot: int, length: int, shift: int) -> Span:
    start = DAY0 + slot * STEP + shift * MIN
    return start, start + length * STEP


def shape_rule(start: datetime, end: datetime) -> str | None:
    """The shape rule a request breaks (in the engine's order), computed independently."""
    minutes = (end - start) / MIN
    if end <= start:
        return "end_after_start"
    if not (on_grid(start) and on_grid(end)):
        return "granularity"
    if minutes < POLICY["min_minutes"]:
        return "min_duration"
    if minutes > POLICY["max_minutes"]:
        return "max_duration"
    return None


def on_grid(moment: datetime) -> bool:
    local = moment.astimezone(ZONE)
    return local.minute % POLICY["slot_minutes"] == 0 and not local.second + local.microsecond


def schedule_outage(instrument_id: int, start: datetime, end: datetime) -> int:
    """Schedule an outage the way services write slot holders (lock, check, insert).

    :raises BookingConflict: when the time is taken."""
    slots.lock_instrument(instrument_id)
    if slots.overlapping(instrument_id, start, end):
        raise BookingConflict("taken", [], [])
    outage = Outage(instrument_id=instrument_id, start_at=start, end_at=end, block_end=end,
                    state="scheduled", outage_kind="preventive", title="maintenance")
    db.session.add(outage)
    db.session.flush()
    return outage.id


def setup_scene(committed: Committed) -> tuple[int, dict[str, int]]:
    """A new instrument with POLICY; a basic and an advanced booker and a manager (with a
    team, so the manager can book too). Returns the instrument id and user ids by role."""

    def work() -> tuple[int, dict[str, int]]:
        instrument = factories.make_instrument(**POLICY)
        basic = factories.make_booker(instrument, level="basic")
        advanced = factories.make_booker(instrument, level="advanced")
        manager = factories.make_user_with_role("facility_manager",
                                                facility=instrument.facility)
        team = factories.make_team()
        factories.add_member(team, manager)
        factories.make_account(team=team, is_default=True, spending_limit=None)
        return instrument.id, {"basic": basic.id, "advanced": advanced.id,
                               "manager": manager.id}

    return committed.run(work)


class BookingMachine(RuleBasedStateMachine):
    bookings = Bundle("bookings")

    def __init__(self, committed: Committed) -> None:
        super().__init__()
        self.committed = committed
        self.instrument_id, self.users = setup_scene(committed)
        self.model: dict[int, Held] = {}
        self.seen: dict[int, str] = {}

    # -- running one step like a request -----------------------------------------------

    def attempt(self, work: Callable[[], Any]) -> tuple[tuple[str, ...], Any]:
        """Run ``work`` in its own app context; commit on success, roll back on refusal.
        Returns the outcome as ``("ok",)``, ``("refused", rule)``, ``("forbidden", rule)``
        or ``("conflict",)``, and what ``work`` returned. Anything else fails the test."""
        with self.committed.app.app_context():
            try:
                value = work()
                db.session.commit()
                return ("ok",), value
            except BookingConflict:
                outcome: tuple[str, ...] = ("conflict",)
            except BookingRefused as error:
                outcome = ("refused", error.rule)
            except NotAllowed as error:
                outcome = ("forbidden", error.rule)
            db.session.rollback()
            return outcome, None

    def user(self, actor: str) -> User:
        return db.session.get(User, self.users[actor])

    def instrument(self) -> Instrument:
        return db.session.get(Instrument, self.instrument_id)

    def clashes(self, block: Span, exclude: int | None = None) -> bool:
        return any(meets(block, held.block) for key, held in self.model.items()
                   if key != exclude and held.state in ACTIVE_STATES)

    def expected_hold(self, actor: str, owner: str, start: datetime, end: datetime,
                      exclude: int | None = None) -> tuple[str, ...]:
        """What asking for [start, end) must give: the policy first, then the overlap."""
        rule_broken = shape_rule(start, end)
        if rule_broken:
            return ("refused", rule_broken)
        staffed = STAFFED[0] <= start and end <= STAFFED[1]
        if actor != "manager" and owner == "basic" and not staffed:
            return ("refused", "staffed_hours")
        if self.clashes((start, end + BUFFER), exclude):
            return ("conflict",)
        return ("ok",)

    # -- the operations ------------------------------------------------------------------

    @rule(target=bookings, actor=ACTORS, slot=SLOTS, length=LENGTHS, shift=SHIFTS)
    def create(self, actor: str, slot: int, length: int, shift: int):  # type: ignore
        start, end = span(slot, length, shift)
        expected = self.expected_hold(actor, actor, start, end)
        outcome, booking_id = self.attempt(lambda: services.create_booking(
            self.user(actor), self.instrument(), start, end, purpose="p", now=NOW).id)
        assert outcome == expected, (actor, start, end)
        if outcome != ("ok",):
            return multiple()
        state = "confirmed" if actor == "manager" else "pending"
        self.model[booking_id] = Held("booking", start, end, state, actor)
        return booking_id

    @rule(booking_id=bookings, actor=ACTORS)
    def cancel(self, booking_id: int, actor: str) -> None:
        held = self.model[booking_id]
        if actor not in ("manager", held.owner):
            expected: tuple[str, ...] = ("forbidden", "owner")
        elif held.state not in ("pending", "confirmed"):
            expected = ("refused", "state")
        else:
            expected = ("ok",)
        outcome, _ = self.attempt(lambda: services.cancel_booking(
            self.user(actor), db.session.get(Booking, booking_id), "changed plans", now=NOW))
        assert outcome == expected, (actor, held)
        if outcome == ("ok",):
            held.state = "cancelled"

    @rule(booking_id=bookings, actor=ACTORS)
    def approve(self, booking_id: int, actor: str) -> None:
        held = self.model[booking_id]
        if actor != "manager":
            expected: tuple[str, ...] = ("forbidden", "manager")
        elif held.state != "pending":
            expected = ("refused", "state")
        else:
            expected = ("ok",)
        outcome, _ = self.attempt(lambda: services.approve_booking(
            self.user(actor), db.session.get(Booking, booking_id), now=NOW))
        assert outcome == expected, (actor, held)
        if outcome == ("ok",):
            held.state = "confirmed"

    @rule(booking_id=bookings, actor=ACTORS, slot=SLOTS, length=LENGTHS, shift=SHIFTS)
    def reschedule(self, booking_id: int, actor: str, slot: int, length: int,
                   shift: int) -> None:
        held = self.model[booking_id]
        start, end = span(slot, length, shift)
        if actor not in ("manager", held.owner):
            expected: tuple[str, ...] = ("forbidden", "owner")
        elif held.state not in ("pending", "confirmed", "in_use"):
            expected = ("refused", "state")
        else:
            expected = self.expected_hold(actor, held.owner or "", start, end, booking_id)
        outcome, _ = self.attempt(lambda: services.reschedule_booking(
            self.user(actor), db.session.get(Booking, booking_id), start, end, now=NOW))
        assert outcome == expected, (actor, held, start, end)
        if outcome == ("ok",):
            held.start, held.end = start, end
            if held.state == "confirmed" and actor != "manager":
                held.state = "pending"

    @rule(slot=SLOTS, length=st.integers(1, 10))
    def add_outage(self, slot: int, length: int) -> None:
        start, end = span(slot, length, 0)
        expected = ("conflict",) if self.clashes((start, end)) else ("ok",)
        outcome, outage_id = self.attempt(
            lambda: schedule_outage(self.instrument_id, start, end))
        assert outcome == expected, (start, end)
        if outcome == ("ok",):
            self.model[outage_id] = Held("outage", start, end, "scheduled")

    # -- what must hold after every step ---------------------------------------------------

    def rows(self) -> list[Reservation]:
        with self.committed.app.app_context():
            rows = db.session.scalars(sa.select(Reservation).where(
                Reservation.instrument_id == self.instrument_id)).all()
            db.session.expunge_all()
        return list(rows)

    @invariant()
    def database_keeps_the_rules(self) -> None:
        rows = self.rows()
        holders = [r for r in rows if r.state in ACTIVE_STATES]
        for a, b in itertools.combinations(holders, 2):
            assert not meets((a.start_at, a.block_end), (b.start_at, b.block_end)), (a, b)
        for row in holders:
            if row.kind == "booking":
                assert shape_rule(row.start_at, row.end_at) is None, row
                assert row.block_end == row.end_at + BUFFER, row
        for row in rows:
            before = self.seen.get(row.id)
            if before is not None and before != row.state:
                assert row.state in ALLOWED.get(before, set()), (row, before)
            self.seen[row.id] = row.state
        assert {r.id: (r.kind, r.start_at, r.end_at, r.state) for r in rows} == {
            key: (h.kind, h.start, h.end, h.state) for key, h in self.model.items()}


def test_booking_services_random_sequences_keep_the_guarantee(committed):
    run_state_machine_as_test(lambda: BookingMachine(committed), settings=SETTINGS)
