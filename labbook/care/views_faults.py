"""Fault pages (issue 7 items 3, 4, 9): report a problem (from the instrument page), a
fault's page with its triage history (and the triage form for managers), its photo, a
facility's fault list for managers, an instrument's fault history and its service log.

A fault is shown to its reporter, the facility's managers and admins; others get 404.
Views: load (404), authorize (403), one service call, commit, redirect.
"""
from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.file import FileField
from sqlalchemy.orm import selectinload
from wtforms import SelectField, TextAreaField
from wtforms.validators import Length, Optional

from labbook.auth.guards import authorize, get_or_404
from labbook.care import bp, faults, status
from labbook.care.models import FaultReport
from labbook.db import now_utc
from labbook.errors import LabbookError, NotFound, ValidationError
from labbook.extensions import db
from labbook.forms import BaseForm
from labbook.instruments.models import Facility, Instrument

PAGE_SIZE = 50


def severity_choices() -> list[tuple[str, str]]:
    return [("cosmetic", _("Cosmetic: looks wrong, works")),
            ("degraded", _("Degraded: works, but not fully")),
            ("down", _("Down: cannot be used"))]


def status_choices() -> list[tuple[str, str]]:
    return [("open", _("Open")), ("investigating", _("Investigating")),
            ("waiting_parts", _("Waiting for parts")), ("resolved", _("Resolved"))]


class FaultForm(BaseForm):
    severity = SelectField(_l("How bad is it?"), choices=[], validate_choice=False)
    description = TextAreaField(_l("What is wrong?"), validators=[Length(max=5000)],
                                description=_l("What you saw, when, and what you were doing."))
    photo = FileField(_l("Photo (optional)"),
                      description=_l("JPEG, PNG or WebP, at most 5 MB."))


class TriageForm(BaseForm):
    status = SelectField(_l("Status"), choices=[], validate_choice=False)
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=5000)])


@bp.app_context_processor
def _care_helpers() -> dict[str, Any]:
    return {"instrument_care": instrument_care, "severity_label": severity_label,
            "fault_status_label": fault_status_label}


def severity_label(value: str) -> str:
    return dict(severity_choices()).get(value, value).split(":")[0]


def fault_status_label(value: str) -> str:
    return dict(status_choices()).get(value, value)


def instrument_care(instrument: Instrument) -> dict[str, Any]:
    """What the instrument page's care panel shows the current user."""
    now = now_utc()
    local = now.astimezone(ZoneInfo(instrument.facility.timezone))
    return {
        "status": status.derived_status(instrument, now),
        "open_faults": faults.open_faults(instrument, current_user),
        "downtime": status.downtime(instrument, local.year, local.month, now),
        "can_manage": current_user.manages_facility(instrument.facility_id),
    }


def _visible_fault(fault_id: int) -> FaultReport:
    """:raises NotFound: unknown, or not the current user's to see."""
    fault = get_or_404(FaultReport, fault_id, _("No such fault report."))
    if not faults.can_see(current_user, fault):
        raise NotFound(_("No such fault report."))
    return fault


def _submit(form: Any, action: Any) -> Any:
    """Run the service call of a valid submission and commit; on a refusal roll back and
    put its messages on the form (returned as the error)."""
    if not form.validate_on_submit():
        return None
    try:
        result = action()
    except LabbookError as error:
        db.session.rollback()
        if isinstance(error, ValidationError):
            form.apply_errors({k if k in form else "": v for k, v in error.fields.items()})
        else:
            form.apply_errors({"": [error.message]})
        return error
    db.session.commit()
    return result


# -- reporting ---------------------------------------------------------------------------------


@bp.route("/instruments/<int:instrument_id>/faults/new", methods=["GET", "POST"])
def report_fault(instrument_id: int) -> Any:
    """Anyone signed in reports a problem."""
    instrument = get_or_404(Instrument, instrument_id, _("No such instrument."))
    form = FaultForm()
    form.severity.choices = severity_choices()

    def act() -> FaultReport:
        photo = form.photo.data.read(faults.MAX_PHOTO_BYTES + 1) if form.photo.data else None
        return faults.report_fault(current_user, instrument, form.severity.data,
                                   form.description.data, photo=photo)

    outcome = _submit(form, act)
    if isinstance(outcome, FaultReport):
        flash(_("Thank you: the fault was reported to the facility's managers."), "success")
        return redirect(url_for("care.fault", fault_id=outcome.id))
    code = 422 if form.errors or form.form_errors else 200
    return render_template("care/fault_new.html", form=form, instrument=instrument), code


