"""Booking pages for everyone: the booking form (with the clash and nearby alternatives when
the time is taken), my bookings, a booking's page with its actions (cancel, reschedule,
check in/out) and an instrument's week grid. Manager pages are in ``manage.py``.

Views parse, load (404), authorize (403), call one service, commit, then redirect or render.
A refused request rolls back (nothing is written) and re-renders its form with the reason:
422 for a broken rule or bad input, 403 when the user may not, 409 when the time is taken.
Times are entered and shown on the facility's wall clock (``forms.local_to_utc``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from labbook.auth.guards import authorize, get_or_404
from labbook.bookings import bp, pages, qualifications, services, usage, views_series
from labbook.bookings.series import cancel_in_scope
from labbook.bookings.errors import BookingConflict, NotAllowed
from labbook.bookings.labels import state_label
from labbook.bookings.forms import (
    MAX_ID,
    SERVICE_FIELDS,
    ActionForm,
    CANCEL_SCOPES,
    CancelForm,
    QualificationRequestForm,
    RescheduleForm,
    SeriesBookingForm,
    TimesForm,
    chargeable_accounts,
    default_length,
    iso_z,
    next_target,
    parse_day,
    parse_instant,
)
from labbook.bookings.models import Booking
from labbook.bookings.models.reservations import HOLDING_BOOKING_STATES as HOLDING
from labbook.bookings.series import SeriesNotBooked, SeriesResult
from labbook.db import now_utc, run_with_retry
from labbook.errors import Conflict, Forbidden, LabbookError, NotFound, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Instrument
from labbook.instruments.views import duration, zone_label

REFUSALS = (ValidationError, Forbidden, Conflict, SeriesNotBooked)
CANCELLED_MESSAGES = {
    "occurrence": _l("The booking was cancelled."),
    "following": _l("The booking and the following ones of its series were cancelled."),
    "series": _l("The upcoming bookings of the series were cancelled."),
}
M = TypeVar("M")


# -- shared helpers ---------------------------------------------------------------------------


@bp.app_context_processor
def _booking_helpers() -> dict[str, Any]:
    """Offered to every template (the instrument page shows Book / Request buttons)."""
    return {
        "booking_access": lambda instrument: pages.booking_access(
            instrument, current_user, now_utc()
        ),
        "booking_state_label": state_label,
        "time_span": pages.time_span,
        "day_label": pages.day_label,
        "zone_label": zone_label,
        "duration": duration,
        "cancel_scopes": list(CANCEL_SCOPES.items()),
    }


def load(model: type[M], ident: int, message: str | None = None) -> M:
    """``get_or_404`` that also answers 404 for ids no integer column can hold (which the
    databases would refuse with an error instead of finding nothing).

    :raises NotFound: unknown or impossible id.
    """
    if not 0 < ident <= MAX_ID:
        raise NotFound(message or _("Not found."))
    return get_or_404(model, ident, message)


def visible_booking(booking_id: int) -> Booking:
    """A booking its owner, its facility's managers and admins may see; 404 for the rest,
    so ids of other people's bookings reveal nothing.

    :raises NotFound: unknown, or not visible to the current user.
    """
    booking = db.session.get(Booking, booking_id) if 0 < booking_id <= MAX_ID else None
    if booking is None or not booking.can_see_details(current_user):
        raise NotFound(_("No such booking."))
    return booking


def attempt(form: Any, action: Callable[[], Any]) -> Any:
    """Run ``action`` (one service call) for a valid submission and commit, through
    ``run_with_retry`` like the API (a deadlock victim, or a clash the database caught
    before the check could, runs again). On a refusal roll back, put field messages on
    ``form`` and return the error; None when the form was not submitted or is invalid."""
    if not form.validate_on_submit():
        return None
    try:
        return run_with_retry(action)
    except REFUSALS as error:
        db.session.rollback()
        if isinstance(error, ValidationError):
            _attach(form, error.fields)
        return error


def _attach(form: Any, fields: dict[str, list[str]]) -> None:
    """Put a service's field messages on the form's fields (renamed where the form calls
    them otherwise); messages for anything that is not a field go to the form itself."""
    for name, messages in fields.items():
        name = SERVICE_FIELDS.get(name, name)
        form.apply_errors({name if name in form else "": messages})


def status_for(form: Any, outcome: Any) -> int:
    if isinstance(outcome, LabbookError):
        return outcome.status
    return 422 if form.errors else 200


def _refusal_context(instrument: Instrument, outcome: Any) -> dict[str, Any]:
    """What the form pages show about a refusal: the message, the clash and alternatives."""
    error = outcome if isinstance(outcome, LabbookError) else None
    conflict = outcome if isinstance(outcome, BookingConflict) else None
    return {
        "error": error,
        "needs_qualification": isinstance(outcome, NotAllowed) and outcome.rule == "qualification",
        "conflicts": pages.conflict_rows(conflict.conflicts) if conflict else [],
        "alternatives": (
            pages.alternative_rows(conflict.alternatives, pages.zone_of(instrument))
            if conflict
            else []
        ),
        "occurrences": views_series.refused_occurrences(outcome),
    }


# -- booking form -----------------------------------------------------------------------------


def _prefill(form: TimesForm, instrument: Instrument, zone: ZoneInfo) -> None:
    """From ``?start=`` (ISO with offset, e.g. a week-grid cell) and optional ``?end=``."""
    start = parse_instant(request.args.get("start"))
    if start is None:
        form.date.data = pages.local_today(zone, now_utc())
        return
    end = parse_instant(request.args.get("end"))
    if end is None or end <= start:
        end = start + default_length(instrument)
    form.prefill(start, end, zone)


def _booked_message(booking: Booking) -> str:
    when = pages.time_span(booking.start_at, booking.end_at, booking.instrument.facility.timezone)
    if booking.state == "pending":
        return _(
            "Requested %(instrument)s for %(when)s. The booking awaits approval by a facility "
            "manager.",
            instrument=booking.instrument.name,
            when=when,
        )
    return _(
        "Booked %(instrument)s for %(when)s. The booking is confirmed.",
        instrument=booking.instrument.name,
        when=when,
    )


@bp.route("/instruments/<int:instrument_id>/book", methods=["GET", "POST"])
def new(instrument_id: int) -> Any:
    """Book an instrument.

    :raises NotFound: unknown instrument.
    """
    instrument = services.instrument_for_booking(instrument_id, current_user)
    form = SeriesBookingForm(chargeable_accounts(current_user))
    if not form.is_submitted():
        _prefill(form, instrument, pages.zone_of(instrument))
    outcome = attempt(form, lambda: views_series.book(form, instrument, now_utc()))
    if isinstance(outcome, Booking):
        flash(_booked_message(outcome), "success")
        return redirect(url_for("bookings.mine"))
    if isinstance(outcome, SeriesResult):
        return views_series.series_result(instrument, outcome)
    context = _refusal_context(instrument, outcome)
    return render_template(
        "bookings/new.html", instrument=instrument, form=form, **context
    ), status_for(form, outcome)


# -- my bookings and a booking's page ---------------------------------------------------------


@bp.route("/bookings")
def mine() -> str:
    """The current user's bookings: upcoming (holding the slot, not yet over) or, with
    ``?show=past``, everything else, newest first."""
    past, now = request.args.get("show") == "past", now_utc()
    upcoming = sa.and_(Booking.state.in_(HOLDING), Booking.end_at > now)
    stmt = sa.select(Booking).where(Booking.user_id == current_user.id)
    if past:
        stmt = stmt.where(sa.not_(upcoming)).order_by(Booking.start_at.desc())
    else:
        stmt = stmt.where(upcoming).order_by(Booking.start_at)
    page = db.paginate(
        stmt,
        page=min(max(request.args.get("page", 1, type=int), 1), 100_000),
        per_page=current_app.config["LABBOOK_PAGE_SIZE"],
        error_out=False,
    )
    return render_template(
        "bookings/mine.html",
        page=page,
        past=past,
        actions=lambda b: pages.booking_actions(b, current_user, now),
        action_form=ActionForm(formdata=None),
    )


def render_booking(booking: Booking, status: int = 200, **forms: Any) -> tuple[str, int]:
    """The booking page, with any submitted form (and its errors) in place."""
    return render_template(
        "bookings/detail.html",
        booking=booking,
        actions=pages.booking_actions(booking, current_user, now_utc()),
        action_form=forms.get("action_form") or ActionForm(formdata=None),
        cancel_form=forms.get("cancel_form") or CancelForm(formdata=None),
        reject_form=forms.get("reject_form"),
        error=forms.get("error"),
    ), status


@bp.route("/bookings/<int:booking_id>")
def detail(booking_id: int) -> Any:
    """:raises NotFound: unknown, or not the user's (managers and admins see all)."""
    return render_booking(visible_booking(booking_id))


