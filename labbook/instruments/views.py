"""Catalog pages: the instrument list with search and filters, instrument and facility
pages, and the instrument editor for facility managers.

Views parse, load (404), authorize (403), call one service, commit, then render or
redirect. Times are shown in the facility's own zone.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from babel.dates import get_day_names
from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from labbook.auth.guards import authorize, get_or_404
from labbook.db import now_utc
from labbook.errors import ValidationError
from labbook.extensions import db
from labbook.instruments import bp, services
from labbook.instruments.forms import CatalogFilterForm, InstrumentForm, policy_defaults
from labbook.instruments.models import (
    Facility,
    Instrument,
    OpeningHours,
    Platform,
    ResearchField,
)

MAX_PAGE = 100_000  # keeps OFFSET inside every backend's integer range


# -- presentation helpers (also offered to this blueprint's templates) -------------------

def duration(minutes: int | None) -> str:
    """A length of time in words: "15 min", "1 h 30 min", "8 h", "2 days"."""
    if minutes is None:
        return _("none")
    days, rest = divmod(minutes, 1440)
    if days and not rest:
        return ngettext("%(num)d day", "%(num)d days", days)
    hours, mins = divmod(minutes, 60)
    if hours and mins:
        return _("%(h)d h %(m)d min", h=hours, m=mins)
    if hours:
        return _("%(h)d h", h=hours)
    return _("%(m)d min", m=mins)


def zone_label(tz: str) -> str:
    """A zone as people read it: "Asia/Shanghai (CST, UTC+08:00)"."""
    now = datetime.now(ZoneInfo(tz))
    offset = now.strftime("%z")
    utc = f"UTC{offset[:3]}:{offset[3:]}"
    abbr = now.tzname() or ""
    return f"{tz} ({abbr}, {utc})" if abbr and abbr[0].isalpha() else f"{tz} ({utc})"


def opening_week(facility: Facility) -> list[tuple[int, str, list[OpeningHours]]]:
    """(weekday, localized day name, staffed intervals) for Monday to Sunday."""
    names = get_day_names("wide", locale=get_locale())
    by_day: dict[int, list[OpeningHours]] = {day: [] for day in range(7)}
    for row in facility.opening_hours:
        by_day[row.weekday].append(row)
    return [(day, names[day], by_day[day]) for day in range(7)]


def local_weekday(facility: Facility) -> int:
    return datetime.now(ZoneInfo(facility.timezone)).weekday()


@bp.context_processor
def _template_helpers() -> dict[str, Any]:
    return {"duration": duration, "zone_label": zone_label}


# -- catalog ------------------------------------------------------------------------------

def _filter_form() -> CatalogFilterForm:
    form = CatalogFilterForm(formdata=request.args)
    form.set_choices(
        db.session.scalars(sa.select(ResearchField).order_by(ResearchField.id)),
        db.session.scalars(sa.select(Platform).order_by(Platform.id)),
        db.session.scalars(sa.select(Facility).order_by(Facility.name)),
        services.categories(),
    )
    form.validate()
    return form


def _page_number() -> int:
    page = request.args.get("page", 1, type=int)
    return min(max(page, 1), MAX_PAGE)


@bp.route("/")
def index() -> str:
    """The catalog. Bad filter values are reported and ignored rather than refused, so
    an old bookmark still lands on a useful page."""
    form = _filter_form()
    stmt = services.search_instruments(**form.filters()).options(
        selectinload(Instrument.facility), selectinload(Instrument.fields)
    )
    page = db.paginate(stmt, page=_page_number(),
                       per_page=current_app.config["LABBOOK_PAGE_SIZE"], error_out=False)
    return render_template("instruments/index.html", form=form, page=page,
                           args=form.url_args(), ignored=form.ignored(),
                           can_create=current_user.manages_any_facility())


@bp.route("/instruments/<int:instrument_id>")
def detail(instrument_id: int) -> str:
    """The instrument page: what it is, where, and its booking policy in plain words.

    :raises NotFound: for an unknown id.
    """
    instrument = get_or_404(Instrument, instrument_id, _("No such instrument."))
    facility = instrument.facility
    return render_template("instruments/detail.html", instrument=instrument, facility=facility,
                           week=opening_week(facility), today=local_weekday(facility),
                           can_edit=current_user.can_edit_instrument(instrument))


# -- facilities ---------------------------------------------------------------------------

@bp.route("/facilities")
def facilities() -> str:
    """Facilities grouped by platform; platforms without facilities are left out."""
    platforms = db.session.scalars(
        sa.select(Platform).options(selectinload(Platform.facilities)).order_by(Platform.id)
    ).all()
    counts = dict(db.session.execute(
        sa.select(Instrument.facility_id, sa.func.count(Instrument.id))
        .group_by(Instrument.facility_id)
    ).tuples().all())
    return render_template("instruments/facilities.html",
                           platforms=[p for p in platforms if p.facilities], counts=counts)


@bp.route("/facilities/<int:facility_id>")
def facility(facility_id: int) -> str:
    """A facility: managers, staffed hours and the local time in its zone, instruments.

    :raises NotFound: for an unknown id.
    """
    facility = get_or_404(Facility, facility_id, _("No such facility."))
    return render_template("instruments/facility.html", facility=facility,
                           week=opening_week(facility), today=local_weekday(facility),
                           now=now_utc())


# -- create and edit ----------------------------------------------------------------------

def _instrument_form(**kwargs: Any) -> InstrumentForm:
    """The editor, offering only the facilities the user manages (admins: all)."""
    if current_user.is_admin:
        choices = db.session.scalars(
            sa.select(Facility).options(selectinload(Facility.platform))
        ).all()
    else:
        choices = current_user.managed_facilities
    fields = db.session.scalars(sa.select(ResearchField).order_by(ResearchField.id)).all()
    return InstrumentForm(facilities=choices, fields=fields, **kwargs)


def _save(form: InstrumentForm, save: Callable[[dict[str, Any]], Instrument],
          message: str) -> Response | None:
    """Run ``save`` on a valid submission, then commit and redirect; None means show the
    form again (first visit, or errors now attached to the form)."""
    if not form.validate_on_submit():
        return None
    try:
        instrument = save(form.values())
    except ValidationError as error:
        form.apply_errors(error.fields)
        if not error.fields:
            form.form_errors.append(error.message)
        return None
    db.session.commit()
    flash(message % {"name": instrument.name}, "success")
    return redirect(url_for("instruments.detail", instrument_id=instrument.id))


def _render_form(form: InstrumentForm, instrument: Instrument | None) -> tuple[str, int]:
    status = 422 if request.method == "POST" else 200
    return render_template("instruments/form.html", form=form, instrument=instrument), status


@bp.route("/instruments/new", methods=["GET", "POST"])
def create() -> Any:
    """Add an instrument to a facility the user manages.

    :raises Forbidden: unless the user manages at least one facility (admins always may).
    """
    authorize(current_user.manages_any_facility(),
              _("Only facility managers can add instruments."))
    form = _instrument_form(data=policy_defaults())
    done = _save(form, lambda values: services.create_instrument(current_user, values),
                 _("Instrument “%(name)s” created."))
    return done or _render_form(form, None)


@bp.route("/instruments/<int:instrument_id>/edit", methods=["GET", "POST"])
def edit(instrument_id: int) -> Any:
    """Change an instrument and its booking policy.

    :raises NotFound: for an unknown id (checked before permissions).
    :raises Forbidden: unless the user manages the instrument's facility.
    """
    instrument = get_or_404(Instrument, instrument_id, _("No such instrument."))
    authorize(current_user.can_edit_instrument(instrument),
              _("Only managers of this facility can edit its instruments."))
    form = _instrument_form(obj=instrument)
    done = _save(form, lambda values: services.update_instrument(current_user, instrument, values),
                 _("Instrument “%(name)s” saved."))
    return done or _render_form(form, instrument)
