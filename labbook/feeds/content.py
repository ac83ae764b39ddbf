"""What a feed serves: its events (one query), its validators (one aggregate query) and its
bytes.

* Window: ``LABBOOK_FEED_PAST_DAYS`` back to ``LABBOOK_FEED_FUTURE_DAYS`` ahead, counted in
  whole UTC days from today, so the feed changes at most once a day on its own.
* Rows: bookings that hold the slot or were completed; cancelled/rejected/expired/no-show
  ones changed within ``LABBOOK_FEED_CANCELLED_DAYS`` (as STATUS:CANCELLED, so clients drop
  them); for instrument and facility feeds also outages (open-ended ones included) and
  imported closures. A facility feed shows an imported closure once for the facility, not
  once per instrument.
* Privacy: the feed's owner is the viewer; ``bookings_visible_to(owner)`` (the rule of
  ``Booking.can_see_details``) is evaluated in SQL, at fetch time, for every row.
* Validators: a strong ETag and a Last-Modified computed from an aggregate over exactly the
  rows the feed would show (count, newest change, ids, sequences, which rows show details,
  instrument and facility names) plus the window's day and the owner's locale. Every
  UPDATE of a reservation moves ``updated_at`` and ``sequence``, so any change changes the
  ETag; an unchanged feed is answered 304 before anything is rendered.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cached_property
from datetime import datetime, time, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from flask import current_app
from werkzeug.http import http_date, quote_etag
from flask_babel import force_locale
from flask_babel import gettext as _

from labbook.auth.models import User
from labbook.bookings.models import Reservation
from labbook.bookings.visibility import bookings_visible_to
from labbook.extensions import db
from labbook.feeds import ics
from labbook.feeds.models import CalendarFeed
from labbook.feeds.services import load_target, target_name
from labbook.instruments.models import Facility, Instrument

R = Reservation
# Bump when the rendering changes, so cached copies are replaced.
RENDER_VERSION = 1
SHOWN_STATES = ("pending", "confirmed", "in_use", "completed", "scheduled")
GONE_STATES = ("cancelled", "rejected", "expired", "no_show")


@dataclass(frozen=True)
class Window:
    """The span a feed covers, as of ``day`` (midnight UTC of the fetch)."""

    day: datetime
    start: datetime
    end: datetime
    gone_since: datetime


@dataclass(frozen=True)
class Validators:
    etag: str  # without quotes
    last_modified: datetime
    window: Window

    @cached_property
    def headers(self) -> list[tuple[str, str]]:
        """ETag, Last-Modified and Cache-Control, formatted once (a kept set of validators
        answers many 304s)."""
        max_age = int(refresh_interval().total_seconds())
        return [("ETag", quote_etag(self.etag)), ("Last-Modified", http_date(self.last_modified)),
                ("Cache-Control", f"private, max-age={max_age}")]


def feed_window(now: datetime) -> Window:
    config = current_app.config
    day = datetime.combine(now.astimezone(timezone.utc).date(), time(0), timezone.utc)
    return Window(
        day=day,
        start=day - timedelta(days=config["LABBOOK_FEED_PAST_DAYS"]),
        end=day + timedelta(days=config["LABBOOK_FEED_FUTURE_DAYS"] + 1),
        gone_since=day - timedelta(days=config["LABBOOK_FEED_CANCELLED_DAYS"]),
    )


def refresh_interval() -> timedelta:
    return timedelta(minutes=current_app.config["LABBOOK_FEED_REFRESH_MINUTES"])


def _scope_filter(feed: CalendarFeed) -> sa.ColumnElement[bool]:
    if feed.scope == "user":
        return sa.and_(R.kind == "booking", R.user_id == feed.target_id)
    if feed.scope == "team":
        return sa.and_(R.kind == "booking", R.team_id == feed.target_id)
    if feed.scope == "instrument":
        return R.instrument_id == feed.target_id
    return Instrument.facility_id == feed.target_id


def _details(owner: User) -> sa.ColumnElement[Any]:
    """1 where the owner may see who booked and why (outages hide nothing), else 0."""
    rule = bookings_visible_to(owner).whereclause
    visible = sa.or_(R.kind == "outage", sa.true() if rule is None else rule)
    return sa.case((visible, 1), else_=0)


def _from_where(stmt: sa.Select, feed: CalendarFeed, window: Window) -> sa.Select:
    """The feed's rows: its scope, overlapping the window, in a state it shows."""
    return (
        stmt.select_from(R)
        .join(Instrument, Instrument.id == R.instrument_id)
        .join(Facility, Facility.id == Instrument.facility_id)
        .where(
            _scope_filter(feed),
            R.start_at < window.end,
            sa.or_(R.end_at.is_(None), R.end_at > window.start),
            sa.or_(R.state.in_(SHOWN_STATES), sa.and_(
                R.state.in_(GONE_STATES),
                sa.func.coalesce(R.state_changed_at, R.updated_at) >= window.gone_since)),
        )
    )


