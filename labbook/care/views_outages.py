"""Managers' pages for outages and preventive maintenance (issue 7 items 1 and 2): list a
facility's or an instrument's current and upcoming outages; schedule one (on an instrument
or every instrument of the facility) with a preview of the bookings it cancels, then
confirm; end an unplanned outage now; cancel one; record a window's completion; and the
maintenance plans of an instrument. Managers of the facility and admins only (403 for
others, 404 for unknown ids). Load, authorize, one service call, commit, redirect;
refusals roll back and re-render with the reason.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from labbook.auth.guards import authorize
from labbook.bookings import outages
from labbook.bookings.forms import local_to_utc
from labbook.bookings.models import Outage
from labbook.bookings.views import REFUSALS, load
from labbook.care import bp, maintenance
from labbook.care.models import MaintenancePlan
from labbook.db import now_utc
from labbook.errors import LabbookError, ValidationError
from labbook.extensions import db
from labbook.forms import BaseForm
from labbook.instruments.models import Facility, Instrument

RECENT = timedelta(days=30)
KIND_LABELS = {"preventive": _l("Preventive maintenance"), "repair": _l("Repair"),
               "calibration": _l("Calibration"), "closure": _l("Closure")}
UNIT_LABELS = {"days": _l("days"), "weeks": _l("weeks"), "months": _l("months"),
               "usage_hours": _l("hours of use")}


def kind_label(kind: str | None) -> str:
    return str(KIND_LABELS.get(kind or "", kind or ""))


def _local(day: date | None, clock: time | None, zone: ZoneInfo, name: str,
           errors: dict[str, list[str]]) -> datetime | None:
    """The UTC instant of a local date and time; records a message under ``name``."""
    if day is None or clock is None:
        errors[name] = [_("This field is required.")]
        return None
    moment = local_to_utc(day, clock, zone)
    if moment is None:
        errors[name] = [_("This local time does not exist on that day (the clocks change).")]
    return moment


# -- forms ------------------------------------------------------------------------------------


class OutageForm(BaseForm):
    """An outage on one instrument (or 0: all) on the facility's wall clock, or an
    unplanned one that starts now with an open end."""

    instrument = SelectField(_l("Instrument"), coerce=int)
    kind = SelectField(_l("Kind"), choices=[SelectChoice(k, v) for k, v in KIND_LABELS.items()],
                       validators=[InputRequired()])
    title = StringField(_l("Title"), validators=[Optional(), Length(max=outages.TITLE_MAX)])
    unplanned = BooleanField(_l("Unplanned: starts now, end not known yet"))
    date = DateField(_l("Start date"), validators=[Optional()])
    start_time = TimeField(_l("Start time"), validators=[Optional()])
    end_date = DateField(_l("End date"), validators=[Optional()],
                         description=_l("Leave empty when it ends on the start date."))
    end_time = TimeField(_l("End time"), validators=[Optional()])

    def __init__(self, facility: Facility, instrument_id: int | None = None) -> None:
        super().__init__()
        instruments = sorted(facility.instruments, key=lambda i: i.name.lower())
        self.instrument.choices = [SelectChoice(0, _("All instruments of the facility"))] + [
            SelectChoice(i.id, i.name) for i in instruments]
        if not self.is_submitted() and instrument_id:
            self.instrument.data = instrument_id

    def interval(self, zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime | None]:
        """:raises ValidationError: missing, non-existent or reversed times."""
        if self.unplanned.data:
            return now, None
        errors: dict[str, list[str]] = {}
        start = _local(self.date.data, self.start_time.data, zone, "start_time", errors)
        end = _local(self.end_date.data or self.date.data, self.end_time.data, zone,
                     "end_time", errors)
        if start is not None and end is not None and end <= start:
            errors["end_time"] = [_("The end must be after the start.")]
        if errors:
            raise ValidationError(_("Please correct the times."), errors)
        assert start is not None
        return start, end


class CompletionForm(BaseForm):
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=5000)])
    checklist_done = SelectMultipleField(_l("Checklist items done"), validators=[Optional()])

    def __init__(self, items: list[str]) -> None:
        super().__init__()
        self.checklist_done.choices = [SelectChoice(item, item) for item in items]


class PlanForm(BaseForm):
    title = StringField(_l("Title"), validators=[InputRequired(), Length(max=outages.TITLE_MAX)])
    outage_kind = SelectField(_l("Kind"), choices=[SelectChoice(k, KIND_LABELS[k]) for k in
                                                   maintenance.PLAN_KINDS])
    interval_count = IntegerField(_l("Every"), validators=[
        InputRequired(), NumberRange(min=1, max=maintenance.MAX_COUNT)])
    interval_unit = SelectField(_l("Unit"), choices=[SelectChoice(k, v)
                                                     for k, v in UNIT_LABELS.items()])
    duration_minutes = IntegerField(_l("Duration (minutes)"), validators=[
        InputRequired(), NumberRange(min=1, max=maintenance.MAX_DURATION)])
    first_date = DateField(_l("First window: date"), validators=[InputRequired()])
    first_time = TimeField(_l("First window: start time"), validators=[InputRequired()])
    checklist = TextAreaField(_l("Checklist"), description=_l("One item per line."))
    active = BooleanField(_l("Active"), default=True)

    def __init__(self, obj: MaintenancePlan | None, zone: ZoneInfo) -> None:
        super().__init__(obj=obj)
        if obj is not None and not self.is_submitted():
            self.checklist.data = "\n".join(obj.checklist or [])
            here = obj.first_start.astimezone(zone)
            self.first_date.data, self.first_time.data = here.date(), here.time()

    def values(self, zone: ZoneInfo) -> dict[str, Any]:
        """The plan's values. :raises ValidationError: a first start that does not exist."""
        errors: dict[str, list[str]] = {}
        first = _local(self.first_date.data, self.first_time.data, zone, "first_time", errors)
        if errors:
            raise ValidationError(_("Please correct the times."), errors)
        return {
            "title": self.title.data, "outage_kind": self.outage_kind.data,
            "interval_count": self.interval_count.data, "interval_unit": self.interval_unit.data,
            "duration_minutes": self.duration_minutes.data, "first_start": first,
            "checklist": self.checklist.data or "", "active": bool(self.active.data),
        }


