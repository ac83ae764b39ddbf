"""The kiosk: a tablet beside an instrument, opened on a secret link, where users identify
per action with their email and personal PIN (they are never logged in there).

* personal PINs: 4 to 8 digits, hashed like passwords (``users.kiosk_pin_hash``);
* kiosk links: created and revoked by the facility's managers, only the SHA-256 of the
  secret stored (``KioskToken``), the secret shown once;
* identification: a wrong email or PIN gets one generic answer, is audited, and counts
  against the email and against the kiosk link (``labbook/auth/throttle.py`` counters,
  shared by every web process when Redis is configured): too many failures lock that email
  on every kiosk, or the whole link, for a while;
* what the screen shows (the session now, the next bookings today) and the three actions:
  check in, check out, walk in (labbook/care/walkin.py).
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

import sqlalchemy as sa
from flask_babel import gettext as _
from werkzeug.security import check_password_hash, generate_password_hash

from labbook import audit
from labbook.auth.models import PASSWORD_METHOD, User, hash_token
from labbook.auth.throttle import get_throttle
from labbook.bookings import rules, usage
from labbook.bookings.errors import BookingRefused
from labbook.bookings.models import ACTIVE_STATES, Booking, Reservation
from labbook.care.models import KioskToken
from labbook.db import now_utc
from labbook.errors import Forbidden, LabbookError, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument

PIN_RE = re.compile(r"^[0-9]{4,8}$")
# Failures before an email is locked on every kiosk, and before a kiosk link is locked.
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_LINK = 20
FAILURE_WINDOW_SECONDS = 15 * 60
UPCOMING_LIMIT = 5


class PinRefused(LabbookError):
    """Email or PIN not recognised (one answer for both, so the kiosk reveals no accounts)."""

    status = 422
    code = "validation"


class KioskLocked(LabbookError):
    status = 429
    code = "too_many_requests"


# -- personal PIN ---------------------------------------------------------------------------


def _guessable(pin: str) -> bool:
    """All one digit, or a run up or down (1234, 9876): the first PINs anyone tries."""
    steps = {int(b) - int(a) for a, b in zip(pin, pin[1:])}
    return len(steps) == 1 and steps <= {-1, 0, 1}


def set_pin(user: User, pin: str, confirm: str) -> User:
    """Set or change ``user``'s kiosk PIN; audited without the PIN.

    :raises ValidationError: unless 4 to 8 digits, not trivially guessable, confirmed.
    """
    pin, confirm = (pin or "").strip(), (confirm or "").strip()
    if not PIN_RE.match(pin):
        message = _("A PIN has 4 to 8 digits.")
        raise ValidationError(message, {"pin": [message]})
    if _guessable(pin):
        message = _("This PIN is too easy to guess (one digit repeated, or a run like 1234).")
        raise ValidationError(message, {"pin": [message]})
    if pin != confirm:
        message = _("The two PINs differ.")
        raise ValidationError(message, {"confirm": [message]})
    changed = user.kiosk_pin_hash is not None
    user.kiosk_pin_hash = generate_password_hash(pin, method=PASSWORD_METHOD)
    db.session.flush()
    audit.record(user, "user.kiosk_pin", user, before={"kiosk_pin": "set" if changed else None},
                 after={"kiosk_pin": "changed" if changed else "set"})
    return user


def remove_pin(user: User) -> User:
    """Remove ``user``'s kiosk PIN (they can no longer use kiosks until they set one)."""
    if user.kiosk_pin_hash is not None:
        user.kiosk_pin_hash = None
        db.session.flush()
        audit.record(user, "user.kiosk_pin", user, before={"kiosk_pin": "set"},
                     after={"kiosk_pin": None})
    return user


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return generate_password_hash("0000000000", method=PASSWORD_METHOD)


def _failure_keys(email: str, link: KioskToken) -> tuple[str, str]:
    return f"labbook:kiosk:acct:{email}", f"labbook:kiosk:link:{link.id}"


def identify(link: KioskToken, email: str, pin: str) -> User:
    """The active user with this email and PIN. Every failure is audited and counted.

    :raises KioskLocked: too many recent failures for this email or this kiosk link.
    :raises PinRefused: email unknown, no PIN set, or wrong PIN (one message for all).
    """
    email = (email or "").strip().lower()
    counter = get_throttle().counter
    email_key, link_key = _failure_keys(email, link)
    if (counter.get(email_key) >= MAX_FAILURES_PER_EMAIL
            or counter.get(link_key) >= MAX_FAILURES_PER_LINK):
        audit.record(None, "kiosk.locked", link, after={"email": email})
        raise KioskLocked(_("Too many failed attempts. Please try again in 15 minutes."))
    user = db.session.scalar(sa.select(User).where(User.email == email)) if email else None
    stored = user.kiosk_pin_hash if user is not None and user.active else None
    # Check a hash either way, so an unknown email takes as long as a wrong PIN.
    matches = check_password_hash(stored or _dummy_hash(), (pin or "").strip())
    if stored is None or not matches:
        counter.hit(email_key, FAILURE_WINDOW_SECONDS)
        counter.hit(link_key, FAILURE_WINDOW_SECONDS)
        audit.record(None, "kiosk.pin_failed", link,
                     after={"email": email, "user_id": user.id if user else None,
                            "instrument_id": link.instrument_id})
        raise PinRefused(_("Email or PIN not recognised."))
    counter.clear(email_key)
    return user


# -- kiosk links ----------------------------------------------------------------------------


