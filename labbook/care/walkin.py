"""Walk-ins: a qualified user finds the instrument free and starts a session on the spot,
without a booking. The session is a booking (``walk_in=True``) from now, created under the
same guarantee as every booking (the instrument lock, then ``holding.hold_slot`` with the
exclusion constraint as backstop) and checked in at once (``in_use``).

Rules, compared with a booking made ahead (labbook/bookings/services.py):

* the start is *now* (to the second), not a slot boundary, and the lead time does not
  apply (the user is at the instrument); the end is on the slot grid: now plus the chosen
  duration (default the instrument's minimum), rounded up, at most the maximum duration;
* the end never reaches into the next booking or outage (nor its buffer): the session is
  shortened to end there, and refused when less than the minimum duration is left;
* refused while someone's session is running (even past its booked end), and on
  instruments that require approval (book those ahead);
* qualification, staffed hours, account and quotas as for any booking (managers of the
  facility, as for bookings, only need a chargeable account).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.bookings import rules, slots, usage
from labbook.bookings.errors import BookingConflict, BookingRefused
from labbook.bookings.holding import describe_conflicts, hold_slot
from labbook.bookings.models import Booking
from labbook.bookings.services import AUDITED, clean_purpose, resolve_account
from labbook.care.kiosk import running_session
from labbook.db import now_utc
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.teams.models import Account


def start_of(now: datetime) -> datetime:
    """Now, rounded up to the whole second."""
    whole = now.replace(microsecond=0)
    return whole if whole == now else whole + timedelta(seconds=1)


def grid_end(instrument: Instrument, start: datetime, minutes: int | None) -> datetime:
    """``start`` plus ``minutes`` (default the minimum; within min and max), rounded up to
    the instrument's slot grid in the facility's zone, stepped back when past the maximum."""
    wanted = max(instrument.min_minutes, min(minutes or instrument.min_minutes,
                                             instrument.max_minutes))
    slot = timedelta(minutes=instrument.slot_minutes)
    here = rules.local(instrument, start + timedelta(minutes=wanted))
    midnight = here.replace(hour=0, minute=0, second=0, microsecond=0)
    steps = -(-(here - midnight) // slot)
    end = (midnight + steps * slot).astimezone(start.tzinfo)
    while end - start > timedelta(minutes=instrument.max_minutes) and end - slot > start:
        end -= slot
    return end


def choose_end(instrument: Instrument, user: User, start: datetime, wanted: datetime,
               buffer: timedelta) -> datetime:
    """``wanted``, or earlier so that the session and its buffer stop where the next slot
    holder starts. Call it under the instrument lock.

    :raises BookingConflict: when the instrument is taken now or less than the minimum
        duration is free.
    """
    clash = slots.overlapping(instrument.id, start, wanted + buffer)
    end = min([wanted, *(r.start_at - buffer for r in clash)])
    if end - start < timedelta(minutes=instrument.min_minutes):
        raise BookingConflict(
            _("%(name)s is not free long enough for a walk-in now (at least %(n)d minutes).",
              name=instrument.name, n=instrument.min_minutes),
            describe_conflicts(clash, user), [],
        )
    return end


def check_walk_in(instrument: Instrument, user: User, account: Account, start: datetime,
                  end: datetime, privileged: bool) -> None:
    """The rules that do not need the lock (see the module's docstring).

    :raises BookingRefused, NotAllowed: naming the broken rule.
    """
    rules.check_instrument_open(instrument)
    if instrument.requires_approval and not privileged:
        raise BookingRefused(
            "approval",
            _("Bookings on this instrument need approval: book it ahead instead of walking in."),
            "instrument_id",
        )
    rules.check_account(user, account, instrument, start, end)
    if privileged:
        return
    qualification = rules.live_qualification(user, instrument, start)
    rules.check_qualified(instrument, qualification)
    rules.check_staffed(instrument, start, end, qualification)


def start_walk_in(
    user: User,
    instrument: Instrument,
    *,
    minutes: int | None = None,
    account_id: int | None = None,
    purpose: str | None = None,
    now: datetime | None = None,
) -> Booking:
    """Start a walk-in session for ``user`` on ``instrument`` now; returns the booking,
    already checked in. Flushes and audits; the caller commits.

    :raises BookingRefused: a rule (422). :raises NotAllowed: not qualified (403).
    :raises BookingConflict: the instrument is not free (409).
    """
    now = now or now_utc()
    start = start_of(now)
    purpose = clean_purpose(purpose) or _("Walk-in")
    privileged = user.manages_facility(instrument.facility_id)
    account = resolve_account(user, account_id)
    wanted = grid_end(instrument, start, minutes)
    check_walk_in(instrument, user, account, start, wanted, privileged)
    slots.lock_instrument(instrument.id)
    _refuse_while_running(instrument)
    end = choose_end(instrument, user, start, wanted, timedelta(minutes=instrument.buffer_minutes))
    if not privileged:
        rules.check_quotas(instrument, user, account.team_id, start, end)
    booking = Booking(
        instrument=instrument, user=user, team_id=account.team_id, account=account,
        purpose=purpose, state="confirmed", sequence=0, walk_in=True,
        buffer_minutes=instrument.buffer_minutes, created_by_id=user.id,
        state_changed_at=start, state_changed_by_id=user.id,
    )
    if booking in db.session:  # never autoflush a half-built row (as create_booking)
        db.session.expunge(booking)
    hold_slot(booking, start, end, user, now, privileged)
    audit.record(user, "booking.create", booking,
                 after={**audit.snapshot(booking, AUDITED), "walk_in": True})
    return usage.check_in(user, booking, start)


def _refuse_while_running(instrument: Instrument) -> None:
    """:raises BookingRefused: while a session is running on the instrument."""
    if running_session(instrument) is not None:
        raise BookingRefused(
            "in_use", _("%(name)s is in use right now.", name=instrument.name), "instrument_id"
        )