def validators(feed: CalendarFeed, now: datetime) -> Validators:
    """The feed's ETag and Last-Modified, from one aggregate query (nothing rendered)."""
    window = feed_window(now)
    stmt = _from_where(sa.select(
        sa.func.count(), sa.func.max(R.updated_at), sa.func.max(R.id),
        sa.func.sum(R.sequence), sa.func.sum(_details(feed.owner) * R.id),
        sa.func.max(Instrument.updated_at), sa.func.max(Facility.name),
        sa.func.min(Facility.name), sa.func.max(Facility.name_zh),
        sa.func.max(Facility.timezone), sa.func.min(Facility.timezone),
    ), feed, window)
    row = tuple(db.session.execute(stmt).one())
    config = current_app.config
    key = (RENDER_VERSION, feed.id, feed.scope, feed.target_id, feed.owner.locale,
           window.day.date().isoformat(), config["LABBOOK_FEED_PAST_DAYS"],
           config["LABBOOK_FEED_FUTURE_DAYS"], config["LABBOOK_FEED_CANCELLED_DAYS"],
           config["LABBOOK_FEED_REFRESH_MINUTES"], ics.base_url(), ics.ical_host(),
           *[v.isoformat() if isinstance(v, datetime) else v for v in row])
    etag = hashlib.sha256(repr(key).encode("utf-8")).hexdigest()[:40]
    changes = [t for t in (row[1], row[5]) if t is not None] + [window.day, feed.created_at]
    return Validators(etag, max(changes), window)


def _rows(feed: CalendarFeed, window: Window) -> list[sa.Row]:
    """Every row the feed shows, with its instrument, facility and booker: one query."""
    stmt = _from_where(sa.select(
        R.id, R.kind, R.state, R.start_at, R.end_at, R.sequence, R.created_at, R.updated_at,
        R.purpose, R.title, R.instrument_id, Instrument.name, Instrument.location,
        Facility.id, Facility.name, Facility.name_zh, Facility.timezone, User.name,
        _details(feed.owner), R.outage_kind, R.external_uid,
    ).outerjoin(User, User.id == R.user_id), feed, window)
    return list(db.session.execute(stmt.order_by(R.start_at, R.id)))


def _event_data(row: sa.Row, locale: str) -> ics.EventData:
    facility = row[15] if row[15] and locale.startswith("zh") else row[14]
    return ics.EventData(
        id=row[0], kind=row[1], state=row[2], start_at=row[3], end_at=row[4],
        sequence=row[5], created_at=row[6], updated_at=row[7],
        purpose=row[8] if row[18] else None,
        title=row[9], instrument_id=row[10], label=row[11],
        location=ics.location_of(facility, row[12]), timezone=row[16],
        user_name=row[17] if row[18] else None, show_details=bool(row[18]),
    )


def _facility_closure(first: sa.Row, group: list[sa.Row], locale: str) -> ics.EventData:
    """One event for an imported closure that every instrument of the facility carries."""
    facility = first[15] if first[15] and locale.startswith("zh") else first[14]
    uid_key = hashlib.sha256(first[20].encode("utf-8")).hexdigest()[:24]
    ends = [r[4] for r in group]
    return replace(
        _event_data(first, locale),
        state="scheduled" if any(r[2] == "scheduled" for r in group) else "cancelled",
        start_at=min(r[3] for r in group),
        end_at=None if None in ends else max(ends),
        sequence=max(r[5] for r in group), created_at=min(r[6] for r in group),
        updated_at=max(r[7] for r in group), label=facility, location=facility,
        uid=f"closure-{first[13]}-{uid_key}@{ics.ical_host()}",
        url=f"{ics.base_url()}/facilities/{first[13]}",
    )


def event_list(feed: CalendarFeed, window: Window, locale: str) -> list[ics.EventData]:
    """The feed's events in start order; a facility feed merges each imported closure's
    per-instrument rows into one event."""
    rows = _rows(feed, window)
    if feed.scope != "facility":
        return [_event_data(row, locale) for row in rows]
    closures: dict[str, list[sa.Row]] = {}
    for row in rows:
        if row[1] == "outage" and row[19] == "closure" and row[20]:
            closures.setdefault(row[20], []).append(row)
    events = []
    for row in rows:
        group = closures.get(row[20]) if row[1] == "outage" and row[19] == "closure" else None
        if group is None:
            events.append(_event_data(row, locale))
        elif group[0] is row:
            events.append(_facility_closure(row, group, locale))
    return events


def calendar_name(feed: CalendarFeed, locale: str) -> str:
    """E.g. "labbook — SEM-01", in the owner's language (call under ``force_locale``)."""
    target = load_target(feed.scope, feed.target_id)
    return _("labbook — %(name)s", name=target_name(feed.scope, target, locale))


def render(feed: CalendarFeed, window: Window) -> bytes:
    """The feed's iCalendar bytes, in its owner's language.

    :raises NotFound: when the feed's target no longer exists.
    """
    locale = feed.owner.locale
    with force_locale(locale):
        cal = ics.new_calendar(calendar_name(feed, locale), refresh=refresh_interval())
        events = event_list(feed, window, locale)
        starts = [e.start_at.date() for e in events]
        ics.add_timezones(cal, {e.timezone for e in events},
                          first=min(starts, default=None), last=window.end.date())
        now = window.day
        cal.subcomponents.extend(ics.build_event(e, now) for e in events)
        return cal.to_ical()
