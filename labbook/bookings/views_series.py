"""Booking pages for recurring bookings and "find a slot" (issue 3 items 7 and 9).

The booking form (``views.new``) books one booking or, with its "Repeat" fieldset, a
series through ``book``; this module renders what a series booked and what failed, and the
occurrences of a refused all-or-nothing series. ``find_slot`` searches the earliest free
interval of a given length on every instrument the user may book. Times are shown on each
facility's wall clock.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app, render_template, request
from flask_login import current_user
from sqlalchemy.orm import selectinload
from wtforms.fields.choices import SelectChoice

from labbook.bookings import bp, pages, services
from labbook.bookings import series as series_service
from labbook.bookings.availability import SlotQuery, find_slots
from labbook.bookings.forms import SeriesBookingForm, SlotSearchForm, iso_z
from labbook.bookings.models import Booking
from labbook.bookings.series import SeriesNotBooked, SeriesResult
from labbook.db import now_utc
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument, ResearchField
from labbook.instruments.services import categories
from labbook.templating import display_name

SLOT_LIMIT = 50


# -- booking a series -------------------------------------------------------------------------


def book(form: SeriesBookingForm, instrument: Instrument, now: datetime) -> Booking | SeriesResult:
    """Book what the form says: one booking, or a series when it repeats.

    :raises ValidationError, NotAllowed, BookingConflict, SeriesNotBooked: refusals of
        ``services.create_booking`` and ``series.create_series`` (nothing written).
    """
    start, end = form.interval(pages.zone_of(instrument))
    options: dict[str, Any] = dict(
        purpose=form.purpose.data,
        account_id=form.account_id.data,
        assisted=bool(form.assisted.data),
        now=now,
    )
    rule = form.rule()
    if rule is None:
        return services.create_booking(current_user, instrument, start, end, **options)
    return series_service.create_series(
        current_user, instrument, start, end, rule, mode=form.mode.data or "all_or_nothing",
        **options,
    )


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def occurrence_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Occurrences as the series service describes them, with datetimes instead of ISO
    text (None for a local time that does not exist)."""
    return [{**item, "start": _instant(item.get("start")), "end": _instant(item.get("end"))}
            for item in items]


def refused_occurrences(outcome: Any) -> list[dict[str, Any]]:
    """Every occurrence of a refused series with its outcome (bookable or why not)."""
    if not isinstance(outcome, SeriesNotBooked):
        return []
    return occurrence_rows(outcome.occurrences)


def series_result(instrument: Instrument, result: SeriesResult) -> str:
    """The page after booking a series: what was booked and what failed, and why."""
    return render_template(
        "bookings/series_result.html",
        instrument=instrument,
        result=result,
        booked=sorted(result.bookings, key=lambda b: b.start_at),
        failed=occurrence_rows(result.failed),
    )


# -- find a slot ------------------------------------------------------------------------------


def _slot_form() -> SlotSearchForm:
    form = SlotSearchForm(formdata=request.args if request.args else None)
    fields = db.session.scalars(sa.select(ResearchField).order_by(ResearchField.id))
    facilities = db.session.scalars(sa.select(Facility).order_by(Facility.name))
    form.set_choices(
        [SelectChoice(str(f.id), display_name(f)) for f in fields],
        [SelectChoice(str(f.id), display_name(f)) for f in facilities],
        categories(),
    )
    return form


def _slot_query(form: SlotSearchForm, now: datetime) -> SlotQuery:
    """The search window starts at local midnight of the chosen day (default today) in
    the centre's zone; each slot still respects its instrument's lead time."""
    zone = ZoneInfo(current_app.config["LABBOOK_TIMEZONE"])
    day = form.from_date.data or pages.local_today(zone, now)
    start = datetime.combine(day, time(), tzinfo=zone)
    return SlotQuery(
        minutes=form.minutes.data,
        start=start,
        end=start + timedelta(days=form.days.data or 14),
        field_id=form.field.data,
        category=form.category.data,
        facility_id=form.facility.data,
        limit=SLOT_LIMIT,
    )


def _slot_rows(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each slot with its instrument (and facility) and the link that books it."""
    ids = [item["instrument_id"] for item in found]
    instruments = {
        i.id: i
        for i in db.session.scalars(
            sa.select(Instrument)
            .where(Instrument.id.in_(ids))
            .options(selectinload(Instrument.facility))
        )
    }
    rows = []
    for item in found:
        start, end = _instant(item["start"]), _instant(item["end"])
        assert start is not None and end is not None
        rows.append({"instrument": instruments[item["instrument_id"]], "start": start,
                     "end": end, "start_z": iso_z(start), "end_z": iso_z(end)})
    return rows


@bp.route("/slots")
def find_slot() -> Any:
    """Find a slot: the earliest free interval of the asked length on every matching
    instrument the user may book, earliest first. Bad input re-renders the form (422)."""
    form, now = _slot_form(), now_utc()
    searched = bool(request.args)
    rows: list[dict[str, Any]] = []
    if searched and form.validate():
        rows = _slot_rows(find_slots(current_user, _slot_query(form, now), now))
    status = 422 if form.errors else 200
    return render_template(
        "bookings/find_slot.html", form=form, rows=rows, searched=searched and not form.errors
    ), status
