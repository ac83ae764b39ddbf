"""Granting, revoking and requesting qualifications. Managers grant on instruments of the
facilities they manage; category-wide qualifications span facilities, so only admins grant
them. Services flush and audit; callers commit."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.bookings import notices
from labbook.bookings.errors import NotAllowed
from labbook.bookings.models import Qualification, QualificationRequest
from labbook.db import now_utc
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument

FIELDS = ("user_id", "instrument_id", "category", "level", "expires_at", "revoked_at")


def _authorize(actor: User, instrument: Instrument | None) -> None:
    allowed = (
        actor.is_admin if instrument is None else actor.manages_facility(instrument.facility_id)
    )
    if not allowed:
        raise NotAllowed(
            "manager",
            _("Only managers of the instrument's facility may grant or revoke its qualifications."),
        )


def live_for(
    user: User, instrument: Instrument | None, category: str | None, now: datetime
) -> Qualification | None:
    stmt = sa.select(Qualification).where(
        Qualification.user_id == user.id, Qualification.revoked_at.is_(None)
    )
    if instrument is not None:
        stmt = stmt.where(Qualification.instrument_id == instrument.id)
    else:
        stmt = stmt.where(Qualification.category == category)
    return db.session.scalar(stmt)


def grant_qualification(
    actor: User,
    user: User,
    *,
    instrument: Instrument | None = None,
    category: str | None = None,
    level: str = "basic",
    expires_at: datetime | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> Qualification:
    """Qualify ``user`` on ``instrument`` (or every instrument of ``category``). Granting
    again replaces the level and expiry of the live qualification.

    :raises NotAllowed: unless the actor may grant it. :raises ValidationError: on a bad
        level, an expiry in the past, or neither/both of instrument and category.
    """
    now = now or now_utc()
    errors: dict[str, list[str]] = {}
    if (instrument is None) == (not category):
        errors["instrument_id"] = [_("Give either an instrument or a category.")]
    if level not in ("basic", "advanced"):
        errors["level"] = [_("Choose basic or advanced.")]
    if expires_at is not None and expires_at <= now:
        errors["expires_at"] = [_("The expiry must be in the future.")]
    if note is not None and len(note) > 500:
        errors["note"] = [_("At most %(n)d characters.", n=500)]
    if errors:
        raise ValidationError(_("The qualification could not be saved."), errors)
    _authorize(actor, instrument)
    qualification = live_for(user, instrument, category, now)
    before = audit.snapshot(qualification, FIELDS) if qualification else None
    if qualification is None:
        qualification = Qualification(
            user=user, instrument=instrument, category=None if instrument else category
        )
        db.session.add(qualification)
    qualification.level, qualification.expires_at, qualification.note = level, expires_at, note
    qualification.granted_by_id, qualification.granted_at = actor.id, now
    db.session.flush()
    _close_requests(actor, user, instrument, "granted", now)
    audit.record(
        actor,
        "qualification.grant",
        qualification,
        before=before,
        after=audit.snapshot(qualification, FIELDS),
    )
    notices.qualification_granted(actor, qualification, now)
    return qualification


def revoke_qualification(
    actor: User, qualification: Qualification, now: datetime | None = None
) -> Qualification:
    """:raises NotAllowed: unless the actor may manage it. Revoking twice is harmless."""
    _authorize(actor, qualification.instrument)
    if qualification.revoked_at is None:
        qualification.revoked_at = now or now_utc()
        qualification.revoked_by_id = actor.id
        db.session.flush()
        audit.record(
            actor,
            "qualification.revoke",
            qualification,
            after=audit.snapshot(qualification, FIELDS),
        )
    return qualification


def request_qualification(
    user: User, instrument: Instrument, message: str = ""
) -> QualificationRequest:
    """A user asks to be qualified; one open request per user and instrument.

    :raises ValidationError: on an over-long message.
    """
    message = (message or "").strip()
    if len(message) > 1000:
        raise ValidationError(
            _("The message is too long."), {"message": [_("At most %(n)d characters.", n=1000)]}
        )
    existing = db.session.scalar(
        sa.select(QualificationRequest).where(
            QualificationRequest.user_id == user.id,
            QualificationRequest.instrument_id == instrument.id,
            QualificationRequest.state == "open",
        )
    )
    if existing is not None:
        return existing
    request = QualificationRequest(user=user, instrument=instrument, message=message, state="open")
    db.session.add(request)
    db.session.flush()
    audit.record(user, "qualification.request", request, after={"instrument_id": instrument.id})
    return request


def decline_request(
    actor: User, request: QualificationRequest, now: datetime | None = None
) -> QualificationRequest:
    """:raises NotAllowed: unless a manager of the instrument's facility."""
    _authorize(actor, request.instrument)
    if request.state == "open":
        request.state, request.decided_by_id, request.decided_at = (
            "declined",
            actor.id,
            now or now_utc(),
        )
        audit.record(actor, "qualification.request_declined", request)
    return request


def _close_requests(
    actor: User, user: User, instrument: Instrument | None, state: str, now: datetime
) -> None:
    if instrument is None:
        return
    for request in db.session.scalars(
        sa.select(QualificationRequest).where(
            QualificationRequest.user_id == user.id,
            QualificationRequest.instrument_id == instrument.id,
            QualificationRequest.state == "open",
        )
    ):
        request.state, request.decided_by_id, request.decided_at = state, actor.id, now