def act(
    booking: Booking, form: Any, action: Callable[[], Any], message: str, form_name: str
) -> Any:
    """One button's POST: run ``action``, flash and go back (``next``); on a refusal show
    the booking page with the reason and the status of the refusal."""
    outcome = attempt(form, action)
    if outcome is not None and not isinstance(outcome, LabbookError):
        flash(message, "success")
        return redirect(next_target(form, url_for("bookings.detail", booking_id=booking.id)))
    error = outcome if isinstance(outcome, LabbookError) else None
    return render_booking(booking, status_for(form, outcome), error=error, **{form_name: form})


@bp.route("/bookings/<int:booking_id>/cancel", methods=["POST"])
def cancel(booking_id: int) -> Any:
    """:raises NotFound: unknown or not visible."""
    booking = visible_booking(booking_id)
    form = CancelForm()
    scope = form.scope.data if form.scope.data in CANCELLED_MESSAGES else "occurrence"
    return act(
        booking,
        form,
        lambda: cancel_in_scope(current_user, booking, scope, form.reason.data, now_utc()),
        str(CANCELLED_MESSAGES[scope]),
        "cancel_form",
    )


@bp.route("/bookings/<int:booking_id>/check-in", methods=["POST"])
def check_in(booking_id: int) -> Any:
    """:raises NotFound: unknown or not visible."""
    booking = visible_booking(booking_id)
    form = ActionForm()
    return act(
        booking,
        form,
        lambda: usage.check_in(current_user, booking, now_utc()),
        _("Checked in. The instrument is in use."),
        "action_form",
    )


