"""The booking engine's rules: create, cancel, approve, reject, reschedule (check-in/out,
expiry and purpose changes are in usage.py). Services flush, audit and tell the people
concerned (labbook/bookings/notices.py, in the same transaction); the caller (view, API,
job, CLI) owns the transaction and commits once. Every write of a slot holder goes through
``holding.hold_slot`` after the instrument lock is taken: it checks for overlaps and turns
the database's refusal into a ``BookingConflict`` (see labbook/bookings/slots.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import joinedload
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.guards import MAX_ID
from labbook.auth.models import User
from labbook.billing.lock import ensure_open
from labbook.bookings import notices, rules, slots
from labbook.bookings.holding import hold_slot
from labbook.bookings.labels import state_label
from labbook.bookings.errors import BookingRefused, NotAllowed
from labbook.bookings.models import Booking, Qualification
from labbook.db import now_utc
from labbook.errors import NotFound, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument
from labbook.teams.models import Account, Membership, Team

TRANSITIONS = {
    "pending": {"confirmed", "rejected", "cancelled", "expired"},
    "confirmed": {"in_use", "cancelled", "no_show", "pending"},
    "in_use": {"completed"},
}
AUDITED = ("state", "start_at", "end_at", "account_id", "purpose", "assisted", "late_cancel")
# -- create ---------------------------------------------------------------------------------


# Loader options for the rows every booking check reads, so each costs one round trip.
INSTRUMENT_WITH_POLICY = (
    joinedload(Instrument.facility).joinedload(Facility.opening_hours),
)
ACCOUNT_WITH_MEMBERS = (joinedload(Account.team).joinedload(Team.memberships),)


def instrument_for_booking(instrument_id: int, user: User) -> Instrument:
    """The instrument with its facility and opening hours and, in the same round trip, the
    user's qualifications that may cover it (remembered for ``rules.live_qualification``).

    :raises NotFound: unknown instrument (or an id no integer column can hold).
    """
    if not 0 < instrument_id <= MAX_ID:
        raise NotFound(_("No such instrument."))
    rows = db.session.execute(
        sa.select(Instrument, Qualification)
        .outerjoin(Qualification, rules.covering(user.id, Instrument))
        .where(Instrument.id == instrument_id)
        .options(*INSTRUMENT_WITH_POLICY)
    ).unique().all()
    if not rows:
        raise NotFound(_("No such instrument."))
    instrument = rows[0][0]
    rules.remember_qualifications(
        user.id, instrument.id, [q for _i, q in rows if q is not None])
    return instrument


def resolve_account(user: User, account_id: int | None) -> Account:
    """The account to charge: the one named, or the default account of the user's only
    team. :raises BookingRefused: when none can be chosen or the id is unknown."""
    if account_id is not None:
        account = db.session.get(Account, account_id, options=ACCOUNT_WITH_MEMBERS)
        if account is None:
            raise BookingRefused("account", _("Unknown account."), "account_id")
        return account
    defaults = db.session.scalars(
        sa.select(Account)
        .join(Membership, Membership.team_id == Account.team_id)
        .where(Membership.user_id == user.id, Account.is_default)
        .options(*ACCOUNT_WITH_MEMBERS)
    ).unique().all()
    if len(defaults) != 1:
        raise BookingRefused(
            "account",
            _(
                "Choose the account to charge (you belong to several teams or yours has no "
                "default account)."
            ),
            "account_id",
        )
    return defaults[0]


def check_policy(
    instrument: Instrument,
    user: User,
    account: Account,
    start: datetime,
    end: datetime,
    now: datetime,
    privileged: bool,
) -> None:
    """Every rule that does not need the instrument lock. Managers of the facility (and
    admins) are held to the shape of a booking and to a chargeable, valid account only.

    :raises BookingRefused, NotAllowed: naming the broken rule.
    """
    rules.check_instrument_open(instrument)
    rules.check_shape(instrument, start, end)
    rules.check_account(user, account, instrument, start, end)
    if privileged:
        return
    rules.check_window(instrument, start, now)
    qualification = rules.live_qualification(user, instrument, now)
    rules.check_qualified(instrument, qualification)
    rules.check_staffed(instrument, start, end, qualification)


def clean_purpose(purpose: str | None) -> str:
    purpose = (purpose or "").strip()
    if len(purpose) > 500:
        raise ValidationError(
            _("The purpose is too long."), {"purpose": [_("At most %(n)d characters.", n=500)]}
        )
    return purpose


def check_limit(account: Account, instrument: Instrument, start: datetime, end: datetime,
                assisted: bool, exclude_booking_id: int | None = None) -> None:
    """The account's spending limit (labbook/billing/accounts.py), imported at call time:
    billing prices bookings, so it imports the bookings package, not the other way round.

    :raises BookingRefused: (rule ``spending_limit``).
    """
    from labbook.billing.accounts import check_limit as billing_check

    billing_check(account, instrument, start, end, assisted, exclude_booking_id)


def create_booking(
    user: User,
    instrument: Instrument,
    start: datetime,
    end: datetime,
    *,
    purpose: str | None = None,
    account_id: int | None = None,
    assisted: bool = False,
    now: datetime | None = None,
    series_id: int | None = None,
) -> Booking:
    """Book ``instrument`` for ``user`` from ``start`` to ``end`` (aware, half-open).

    The booking is ``pending`` when the instrument requires approval (unless the user
    manages its facility), else ``confirmed``.

    :raises BookingRefused: a policy rule (422). :raises NotAllowed: not qualified (403).
    :raises BookingConflict: the time is taken (409), with alternatives.
    """
    now = now or now_utc()
    purpose = clean_purpose(purpose)
    privileged = user.manages_facility(instrument.facility_id)
    account = resolve_account(user, account_id)
    check_policy(instrument, user, account, start, end, now, privileged)
    slots.lock_instrument(instrument.id)
    if not privileged:
        rules.check_quotas(instrument, user, account.team_id, start, end)
    check_limit(account, instrument, start, end, assisted)
    state = "pending" if instrument.requires_approval and not privileged else "confirmed"
    booking = Booking(
        instrument=instrument,
        user=user,
        team_id=account.team_id,
        account=account,
        purpose=purpose,
        assisted=assisted,
        state=state,
        sequence=0,
        buffer_minutes=instrument.buffer_minutes,
        created_by_id=user.id,
        series_id=series_id,
        state_changed_at=now,
        state_changed_by_id=user.id,
    )
    if booking in db.session:  # never autoflush a half-built row during the checks
        db.session.expunge(booking)
    hold_slot(booking, start, end, user, now, privileged)
    audit.record(user, "booking.create", booking, after=audit.snapshot(booking, AUDITED))
    notices.booking_created(booking, privileged, now)
    return booking


# -- transitions ----------------------------------------------------------------------------


def lock_booking(booking: Booking) -> Booking:
    """Re-read the booking's row FOR UPDATE (PostgreSQL), so two concurrent changes to one
    booking (say a cancel and a check-in) apply one after the other instead of one silently
    overwriting the other. SQLite transactions already hold the write lock."""
    if booking.id is not None and db.session.get_bind().dialect.name == "postgresql":
        db.session.refresh(booking, with_for_update=True)
    return booking


def transition(
    booking: Booking, state: str, actor: User | None, now: datetime, reason: str | None = None
) -> None:
    """Move ``booking`` to ``state`` recording who, when and why, and audit it.

    :raises BookingRefused: when the state machine does not allow the move.
    :raises PeriodClosed: when the booking lies in a closed billing period.
    """
    ensure_open(booking.start_at, now=now)
    if state not in TRANSITIONS.get(booking.state, set()):
        raise BookingRefused(
            "state",
            _("The booking is “%(current)s”; it cannot become “%(new)s”.",
              current=state_label(booking.state), new=state_label(state)),
            "state",
        )
    before = booking.state
    booking.state = state
    booking.state_changed_at = now
    booking.state_changed_by_id = actor.id if actor else None
    booking.state_reason = reason
    booking.sequence += 1
    db.session.flush()
    audit.record(
        actor,
        f"booking.{state}",
        booking,
        before={"state": before},
        after={"state": state, "reason": reason},
    )


def cancel_booking(
    actor: User, booking: Booking, reason: str | None = None, now: datetime | None = None
) -> Booking:
    """Cancel a pending or confirmed booking. The owner may cancel until the start; inside
    the instrument's notice period the cancellation is flagged *late* (billing may charge
    it). Facility managers may always cancel, and their cancellations are never late.

    :raises NotAllowed: for anyone else. :raises BookingRefused: once the booking started.
    """
    lock_booking(booking)
    now = now or now_utc()
    manager = booking.can_manage(actor)
    if not (manager or booking.is_owner(actor)):
        raise NotAllowed(
            "owner", _("Only the booking's owner or a facility manager may cancel it.")
        )
    if not manager and now >= booking.start_at:
        raise BookingRefused("started", _("The booking has started; check out instead."), "state")
    notice = timedelta(hours=booking.instrument.late_cancel_notice_hours)
    booking.late_cancel = (
        booking.is_owner(actor) and not manager and now > booking.start_at - notice
    )
    transition(booking, "cancelled", actor, now, clean_purpose(reason) or None)
    notices.booking_cancelled(actor, booking, now)
    return booking


def approve_booking(actor: User, booking: Booking, now: datetime | None = None) -> Booking:
    """A facility manager confirms a pending booking that has not started.

    :raises NotAllowed: unless ``actor`` manages the facility. :raises BookingRefused: when
        the booking is not pending or its start has passed.
    """
    lock_booking(booking)
    now = now or now_utc()
    if not booking.can_manage(actor):
        raise NotAllowed("manager", _("Only managers of this facility may approve bookings."))
    if booking.state == "pending" and booking.start_at <= now:
        # Refuse without writing; the expiry job (expire_pending) marks it expired.
        raise BookingRefused(
            "expired", _("The booking's start has passed; it can no longer be approved."), "state"
        )
    transition(booking, "confirmed", actor, now)
    notices.booking_approved(actor, booking, now)
    return booking


def reject_booking(
    actor: User, booking: Booking, reason: str, now: datetime | None = None
) -> Booking:
    """:raises NotAllowed: unless a manager of the facility. :raises ValidationError:
    without a reason."""
    lock_booking(booking)
    if not booking.can_manage(actor):
        raise NotAllowed("manager", _("Only managers of this facility may reject bookings."))
    reason = clean_purpose(reason)
    if not reason:
        raise ValidationError(
            _("Say why the booking is rejected."), {"reason": [_("This field is required.")]}
        )
    now = now or now_utc()
    transition(booking, "rejected", actor, now, reason)
    notices.booking_rejected(actor, booking, now)
    return booking


def approval_warnings(booking: Booking, now: datetime | None = None) -> list[str]:
    """What a manager should know before approving: rules that no longer hold."""
    now = now or now_utc()
    warnings = []
    if booking.start_at <= now:
        warnings.append(_("The start has passed."))
    try:
        rules.check_account(
            booking.user, booking.account, booking.instrument, booking.start_at, booking.end_at
        )
    except BookingRefused as error:
        warnings.append(error.message)
    if (
        booking.instrument.requires_qualification
        and rules.live_qualification(booking.user, booking.instrument, now) is None
    ):
        warnings.append(_("The user is no longer qualified on this instrument."))
    return warnings


# -- change times ---------------------------------------------------------------------------


def reschedule_booking(
    actor: User, booking: Booking, start: datetime, end: datetime, now: datetime | None = None
) -> Booking:
    """Move, extend or shorten a booking. The owner may do so within the policy before the
    start (a running booking may only change its end, not into the past); a facility
    manager always. An owner's change to a confirmed booking that needs approval sends it
    back to ``pending``.

    :raises NotAllowed, BookingRefused, BookingConflict: as for creating.
    """
    lock_booking(booking)
    now = now or now_utc()
    manager = booking.can_manage(actor)
    if not (manager or booking.is_owner(actor)):
        raise NotAllowed(
            "owner", _("Only the booking's owner or a facility manager may change it.")
        )
    if booking.state not in ("pending", "confirmed", "in_use"):
        raise BookingRefused(
            "state", _("Only upcoming or running bookings can be changed."), "state"
        )
    _check_running_change(booking, start, end, now)
    instrument = booking.instrument
    if booking.state != "in_use":
        check_policy(instrument, booking.user, booking.account, start, end, now, manager)
    else:
        rules.check_shape(instrument, start, end)
    slots.lock_instrument(instrument.id)
    if not manager:
        rules.check_quotas(instrument, booking.user, booking.team_id, start, end, booking.id)
    check_limit(booking.account, instrument, start, end, booking.assisted, booking.id)
    before = audit.snapshot(booking, AUDITED)
    times = (booking.start_at, booking.end_at)
    hold_slot(booking, start, end, actor, now, manager)
    back = booking.state == "confirmed" and instrument.requires_approval and not manager
    if back:
        transition(booking, "pending", actor, now, "changed by owner; needs approval again")
    audit.record(
        actor, "booking.reschedule", booking, before=before, after=audit.snapshot(booking, AUDITED)
    )
    notices.booking_rescheduled(actor, booking, times, now, back)
    return booking


def _check_running_change(booking: Booking, start: datetime, end: datetime, now: datetime) -> None:
    if booking.state == "in_use":
        if start != booking.start_at:
            raise BookingRefused("started", _("A running booking keeps its start."), "start")
        if end <= now:
            raise BookingRefused("past", _("The new end is in the past."), "end")