def _manage(facility_id: int) -> None:
    """:raises Forbidden: unless the user manages the facility (admins do)."""
    authorize(current_user.manages_facility(facility_id),
              _("Only managers of this facility may manage its outages."))


def _outages_of(instrument_ids: list[int], now: datetime) -> dict[str, list[Outage]]:
    """Current and upcoming outages, and recently ended windows not yet completed."""
    base = sa.select(Outage).where(Outage.instrument_id.in_(instrument_ids),
                                   Outage.state == "scheduled").order_by(Outage.start_at)
    current = base.where(sa.or_(Outage.end_at.is_(None), Outage.end_at > now))
    ended = base.where(Outage.end_at <= now, Outage.end_at > now - RECENT,
                       Outage.completed_at.is_(None))
    return {"current": list(db.session.scalars(current)),
            "ended": list(db.session.scalars(ended))}


def _render_list(facility: Facility, instrument: Instrument | None) -> str:
    now = now_utc()
    ids = [instrument.id] if instrument else [i.id for i in facility.instruments]
    return render_template("care/outage_list.html", facility=facility, instrument=instrument,
                           now=now, kind_label=kind_label, action_form=BaseForm(formdata=None),
                           **_outages_of(ids, now))


@bp.route("/manage/facilities/<int:facility_id>/outages")
def facility_outages(facility_id: int) -> Any:
    """:raises NotFound: unknown facility. :raises Forbidden: not its manager."""
    facility = load(Facility, facility_id, _("No such facility."))
    _manage(facility.id)
    return _render_list(facility, None)


@bp.route("/manage/instruments/<int:instrument_id>/outages")
def instrument_outages(instrument_id: int) -> Any:
    """:raises NotFound: unknown instrument. :raises Forbidden: not its manager."""
    instrument = load(Instrument, instrument_id, _("No such instrument."))
    _manage(instrument.facility_id)
    return _render_list(instrument.facility, instrument)