def create_link(actor: User, instrument: Instrument, name: str) -> tuple[KioskToken, str]:
    """A new kiosk link for ``instrument``; returns it and its secret (shown once).

    :raises Forbidden: unless ``actor`` manages the instrument's facility.
    :raises ValidationError: for a name longer than 80 characters.
    """
    if not actor.manages_facility(instrument.facility_id):
        raise Forbidden(_("Only the facility's managers may set up kiosks."))
    name = (name or "").strip()
    if len(name) > 80:
        message = _("At most %(n)d characters.", n=80)
        raise ValidationError(message, {"name": [message]})
    secret = secrets.token_urlsafe(32)
    link = KioskToken(instrument_id=instrument.id, name=name, token_hash=hash_token(secret),
                      hint=secret[:6], created_by_id=actor.id)
    db.session.add(link)
    db.session.flush()
    audit.record(actor, "kiosk.create", link,
                 after={"instrument_id": instrument.id, "name": name, "hint": link.hint})
    return link, secret


def revoke_link(actor: User, link: KioskToken, now: datetime | None = None) -> KioskToken:
    """Revoke a kiosk link: the tablet showing it gets 404 from then on.

    :raises Forbidden: unless ``actor`` manages the instrument's facility.
    """
    if not actor.manages_facility(link.instrument.facility_id):
        raise Forbidden(_("Only the facility's managers may set up kiosks."))
    if link.revoked_at is None:
        link.revoked_at = now or now_utc()
        db.session.flush()
        audit.record(actor, "kiosk.revoke", link, before={"revoked_at": None},
                     after={"revoked_at": link.revoked_at})
    return link


def live_links(instrument: Instrument) -> list[KioskToken]:
    return list(db.session.scalars(
        sa.select(KioskToken)
        .where(KioskToken.instrument_id == instrument.id, KioskToken.revoked_at.is_(None))
        .order_by(KioskToken.created_at)
    ))


def find_link(secret: str) -> KioskToken | None:
    """The live kiosk link with this secret, or None (unknown or revoked)."""
    if not secret or len(secret) > 128:
        return None
    return db.session.scalar(
        sa.select(KioskToken).where(
            KioskToken.token_hash == hash_token(secret), KioskToken.revoked_at.is_(None)
        )
    )


# -- the screen -----------------------------------------------------------------------------


@dataclass
class Screen:
    """What the kiosk shows: the session (or outage) now, and the next items today."""

    current: Reservation | None
    upcoming: list[Reservation] = field(default_factory=list)


def running_session(instrument: Instrument) -> Booking | None:
    """The checked-in booking on the instrument (even one running past its end)."""
    return db.session.scalar(
        sa.select(Booking)
        .where(Booking.instrument_id == instrument.id, Booking.state == "in_use")
        .order_by(Booking.start_at)
        .limit(1)
    )


def screen(instrument: Instrument, now: datetime | None = None) -> Screen:
    """The session now (a running one first, else whatever holds this moment) and the slot
    holders starting later today (the facility's day)."""
    now = now or now_utc()
    here = rules.local(instrument, now)
    day_end = (here.replace(hour=0, minute=0, second=0, microsecond=0)
               + timedelta(days=1)).astimezone(now.tzinfo)
    holders = sa.select(Reservation).where(
        Reservation.instrument_id == instrument.id,
        Reservation.state.in_(ACTIVE_STATES),
    )
    current = running_session(instrument) or db.session.scalar(
        holders.where(Reservation.start_at <= now,
                      sa.or_(Reservation.end_at.is_(None), Reservation.end_at > now))
        .order_by(Reservation.start_at).limit(1)
    )
    upcoming = db.session.scalars(
        holders.where(Reservation.start_at > now, Reservation.start_at < day_end)
        .order_by(Reservation.start_at).limit(UPCOMING_LIMIT)
    ).all()
    return Screen(current, list(upcoming))


def who(reservation: Reservation) -> str:
    """Whom the kiosk names: a first name when the name has one, else just "In use"."""
    user = getattr(reservation, "user", None)
    parts = (user.name or "").split() if user is not None else []
    return parts[0] if len(parts) > 1 else _("In use")


# -- actions --------------------------------------------------------------------------------


def kiosk_check_in(user: User, instrument: Instrument, now: datetime | None = None) -> Booking:
    """Check ``user`` in on their next confirmed booking of ``instrument`` (the booking
    rules decide whether its check-in window is open).

    :raises BookingRefused: no such booking, or outside its check-in window.
    """
    now = now or now_utc()
    booking = db.session.scalar(
        sa.select(Booking)
        .where(Booking.instrument_id == instrument.id, Booking.user_id == user.id,
               Booking.state == "confirmed", Booking.end_at > now)
        .order_by(Booking.start_at).limit(1)
    )
    if booking is None:
        raise BookingRefused(
            "no_booking", _("You have no confirmed booking on this instrument to check in to."),
            "state")
    return usage.check_in(user, booking, now)


def kiosk_check_out(user: User, instrument: Instrument, now: datetime | None = None) -> Booking:
    """Check ``user``'s running session on ``instrument`` out (the real end is recorded).

    :raises BookingRefused: when the user has no running session here.
    """
    now = now or now_utc()
    session = running_session(instrument)
    if session is None or session.user_id != user.id:
        raise BookingRefused(
            "no_session", _("You have no running session on this instrument."), "state")
    return usage.check_out(user, session, now)


def check_out_notice(booking: Booking) -> str | None:
    """The message for a session that ran over into the next booking, if it did."""
    if booking.checked_out_at is None:
        return None
    blocker = usage.overrun_into(booking, booking.checked_out_at)
    if blocker is None:
        return None
    return _(
        "Your session ran over into the next booking, which started at %(time)s. Sessions "
        "must end by their booked end: the facility sees the overrun.",
        time=rules.local(booking.instrument, blocker.start_at).strftime("%H:%M"),
    )
