"""Facility managers' booking pages: the approval queue (approve, reject with a reason, bulk
approve), a facility's schedule for today and tomorrow, and an instrument's qualifications
(grant, revoke, answer requests). Admins see every facility.

Same shape as ``views.py``: load (404), authorize (403), one service call, commit, redirect;
refusals roll back and re-render with the reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload

from labbook.auth.guards import authorize
from labbook.auth.models import User
from labbook.bookings import bp, notices, pages, qualifications, services
from labbook.bookings.forms import ActionForm, BulkApproveForm, GrantForm, RejectForm, next_target
from labbook.bookings.models import Booking, Qualification, QualificationRequest
from labbook.bookings.views import REFUSALS, act, attempt, load, status_for, visible_booking
from labbook.db import now_utc
from labbook.errors import LabbookError, NotFound
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument

# -- approvals --------------------------------------------------------------------------------


def _pending_for(user: User) -> list[Booking]:
    """Pending bookings on the facilities ``user`` manages (admins: all), soonest first."""
    stmt = (
        sa.select(Booking)
        .join(Instrument, Instrument.id == Booking.instrument_id)
        .where(Booking.state == "pending")
        .options(selectinload(Booking.user), selectinload(Booking.account))
        .order_by(Booking.start_at, Booking.id)
    )
    if not user.is_admin:
        stmt = stmt.where(Instrument.facility_id.in_([f.id for f in user.managed_facilities]))
    return list(db.session.scalars(stmt))


def render_approvals(status: int = 200, **forms: Any) -> tuple[str, int]:
    now = now_utc()
    bookings = _pending_for(current_user)
    facilities = (
        db.session.scalars(sa.select(Facility).order_by(Facility.name)).all()
        if current_user.is_admin
        else sorted(current_user.managed_facilities, key=lambda f: f.name.lower())
    )
    return render_template(
        "bookings/approvals.html",
        bookings=bookings,
        warnings={b.id: services.approval_warnings(b, now) for b in bookings},
        facilities=facilities,
        bulk_form=forms.get("bulk_form") or BulkApproveForm(formdata=None),
        action_form=ActionForm(formdata=None),
        reject_form=forms.get("reject_form"),
        failed_id=forms.get("failed_id"),
        error=forms.get("error"),
    ), status


def _require_manager() -> None:
    """:raises Forbidden: unless the user manages a facility (admins always do)."""
    authorize(current_user.manages_any_facility(), _("Only facility managers can do this."))


@bp.route("/manage/approvals")
def approvals() -> Any:
    """:raises Forbidden: for users who manage no facility."""
    _require_manager()
    return render_approvals()


def _managed_booking(booking_id: int) -> Booking:
    """:raises NotFound: unknown or not visible. :raises Forbidden: visible (the owner's)
    but not the user's to decide."""
    booking = visible_booking(booking_id)
    authorize(booking.can_manage(current_user), _("Only managers of this facility may decide."))
    return booking


@bp.route("/bookings/<int:booking_id>/approve", methods=["POST"])
def approve(booking_id: int) -> Any:
    """:raises NotFound, Forbidden: see ``_managed_booking``."""
    booking = _managed_booking(booking_id)
    form = ActionForm()
    return act(
        booking,
        form,
        lambda: services.approve_booking(current_user, booking, now_utc()),
        _("The booking of %(name)s was approved.", name=booking.user.name),
        "action_form",
    )


@bp.route("/bookings/<int:booking_id>/reject", methods=["POST"])
def reject(booking_id: int) -> Any:
    """Reject with a reason; a missing reason re-renders the approval queue (422).

    :raises NotFound, Forbidden: see ``_managed_booking``.
    """
    booking = _managed_booking(booking_id)
    form = RejectForm()
    outcome = attempt(
        form, lambda: services.reject_booking(current_user, booking, form.reason.data, now_utc())
    )
    if outcome is not None and not isinstance(outcome, LabbookError):
        flash(_("The booking of %(name)s was rejected.", name=booking.user.name), "success")
        return redirect(next_target(form, url_for("bookings.approvals")))
    error = outcome if isinstance(outcome, LabbookError) else None
    return render_approvals(
        status_for(form, outcome), reject_form=form, failed_id=booking.id, error=error
    )


def approve_many(actor: User, ids: list[int]) -> tuple[list[Booking], list[str]]:
    """Approve each booking in its own savepoint, so one refusal keeps the others.

    :returns: the approved bookings and one message per booking that was not approved.
    """
    done, problems, now = [], [], now_utc()
    with notices.series_batch():  # one message per booking or per series, sent below
        for booking_id in dict.fromkeys(ids):
            _approve_one(actor, booking_id, now, done, problems)
    notices.bookings_approved(actor, done, now)
    return done, problems


def _approve_one(
    actor: User, booking_id: int, now: datetime, done: list[Booking], problems: list[str]
) -> None:
    booking = db.session.get(Booking, booking_id)
    if booking is None or not booking.can_manage(actor):
        problems.append(_("Booking #%(id)d: not found.", id=booking_id))
        return
    try:
        with db.session.begin_nested():
            services.approve_booking(actor, booking, now)
    except REFUSALS as error:
        problems.append(_("Booking #%(id)d: %(reason)s", id=booking_id, reason=error.message))
        return
    done.append(booking)


@bp.route("/manage/approvals", methods=["POST"])
def approve_bulk() -> Any:
    """Approve the ticked bookings and report each one that could not be approved.

    :raises Forbidden: for users who manage no facility.
    """
    _require_manager()
    form = BulkApproveForm()
    if not form.validate_on_submit():
        return render_approvals(422, bulk_form=form)
    done, problems = approve_many(current_user, form.booking_ids.data)
    db.session.commit()
    if done:
        flash(_("%(n)d booking(s) approved.", n=len(done)), "success")
    for problem in problems:
        flash(problem, "error")
    return redirect(url_for("bookings.approvals"))


# -- today's schedule -------------------------------------------------------------------------


@bp.route("/manage/facilities/<int:facility_id>/today")
def today(facility_id: int) -> str:
    """Who uses what today and tomorrow in one facility.

    :raises NotFound: unknown facility. :raises Forbidden: unless the user manages it.
    """
    facility = load(Facility, facility_id, _("No such facility."))
    authorize(current_user.manages_facility(facility), _("Only managers of this facility."))
    now = now_utc()
    return render_template(
        "bookings/today.html",
        facility=facility,
        schedule=pages.facility_schedule(facility, now),
        actions=lambda b: pages.booking_actions(b, current_user, now),
        action_form=ActionForm(formdata=None),
        now=now,
    )


# -- qualifications ---------------------------------------------------------------------------


def _managed_instrument(instrument_id: int) -> Instrument:
    """:raises NotFound: unknown. :raises Forbidden: unless a manager of its facility."""
    instrument = load(Instrument, instrument_id, _("No such instrument."))
    authorize(
        current_user.manages_facility(instrument.facility_id),
        _("Only managers of this facility may manage its qualifications."),
    )
    return instrument


def render_qualifications(instrument: Instrument, form: GrantForm, status: int = 200) -> Any:
    live = sa.select(Qualification).where(Qualification.revoked_at.is_(None))
    return render_template(
        "bookings/qualifications.html",
        instrument=instrument,
        form=form,
        granted=db.session.scalars(
            live.where(Qualification.instrument_id == instrument.id).order_by(Qualification.id)
        ).all(),
        by_category=db.session.scalars(
            live.where(Qualification.category == instrument.category).order_by(Qualification.id)
        ).all(),
        requests=db.session.scalars(
            sa.select(QualificationRequest)
            .where(
                QualificationRequest.instrument_id == instrument.id,
                QualificationRequest.state == "open",
            )
            .order_by(QualificationRequest.created_at)
        ).all(),
        action_form=ActionForm(formdata=None),
        now=now_utc(),
    ), status


@bp.route("/instruments/<int:instrument_id>/qualifications", methods=["GET", "POST"])
def qualifications_page(instrument_id: int) -> Any:
    """List and grant qualifications on an instrument (POST grants, by email).

    :raises NotFound, Forbidden: see ``_managed_instrument``.
    """
    instrument = _managed_instrument(instrument_id)
    form = GrantForm(level="basic")
    outcome = attempt(
        form,
        lambda: qualifications.grant_qualification(
            current_user, form.user(), instrument=instrument, level=form.level.data,
            expires_at=form.expires_at(pages.zone_of(instrument)),
            note=form.note.data or None, now=now_utc(),
        ),
    )
    if isinstance(outcome, Qualification):
        flash(_("%(name)s is qualified on this instrument.", name=outcome.user.name), "success")
        return redirect(url_for("bookings.qualifications_page", instrument_id=instrument.id))
    return render_qualifications(instrument, form, status_for(form, outcome))


def _qualification_action(instrument: Instrument, action: Any, message: str) -> Any:
    form = ActionForm()
    outcome = attempt(form, action)
    if outcome is None or isinstance(outcome, LabbookError):
        text = outcome.message if outcome is not None else _("The form has expired.")
        flash(text, "error")
    else:
        flash(message, "success")
    return redirect(url_for("bookings.qualifications_page", instrument_id=instrument.id))


@bp.route(
    "/instruments/<int:instrument_id>/qualifications/<int:qualification_id>/revoke",
    methods=["POST"],
)
def revoke(instrument_id: int, qualification_id: int) -> Any:
    """:raises NotFound: unknown, or not this instrument's. :raises Forbidden: see above."""
    instrument = _managed_instrument(instrument_id)
    qualification = load(Qualification, qualification_id)
    if qualification.instrument_id != instrument.id:
        raise NotFound(_("Not found."))
    return _qualification_action(
        instrument,
        lambda: qualifications.revoke_qualification(current_user, qualification, now_utc()),
        _("The qualification of %(name)s was revoked.", name=qualification.user.name),
    )


@bp.route(
    "/instruments/<int:instrument_id>/qualification-requests/<int:request_id>/decline",
    methods=["POST"],
)
def decline(instrument_id: int, request_id: int) -> Any:
    """:raises NotFound: unknown, or not this instrument's. :raises Forbidden: see above."""
    instrument = _managed_instrument(instrument_id)
    req = load(QualificationRequest, request_id)
    if req.instrument_id != instrument.id:
        raise NotFound(_("Not found."))
    return _qualification_action(
        instrument,
        lambda: qualifications.decline_request(current_user, req, now_utc()),
        _("The request of %(name)s was declined.", name=req.user.name),
    )