@bp.route("/bookings/<int:booking_id>/check-out", methods=["POST"])
def check_out(booking_id: int) -> Any:
    """:raises NotFound: unknown or not visible."""
    booking = visible_booking(booking_id)
    form = ActionForm()
    return act(
        booking,
        form,
        lambda: usage.check_out(current_user, booking, now_utc()),
        _("Checked out. Thank you."),
        "action_form",
    )


@bp.route("/bookings/<int:booking_id>/edit", methods=["GET", "POST"])
def edit(booking_id: int) -> Any:
    """Move, extend or shorten a booking.

    :raises NotFound: unknown or not visible.
    """
    booking = visible_booking(booking_id)
    authorize(booking.is_owner(current_user) or booking.can_manage(current_user),
              _("Only the booking's owner or a facility manager may change it."))
    instrument = booking.instrument
    zone = pages.zone_of(instrument)
    form = RescheduleForm()
    if not form.is_submitted():
        form.prefill(booking.start_at, booking.end_at, zone)

    def change() -> Booking:
        start, end = form.interval(zone)
        return services.reschedule_booking(current_user, booking, start, end, now_utc())

    outcome = attempt(form, change)
    if isinstance(outcome, Booking):
        flash(_("The booking now runs %(when)s.", when=_span(outcome)), "success")
        return redirect(url_for("bookings.detail", booking_id=booking.id))
    return render_template(
        "bookings/edit.html", booking=booking, instrument=instrument, form=form,
        **_refusal_context(instrument, outcome),
    ), status_for(form, outcome)


def _span(booking: Booking) -> str:
    return pages.time_span(booking.start_at, booking.end_at, booking.instrument.facility.timezone)


# -- week grid and qualification requests -----------------------------------------------------


@bp.route("/instruments/<int:instrument_id>/week")
def week(instrument_id: int) -> str:
    """The week grid. ``?start=YYYY-MM-DD`` picks the week (snapped to its Monday);
    ``?hours=all`` shows whole days (the default for those who may book at any hour).

    :raises NotFound: unknown instrument.
    """
    instrument = load(Instrument, instrument_id, _("No such instrument."))
    now, zone = now_utc(), pages.zone_of(instrument)
    day = parse_day(request.args.get("start")) or pages.local_today(zone, now)
    monday = pages.monday_of(day)
    anytime = pages.may_book_anytime(instrument, current_user, now)
    hours = request.args.get("hours")
    full_day = hours == "all" or (anytime and hours != "day")
    grid = pages.week_grid(instrument, current_user, monday, now, full_day)
    return render_template(
        "bookings/week.html", instrument=instrument, grid=grid, iso_z=iso_z,
        prev_week=monday - timedelta(days=7), next_week=monday + timedelta(days=7),
        today=pages.local_today(zone, now),
    )


@bp.route("/instruments/<int:instrument_id>/request-qualification", methods=["POST"])
def request_qualification(instrument_id: int) -> Any:
    """Ask the facility for training on (qualification for) an instrument.

    :raises NotFound: unknown instrument.
    """
    instrument = load(Instrument, instrument_id, _("No such instrument."))
    form = QualificationRequestForm()
    outcome = attempt(
        form,
        lambda: qualifications.request_qualification(current_user, instrument, form.message.data),
    )
    if outcome is not None and not isinstance(outcome, LabbookError):
        flash(_("Your request was sent to the facility's managers."), "success")
        return redirect(url_for("instruments.detail", instrument_id=instrument.id))
    return render_template(
        "bookings/request_qualification.html", instrument=instrument, form=form
    ), status_for(form, outcome)