def _schedule(form: OutageForm, facility: Facility, dry_run: bool) -> list[Any]:
    """Preview or schedule the form's outage. :raises: the service's refusals."""
    zone, now = ZoneInfo(facility.timezone), now_utc()
    start, end = form.interval(zone, now)
    chosen = [i for i in facility.instruments if i.status != "retired"]
    if form.instrument.data:
        chosen = [i for i in facility.instruments if i.id == form.instrument.data]
    return outages.schedule_facility_outage(
        current_user, sorted(chosen, key=lambda i: i.id), start, end, form.kind.data,
        form.title.data, now=now, dry_run=dry_run)


def _attempt_schedule(form: OutageForm, facility: Facility) -> tuple[Any, bool]:
    """(results or the refusal, confirmed)."""
    confirm = request.form.get("action") == "confirm"
    try:
        results = _schedule(form, facility, dry_run=not confirm)
    except REFUSALS as error:
        db.session.rollback()
        if isinstance(error, ValidationError):
            form.apply_errors({k if k in form else "": v for k, v in error.fields.items()})
        return error, False
    if confirm:
        db.session.commit()
    else:
        db.session.rollback()  # a preview writes nothing
    return results, confirm


@bp.route("/manage/facilities/<int:facility_id>/outages/new", methods=["GET", "POST"])
def new_outage(facility_id: int) -> Any:
    """Schedule an outage: a first submission previews (the bookings it would cancel),
    the confirm button schedules. :raises NotFound, Forbidden: see ``facility_outages``."""
    facility = load(Facility, facility_id, _("No such facility."))
    _manage(facility.id)
    form = OutageForm(facility, request.args.get("instrument", type=int))
    outcome, confirmed, status = None, False, 200
    if form.validate_on_submit():
        outcome, confirmed = _attempt_schedule(form, facility)
    if confirmed:
        flash(_("The outage was scheduled; %(n)d booking(s) were cancelled and their owners "
                "told.", n=sum(len(r.affected) for r in outcome)), "success")
        return redirect(url_for("care.facility_outages", facility_id=facility.id))
    if isinstance(outcome, LabbookError):
        status = outcome.status
    elif form.errors:
        status = 422
    return render_template(
        "care/outage_new.html", facility=facility, form=form, kind_label=kind_label,
        error=outcome if isinstance(outcome, LabbookError) else None,
        preview=outcome if isinstance(outcome, list) else None,
    ), status


def _managed_outage(outage_id: int) -> Outage:
    """:raises NotFound: unknown. :raises Forbidden: not a manager of its facility."""
    outage = load(Outage, outage_id, _("No such outage."))
    _manage(outage.instrument.facility_id)
    return outage


def _back(outage: Outage) -> Any:
    return redirect(url_for("care.instrument_outages", instrument_id=outage.instrument_id))


def _act(outage: Outage, action: Any, done: str) -> Any:
    if not BaseForm().validate_on_submit():
        flash(_("The form has expired or was not sent from this site. Please try again."),
              "error")
        return _back(outage)
    try:
        action()
    except REFUSALS as error:
        db.session.rollback()
        flash(error.message, "error")
        return _back(outage)
    db.session.commit()
    flash(done, "success")
    return _back(outage)


@bp.route("/manage/outages/<int:outage_id>/end", methods=["POST"])
def end_outage(outage_id: int) -> Any:
    """The instrument is fixed: the outage ends now. :raises NotFound, Forbidden."""
    outage = _managed_outage(outage_id)
    now = now_utc()
    if outage.end_at is not None and outage.end_at <= now:
        flash(_("The outage has already ended."), "info")
        return _back(outage)
    return _act(outage, lambda: outages.end_outage(current_user, outage, now, now=now),
                _("The outage has ended; the instrument can be booked again."))


@bp.route("/manage/outages/<int:outage_id>/cancel", methods=["POST"])
def cancel_outage(outage_id: int) -> Any:
    """Give the window back. :raises NotFound, Forbidden."""
    outage = _managed_outage(outage_id)
    return _act(outage, lambda: outages.cancel_outage(current_user, outage, now=now_utc()),
                _("The outage was cancelled."))


