"""Usage reconciliation pages (routes attach to ``labbook.care.bp``): per facility and month
the sessions with booked vs actual minutes, no-shows, overruns, open sessions and those the
system closed (needing review), totals per instrument and a CSV download of the same rows.
Managers of the facility (and admins) correct actual times or confirm an auto-closed
session; finance reads every facility's reconciliation but changes nothing.

Times are entered and shown on the facility's wall clock.
"""
from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import DateField, HiddenField, StringField, TimeField
from wtforms.validators import DataRequired, Length, Optional

from labbook.auth.guards import authorize
from labbook.bookings.forms import ActionForm, local_to_utc
from labbook.bookings.models import Booking
from labbook.bookings.views import load
from labbook.care import bp, usage
from labbook.db import now_utc
from labbook.errors import LabbookError, NotFound, ValidationError
from labbook.extensions import db
from labbook.forms import BaseForm
from labbook.instruments.models import Facility

CSV_COLUMNS = (
    "booking_id", "instrument", "asset_code", "user", "email", "team", "account", "state",
    "walk_in", "booked_start", "booked_end", "actual_start", "actual_end", "booked_minutes",
    "actual_minutes", "difference_minutes", "no_show", "overrun", "open", "needs_review",
)
# Form fields that carry a service field's messages.
FORM_FIELDS = {"checked_in_at": "in_time", "checked_out_at": "out_time", "reason": "reason"}


