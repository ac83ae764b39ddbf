"""The waitlist: wait for a taken interval and be offered it when it frees.

Semantics (kept simple and honest):

* ``join_waitlist``: the request is checked like a booking (shape, window, account,
  qualification, staffed hours, quotas) except for the overlap, and the interval must be
  taken right now by someone else: a free interval should simply be booked. One live
  (waiting or offered) entry per user, instrument and interval.
* ``offer_freed_slots(instrument, now)``: waiting entries are looked at oldest first; each
  whose interval is free again (buffer included) and does not overlap an open offer gets an
  offer that stays open for ``LABBOOK_WAITLIST_HOLD_MINUTES`` (but never past the start of
  the interval). Waiters with disjoint intervals can be offered at the same time; of two
  overlapping ones only the older. Run it whenever time may have freed (a cancellation, a
  declined or expired offer); the scheduler runs ``process_waitlists`` periodically.
* **An offer does not hold the slot.** Nothing is booked until the user accepts: anyone
  may still book the time directly in between. ``accept_offer`` books it through
  ``services.create_booking`` (every rule applies again) if the offer is still open and
  the time still free; otherwise it refuses and writes nothing.
* ``decline_offer`` and ``leave_waitlist`` end the entry and immediately offer the time to
  the next waiter; ``expire_offers(now)`` ends offers whose hold has passed and waiting
  entries whose interval has begun, and returns them, so the scheduler can cascade by
  calling ``offer_freed_slots`` for their instruments.
* The waiter is told of each offer and of an offer that lapsed (labbook/bookings/notices.py).
* Everything is idempotent: offering, expiring, declining, leaving or accepting twice
  changes nothing the second time (accepting again returns the same booking).

Like every service: flush and audit, never commit; the caller commits once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.bookings import notices, rules, services, slots
from labbook.bookings.errors import BookingRefused, NotAllowed
from labbook.bookings.models import Booking, WaitlistEntry
from labbook.db import now_utc
from labbook.extensions import db
from labbook.instruments.models import Instrument

LIVE_STATES = ("waiting", "offered")
AUDITED = ("state", "start_at", "end_at", "offered_at", "offer_expires_at", "booking_id")


def _audit(actor: User | None, action: str, entry: WaitlistEntry, before: str | None) -> None:
    after = audit.snapshot(entry, AUDITED)
    audit.record(actor, f"waitlist.{action}", entry, before={"state": before}, after=after)


def _set_state(entry: WaitlistEntry, state: str, actor: User | None, action: str) -> None:
    before = entry.state
    entry.state = state
    db.session.flush()
    _audit(actor, action, entry, before)


def _block_end(instrument: Instrument, end: datetime) -> datetime:
    return end + timedelta(minutes=instrument.buffer_minutes)


# -- join / leave -------------------------------------------------------------------------------


def _check_taken(instrument: Instrument, user: User, start: datetime, end: datetime) -> None:
    """:raises BookingRefused: when the interval is free, or taken only by the user."""
    holders = slots.overlapping(instrument.id, start, _block_end(instrument, end))
    if not holders:
        raise BookingRefused(
            "waitlist_free", _("This time is free: book it instead of waiting for it.")
        )
    if all(isinstance(h, Booking) and h.user_id == user.id for h in holders):
        raise BookingRefused("waitlist_own", _("You have already booked this time."))


def _check_duplicate(instrument: Instrument, user: User, start: datetime, end: datetime) -> None:
    duplicate = db.session.scalar(
        sa.select(WaitlistEntry.id).where(
            WaitlistEntry.instrument_id == instrument.id,
            WaitlistEntry.user_id == user.id,
            WaitlistEntry.start_at == start,
            WaitlistEntry.end_at == end,
            WaitlistEntry.state.in_(LIVE_STATES),
        )
    )
    if duplicate is not None:
        raise BookingRefused(
            "waitlist_duplicate", _("You are already on the waitlist for this time.")
        )


def join_waitlist(
    user: User,
    instrument: Instrument,
    start: datetime,
    end: datetime,
    purpose: str | None = None,
    account_id: int | None = None,
    now: datetime | None = None,
) -> WaitlistEntry:
    """Wait for ``[start, end)`` on ``instrument``, which someone else holds now.

    :raises BookingRefused, NotAllowed, ValidationError: as for a booking; also when the
        time is free (``waitlist_free``), held by the user (``waitlist_own``) or already
        waited for (``waitlist_duplicate``).
    """
    now = now or now_utc()
    purpose = services.clean_purpose(purpose)
    privileged = user.manages_facility(instrument.facility_id)
    account = services.resolve_account(user, account_id)
    services.check_policy(instrument, user, account, start, end, now, privileged)
    slots.lock_instrument(instrument.id)
    if not privileged:
        rules.check_quotas(instrument, user, account.team_id, start, end)
    _check_taken(instrument, user, start, end)
    _check_duplicate(instrument, user, start, end)
    entry = WaitlistEntry(
        instrument_id=instrument.id,
        user_id=user.id,
        account_id=account.id,
        start_at=start,
        end_at=end,
        purpose=purpose,
        state="waiting",
        created_at=now,
    )
    db.session.add(entry)
    db.session.flush()
    _audit(user, "join", entry, None)
    return entry


def _check_owner(user: User, entry: WaitlistEntry, manager_may: bool = False) -> None:
    allowed = user.id == entry.user_id or (
        manager_may and user.manages_facility(entry.instrument.facility_id)
    )
    if not allowed:
        raise NotAllowed("owner", _("This waitlist entry is not yours."))


def leave_waitlist(user: User, entry: WaitlistEntry, now: datetime | None = None) -> WaitlistEntry:
    """Stop waiting (the owner, or a facility manager). A pending offer passes to the next
    waiter. Leaving twice changes nothing.

    :raises NotAllowed: for anyone else. :raises BookingRefused: when the entry has ended.
    """
    _check_owner(user, entry, manager_may=True)
    if entry.state == "cancelled":
        return entry
    if entry.state not in LIVE_STATES:
        raise BookingRefused(
            "waitlist_state", _("This waitlist entry has ended already."), "state"
        )
    was_offered = entry.state == "offered"
    _set_state(entry, "cancelled", user, "leave")
    if was_offered:
        offer_freed_slots(entry.instrument, now or now_utc())
    return entry


# -- offers -------------------------------------------------------------------------------------


def _entries(instrument_id: int, state: str, now: datetime) -> list[WaitlistEntry]:
    stmt = sa.select(WaitlistEntry).where(
        WaitlistEntry.instrument_id == instrument_id,
        WaitlistEntry.state == state,
        WaitlistEntry.start_at > now,
    )
    if state == "offered":
        stmt = stmt.where(WaitlistEntry.offer_expires_at > now)
    return list(db.session.scalars(stmt.order_by(WaitlistEntry.created_at, WaitlistEntry.id)))


def offer_freed_slots(instrument: Instrument, now: datetime | None = None) -> list[WaitlistEntry]:
    """Offer freed intervals to the waiters, oldest first (see the module docstring).

    Returns the entries offered by this call (to notify them); running it again offers
    nothing more until something changes.
    """
    now = now or now_utc()
    slots.lock_instrument(instrument.id)
    hold = timedelta(minutes=current_app.config["LABBOOK_WAITLIST_HOLD_MINUTES"])
    open_offers = _entries(instrument.id, "offered", now)
    claimed = [(e.start_at, _block_end(instrument, e.end_at)) for e in open_offers]
    offered = []
    for entry in _entries(instrument.id, "waiting", now):
        span = (entry.start_at, _block_end(instrument, entry.end_at))
        if any(s < span[1] and span[0] < e for s, e in claimed):
            continue
        if slots.overlapping(instrument.id, *span):
            continue
        entry.offered_at = now
        entry.offer_expires_at = min(now + hold, entry.start_at)
        _set_state(entry, "offered", None, "offer")
        notices.waitlist_offered(entry, now)
        claimed.append(span)
        offered.append(entry)
    return offered


def accept_offer(user: User, entry: WaitlistEntry, now: datetime | None = None) -> Booking:
    """Book the offered interval for the entry's user, if the offer is open and the time
    still free. Accepting twice returns the same booking.

    :raises NotAllowed: unless the entry is the user's.
    :raises BookingRefused: no open offer (``waitlist_state``) or it expired
        (``offer_expired``); any booking rule that no longer holds.
    :raises BookingConflict: the time was booked by someone else in the meantime (409).
    """
    now = now or now_utc()
    _check_owner(user, entry)
    if entry.state == "accepted" and entry.booking_id is not None:
        booking = db.session.get(Booking, entry.booking_id)
        assert booking is not None
        return booking
    if entry.state != "offered":
        raise BookingRefused(
            "waitlist_state", _("There is no open offer for this waitlist entry."), "state"
        )
    if entry.offer_expires_at is None or now >= entry.offer_expires_at:
        raise BookingRefused("offer_expired", _("This offer has expired."), "state")
    booking = services.create_booking(
        user,
        entry.instrument,
        entry.start_at,
        entry.end_at,
        purpose=entry.purpose,
        account_id=entry.account_id,
        now=now,
    )
    entry.booking_id = booking.id
    _set_state(entry, "accepted", user, "accept")
    return booking


def decline_offer(user: User, entry: WaitlistEntry, now: datetime | None = None) -> WaitlistEntry:
    """Turn an offer down; the time is offered to the next waiter at once. Declining twice
    changes nothing.

    :raises NotAllowed: unless the entry is the user's.
    :raises BookingRefused: when there is no offer to decline.
    """
    now = now or now_utc()
    _check_owner(user, entry)
    if entry.state == "declined":
        return entry
    if entry.state != "offered":
        raise BookingRefused(
            "waitlist_state", _("There is no open offer for this waitlist entry."), "state"
        )
    _set_state(entry, "declined", user, "decline")
    offer_freed_slots(entry.instrument, now)
    return entry


def expire_offers(now: datetime | None = None) -> list[WaitlistEntry]:
    """End offers whose hold has passed and waiting entries whose interval has begun.

    Returns the entries expired by this call; the caller offers their instruments' freed
    time to the next waiters (``offer_freed_slots``). Safe to run twice.
    """
    now = now or now_utc()
    rows = db.session.scalars(
        sa.select(WaitlistEntry)
        .where(
            sa.or_(
                sa.and_(WaitlistEntry.state == "offered", WaitlistEntry.offer_expires_at <= now),
                sa.and_(WaitlistEntry.state.in_(LIVE_STATES), WaitlistEntry.start_at <= now),
            )
        )
        .order_by(WaitlistEntry.id)
        .with_for_update(skip_locked=True)
    ).all()
    for entry in rows:
        was_offered = entry.state == "offered"
        _set_state(entry, "expired", None, "expire")
        if was_offered:
            notices.waitlist_offer_expired(entry, now)
    return list(rows)


def process_waitlists(now: datetime | None = None) -> list[WaitlistEntry]:
    """The scheduler's job: expire what is due, then offer freed time on every instrument
    that has waiters. Returns the new offers (to notify)."""
    now = now or now_utc()
    expire_offers(now)
    instrument_ids = db.session.scalars(
        sa.select(WaitlistEntry.instrument_id)
        .where(WaitlistEntry.state == "waiting", WaitlistEntry.start_at > now)
        .distinct()
        .order_by(WaitlistEntry.instrument_id)
    ).all()
    offered: list[WaitlistEntry] = []
    for instrument_id in instrument_ids:
        instrument = db.session.get(Instrument, instrument_id)
        assert instrument is not None
        offered.extend(offer_freed_slots(instrument, now))
    return offered