# -- one fault ---------------------------------------------------------------------------------


def _render_fault(fault: FaultReport, form: TriageForm | None = None, code: int = 200) -> Any:
    can_manage = current_user.manages_facility(fault.instrument.facility_id)
    if can_manage and form is None:
        form = TriageForm(formdata=None, status=fault.status)
    if form is not None:
        form.status.choices = status_choices()
    return render_template("care/fault.html", fault=fault, form=form, can_manage=can_manage,
                           affected=faults.affected_owners(fault) if can_manage else []), code


@bp.get("/faults/<int:fault_id>")
def fault(fault_id: int) -> Any:
    return _render_fault(_visible_fault(fault_id))


@bp.post("/faults/<int:fault_id>/triage")
def triage_fault(fault_id: int) -> Any:
    """Managers record a triage step (403 for the reporter, 404 for others)."""
    fault = _visible_fault(fault_id)
    authorize(current_user.manages_facility(fault.instrument.facility_id),
              _("Only managers of this facility may triage faults."))
    form = TriageForm()
    form.status.choices = status_choices()
    outcome = _submit(form, lambda: faults.triage_fault(
        current_user, fault, form.status.data, form.note.data))
    if outcome is not None and not isinstance(outcome, LabbookError):
        flash(_("The fault was updated."), "success")
        return redirect(url_for("care.fault", fault_id=fault.id))
    return _render_fault(fault, form, 422)


@bp.get("/faults/<int:fault_id>/photo")
def fault_photo(fault_id: int) -> Response:
    """The photo, only to those who may see the fault, as the type its bytes really are."""
    fault = _visible_fault(fault_id)
    if fault.photo is None or fault.photo_type is None:
        raise NotFound(_("This fault report has no photo."))
    response = Response(fault.photo, mimetype=fault.photo_type)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = "inline"
    response.headers["Cache-Control"] = "private, no-store"
    return response


# -- lists -------------------------------------------------------------------------------------


@bp.get("/facilities/<int:facility_id>/faults")
def facility_faults(facility_id: int) -> str:
    """A facility's faults for its managers: unresolved first (newest first), then the
    resolved ones."""
    facility = get_or_404(Facility, facility_id, _("No such facility."))
    authorize(current_user.manages_facility(facility.id),
              _("Only managers of this facility may see its fault reports."))
    resolved_last = sa.case((FaultReport.status == "resolved", 1), else_=0)
    stmt = (
        sa.select(FaultReport).join(Instrument, Instrument.id == FaultReport.instrument_id)
        .where(Instrument.facility_id == facility.id)
        .options(selectinload(FaultReport.instrument), selectinload(FaultReport.reporter))
        .order_by(resolved_last, FaultReport.created_at.desc(), FaultReport.id.desc())
    )
    page = db.paginate(stmt, page=_page(), per_page=PAGE_SIZE, error_out=False)
    return render_template("care/fault_list.html", facility=facility, instrument=None,
                           page=page)


@bp.get("/instruments/<int:instrument_id>/faults")
def instrument_faults(instrument_id: int) -> str:
    """An instrument's fault history: all of it for managers, one's own reports for others."""
    instrument = get_or_404(Instrument, instrument_id, _("No such instrument."))
    stmt = (
        faults.visible_faults(current_user).where(FaultReport.instrument_id == instrument.id)
        .options(selectinload(FaultReport.reporter))
        .order_by(FaultReport.created_at.desc(), FaultReport.id.desc())
    )
    page = db.paginate(stmt, page=_page(), per_page=PAGE_SIZE, error_out=False)
    return render_template("care/fault_list.html", facility=instrument.facility,
                           instrument=instrument, page=page)


@bp.get("/instruments/<int:instrument_id>/service-log")
def service_log(instrument_id: int) -> str:
    """Everything that happened to the instrument; names for managers only."""
    instrument = get_or_404(Instrument, instrument_id, _("No such instrument."))
    entries = status.service_log(instrument, current_user, now_utc())
    number = _page()
    pages = max(1, -(-len(entries) // PAGE_SIZE))
    shown = entries[(number - 1) * PAGE_SIZE:number * PAGE_SIZE]
    return render_template("care/service_log.html", instrument=instrument, entries=shown,
                           number=number, pages=pages,
                           can_manage=current_user.manages_facility(instrument.facility_id))


def _page() -> int:
    return min(max(request.args.get("page", 1, type=int), 1), 10**6)