class CorrectForm(BaseForm):
    """A session's actual times on the facility's wall clock, and why they change."""

    in_date = DateField(_l("Started on"), validators=[DataRequired()])
    in_time = TimeField(_l("at"), validators=[DataRequired()])
    out_date = DateField(_l("Ended on"), validators=[Optional()])
    out_time = TimeField(_l("at"), validators=[Optional()])
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])
    month = HiddenField()

    def times(self, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
        """The entered instants in UTC (the end None when left empty).

        :raises ValidationError: for a local time that does not exist (clock change), or
            an end date without a time.
        """
        errors: dict[str, list[str]] = {}
        start = local_to_utc(self.in_date.data, self.in_time.data, zone)
        if start is None:
            errors["in_time"] = [_("This time does not exist on this day (clock change).")]
        end = None
        if self.out_date.data or self.out_time.data:
            if not (self.out_date.data and self.out_time.data):
                errors["out_time"] = [_("Give both the date and the time of the end.")]
            else:
                end = local_to_utc(self.out_date.data, self.out_time.data, zone)
                if end is None:
                    errors["out_time"] = [
                        _("This time does not exist on this day (clock change).")]
        if errors:
            raise ValidationError(_("The correction has invalid values."), errors)
        return start, end


# -- loading and authorizing --------------------------------------------------------------------


def _readable_facility(facility_id: int) -> Facility:
    """:raises NotFound: unknown facility. :raises Forbidden: unless a manager of it,
    finance or an admin."""
    facility = load(Facility, facility_id, _("No such facility."))
    authorize(current_user.manages_facility(facility) or current_user.is_finance,
              _("Only managers of this facility and finance see its usage."))
    return facility


def _managed_session(facility_id: int, booking_id: int) -> tuple[Facility, Booking]:
    """:raises NotFound: unknown facility or booking, or a booking of another facility.
    :raises Forbidden: unless a manager of the facility."""
    facility = _readable_facility(facility_id)
    authorize(current_user.manages_facility(facility),
              _("Only managers of this facility may correct usage."))
    booking = load(Booking, booking_id, _("No such booking."))
    if booking.instrument.facility_id != facility.id:
        raise NotFound(_("No such booking."))
    return facility, booking


def _month_arg(facility: Facility, value: str | None) -> date:
    zone = ZoneInfo(facility.timezone)
    return usage.parse_month(value) or usage.current_month(zone, now_utc())


def local_parts(moment: datetime | None, tz: str) -> tuple[str, str]:
    """("YYYY-MM-DD", "HH:MM") of ``moment`` on ``tz``'s wall clock, to prefill a form."""
    if moment is None:
        return "", ""
    local = moment.astimezone(ZoneInfo(tz))
    return local.date().isoformat(), f"{local:%H:%M}"


# -- pages --------------------------------------------------------------------------------------


def render_reconciliation(
    facility: Facility, month: date, status: int = 200, form: CorrectForm | None = None,
    failed_id: int | None = None, error: LabbookError | None = None,
) -> tuple[str, int]:
    rows = usage.usage_rows(facility, month)
    return render_template(
        "care/usage.html", facility=facility, month=month, rows=rows,
        totals=usage.totals(rows), may_correct=current_user.manages_facility(facility),
        previous=usage.shift_month(month, -1), following=usage.shift_month(month, 1),
        form=form, failed_id=failed_id, error=error, local_parts=local_parts,
    ), status


@bp.route("/manage/facilities/<int:facility_id>/usage")
def reconciliation(facility_id: int) -> Any:
    """:raises NotFound, Forbidden: see ``_readable_facility``."""
    facility = _readable_facility(facility_id)
    return render_reconciliation(facility, _month_arg(facility, request.args.get("month")))


def _cell(value: Any, zone: ZoneInfo) -> str:
    """A CSV cell: ISO times in the facility's zone, 0/1 for flags, and text that a
    spreadsheet would run as a formula prefixed with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat()
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(rows: list[usage.UsageRow]) -> list[list[Any]]:
    out = []
    for row in rows:
        b = row.booking
        out.append([
            b.id, b.instrument.name, b.instrument.asset_code, b.user.name, b.user.email,
            b.team.name, b.account.code, b.state, row.walk_in, b.start_at, b.end_at,
            b.checked_in_at, b.checked_out_at, row.booked_minutes, row.actual_minutes,
            row.difference, row.no_show, row.overrun, row.is_open, row.needs_review,
        ])
    return out


@bp.route("/manage/facilities/<int:facility_id>/usage.csv")
def reconciliation_csv(facility_id: int) -> Response:
    """The reconciliation's rows as CSV (UTF-8 with BOM, so spreadsheets read Chinese).

    :raises NotFound, Forbidden: see ``_readable_facility``.
    """
    facility = _readable_facility(facility_id)
    month = _month_arg(facility, request.args.get("month"))
    zone = ZoneInfo(facility.timezone)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for values in csv_rows(usage.usage_rows(facility, month)):
        writer.writerow([_cell(v, zone) for v in values])
    name = f"usage-{facility.code}-{month:%Y-%m}.csv"
    return Response("\ufeff" + buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _back(facility: Facility, month_text: str | None) -> Any:
    month = _month_arg(facility, month_text)
    return redirect(url_for("care.reconciliation", facility_id=facility.id,
                            month=f"{month:%Y-%m}"))


@bp.route("/manage/facilities/<int:facility_id>/usage/<int:booking_id>/correct",
          methods=["POST"])
def correct(facility_id: int, booking_id: int) -> Any:
    """Correct a session's actual times; refusals re-render the page (422/403).

    :raises NotFound, Forbidden: see ``_managed_session``.
    """
    facility, booking = _managed_session(facility_id, booking_id)
    form = CorrectForm()
    outcome = _attempt_correction(form, facility, booking)
    if outcome is None:
        flash(_("The times of booking #%(id)d were corrected.", id=booking.id), "success")
        return _back(facility, form.month.data)
    month = _month_arg(facility, form.month.data)
    status = outcome.status if isinstance(outcome, LabbookError) else 422
    error = outcome if isinstance(outcome, LabbookError) else None
    return render_reconciliation(facility, month, status, form, booking.id, error)


def _attempt_correction(form: CorrectForm, facility: Facility, booking: Booking) -> Any:
    """None when done (committed); otherwise the refusal (rolled back) or False for a form
    that does not validate."""
    if not form.validate_on_submit():
        return False
    try:
        start, end = form.times(ZoneInfo(facility.timezone))
        usage.correct_times(current_user, booking, start, end, form.reason.data, now_utc())
    except LabbookError as error:  # refused: invalid times, not allowed, period closed
        db.session.rollback()
        if isinstance(error, ValidationError):
            for name, messages in error.fields.items():
                form.apply_errors({FORM_FIELDS.get(name, name if name in form else ""):
                                   messages})
        return error
    db.session.commit()
    return None


@bp.route("/manage/facilities/<int:facility_id>/usage/<int:booking_id>/confirm",
          methods=["POST"])
def confirm(facility_id: int, booking_id: int) -> Any:
    """Confirm the times of a session the system closed (it no longer needs review).

    :raises NotFound, Forbidden: see ``_managed_session``.
    """
    facility, booking = _managed_session(facility_id, booking_id)
    form = ActionForm()
    if not form.validate_on_submit():
        flash(_("The form has expired. Please try again."), "error")
        return _back(facility, request.form.get("month"))
    try:
        usage.confirm_session(current_user, booking, now_utc())
    except LabbookError as error:
        db.session.rollback()
        flash(error.message, "error")
        return _back(facility, request.form.get("month"))
    db.session.commit()
    flash(_("The times of booking #%(id)d were confirmed.", id=booking.id), "success")
    return _back(facility, request.form.get("month"))