@bp.route("/manage/outages/<int:outage_id>/complete", methods=["GET", "POST"])
def complete_outage(outage_id: int) -> Any:
    """Record the work done in a maintenance window. :raises NotFound, Forbidden."""
    outage = _managed_outage(outage_id)
    plan = db.session.get(MaintenancePlan, outage.plan_id) if outage.plan_id else None
    form = CompletionForm(plan.checklist if plan else [])
    error = None
    if form.validate_on_submit():
        try:
            maintenance.complete_window(current_user, outage, form.notes.data,
                                        form.checklist_done.data or [], now_utc())
            db.session.commit()
            flash(_("The completion was recorded."), "success")
            return _back(outage)
        except REFUSALS as refusal:
            db.session.rollback()
            error = refusal
            if isinstance(refusal, ValidationError):
                form.apply_errors(refusal.fields)
    status = error.status if error else (422 if form.errors else 200)
    return render_template("care/outage_complete.html", outage=outage, plan=plan, form=form,
                           error=error, kind_label=kind_label), status


# -- maintenance plans ------------------------------------------------------------------------


def _managed_instrument(instrument_id: int) -> Instrument:
    instrument = load(Instrument, instrument_id, _("No such instrument."))
    _manage(instrument.facility_id)
    return instrument


@bp.route("/instruments/<int:instrument_id>/maintenance")
def plans(instrument_id: int) -> Any:
    """An instrument's maintenance plans. :raises NotFound, Forbidden."""
    instrument = _managed_instrument(instrument_id)
    rows = db.session.scalars(sa.select(MaintenancePlan).where(
        MaintenancePlan.instrument_id == instrument.id).order_by(MaintenancePlan.id)).all()
    windows = _outages_of([instrument.id], now_utc())
    return render_template("care/plan_list.html", instrument=instrument, plans=rows,
                           windows=windows["current"], kind_label=kind_label,
                           unit_labels=UNIT_LABELS, action_form=BaseForm(formdata=None))


def _save_plan(form: PlanForm, instrument: Instrument, plan: MaintenancePlan | None) -> Any:
    try:
        values = form.values(ZoneInfo(instrument.facility.timezone))
        if plan is None:
            maintenance.create_plan(current_user, instrument, **values)
        else:
            maintenance.update_plan(current_user, plan, **values)
    except REFUSALS as error:
        db.session.rollback()
        if isinstance(error, ValidationError):
            form.apply_errors({k if k in form else "": v for k, v in error.fields.items()})
        return error
    db.session.commit()
    flash(_("The maintenance plan was saved. Its windows appear within the hour."), "success")
    return None


def _plan_page(instrument: Instrument, plan: MaintenancePlan | None) -> Any:
    form = PlanForm(obj=plan, zone=ZoneInfo(instrument.facility.timezone))
    error = None
    if form.validate_on_submit():
        error = _save_plan(form, instrument, plan)
        if error is None:
            return redirect(url_for("care.plans", instrument_id=instrument.id))
    status = error.status if error else (422 if form.errors else 200)
    return render_template("care/plan_form.html", instrument=instrument, plan=plan,
                           form=form, error=error), status


@bp.route("/instruments/<int:instrument_id>/maintenance/new", methods=["GET", "POST"])
def new_plan(instrument_id: int) -> Any:
    """:raises NotFound, Forbidden."""
    return _plan_page(_managed_instrument(instrument_id), None)


@bp.route("/maintenance/<int:plan_id>/edit", methods=["GET", "POST"])
def edit_plan(plan_id: int) -> Any:
    """:raises NotFound, Forbidden."""
    plan = load(MaintenancePlan, plan_id, _("No such maintenance plan."))
    _manage(plan.instrument.facility_id)
    return _plan_page(plan.instrument, plan)


@bp.route("/maintenance/<int:plan_id>/delete", methods=["POST"])
def delete_plan(plan_id: int) -> Any:
    """Stop a plan; its windows that have not started are cancelled. :raises NotFound,
    Forbidden."""
    plan = load(MaintenancePlan, plan_id, _("No such maintenance plan."))
    _manage(plan.instrument.facility_id)
    if not BaseForm().validate_on_submit():
        return redirect(url_for("care.plans", instrument_id=plan.instrument_id))
    count = maintenance.delete_plan(current_user, plan, now_utc())
    db.session.commit()
    flash(_("The plan was stopped; %(n)d upcoming window(s) were cancelled.", n=count),
          "success")
    return redirect(url_for("care.plans", instrument_id=plan.instrument_id))
