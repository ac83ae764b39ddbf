"""Facility closures (public holidays, shutdowns) imported from iCalendar (SPEC section 7,
issue 5 item 5). Each event becomes a ``closure`` outage on every instrument of the
facility (labbook/bookings/outages.py: same guarantee as bookings, bookings inside are
cancelled and their owners told), keyed by the event's UID so that importing the same
calendar again updates closures instead of duplicating them.

* all-day events (DTSTART;VALUE=DATE) run from local midnight to local midnight in the
  facility's zone (DTEND exclusive, one day without DTEND/DURATION); timed events keep
  their zone (TZID or UTC), floating times are read in the facility's zone;
* RRULE/RDATE/EXDATE/RECURRENCE-ID are expanded with ``dateutil.rrule`` up to
  ``RECURRENCE_DAYS`` ahead; each occurrence is its own closure, keyed ``UID#<date>``;
  importing again later adds the occurrences that came into range;
* STATUS:CANCELLED (or METHOD:CANCEL) cancels the closure; past events are skipped;
* an event already covered on an instrument by another outage (a repair, a longer
  holiday) is skipped there; any other event that cannot be placed stops the import.

All or nothing: the changes run in a SAVEPOINT; a malformed file or an event that cannot
be placed raises ``ValidationError`` naming the event and leaves nothing written. A dry run
does the same work and rolls it back, so the preview is exactly what the import will do.

The calendar is read by labbook/feeds/import_parse.py and, given by address, fetched by
labbook/feeds/import_fetch.py; this module holds the import service that writes the outages.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User
from labbook.bookings import outages, slots
from labbook.bookings.models import Booking, Outage
from labbook.db import now_utc
from labbook.errors import Forbidden, LabbookError, ValidationError
from labbook.extensions import db
from labbook.feeds.import_parse import ClosureEvent, Parsed, parse_calendar, refuse
from labbook.instruments.models import Facility, Instrument


@dataclass(frozen=True)
class AffectedBooking:
    booking_id: int
    instrument: str
    user: str
    start: datetime
    end: datetime
    event: str


@dataclass
class ImportResult:
    """What an import did (or, for a dry run, would do). ``counts`` are per closure (one
    event on one instrument): created, updated, cancelled, unchanged, skipped."""

    facility_id: int
    source: str | None
    dry_run: bool
    events: list[ClosureEvent] = field(default_factory=list)
    past: int = 0
    counts: Counter = field(default_factory=Counter)
    affected: list[AffectedBooking] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(self.counts[k] for k in ("created", "updated", "cancelled"))


def _covered(rows: list[Any], start: datetime, end: datetime) -> bool:
    """Whether the outages ``rows`` together cover ``[start, end)``."""
    reach = start
    for row in sorted(rows, key=lambda r: r.start_at):
        if row.start_at > reach:
            return False
        reach = end if row.block_end is None else max(reach, row.block_end)
        if reach >= end:
            return True
    return reach >= end


class Applier:
    """Turns parsed events into closures on every instrument of one facility."""

    def __init__(self, actor: User | None, facility: Facility, now: datetime,
                 result: ImportResult) -> None:
        self.actor, self.now, self.result = actor, now, result
        self.instruments: list[Instrument] = sorted(facility.instruments, key=lambda i: i.id)
        rows = db.session.scalars(sa.select(Outage).where(
            Outage.instrument_id.in_([i.id for i in self.instruments]),
            Outage.external_uid.is_not(None),
        ))
        self.existing = {(row.instrument_id, row.external_uid): row for row in rows}
        self.displaced: dict[int, tuple[Outage, list[Booking]]] = {}
        self.skipped: Counter = Counter()

    def run(self, parsed: Parsed) -> None:
        slots.lock_instruments(i.id for i in self.instruments)
        order = sorted(parsed.events, key=lambda e: (not e.cancelled, e.start, e.start - e.end))
        for event in order:
            for instrument in self.instruments:
                self.result.counts[self.one(instrument, event)] += 1
        self.leftovers(parsed)
        for name, count in sorted(self.skipped.items()):
            self.result.notes.append(_(
                "%(instrument)s: %(n)d closures skipped, the instrument is already unavailable "
                "then (another outage).", instrument=name, n=count))

    def one(self, instrument: Instrument, event: ClosureEvent) -> str:
        """:raises ValidationError: naming the event when it cannot be placed."""
        row = self.existing.get((instrument.id, event.key))
        try:
            if event.cancelled:
                return self.cancel(row)
            if row is not None:
                return self.update(row, event)
            return self.create(instrument, event)
        except (Forbidden, ValidationError):
            raise
        except LabbookError as error:
            raise refuse(_("%(event)s cannot be placed on %(instrument)s: %(reason)s",
                           event=event.label, instrument=instrument.name,
                           reason=error.message)) from None

    def cancel(self, row: Outage | None) -> str:
        if row is None or row.state == "cancelled":
            return "unchanged"
        outages.cancel_outage(self.actor, row, now=self.now)
        return "cancelled"

    def update(self, row: Outage, event: ClosureEvent) -> str:
        """A closure cancelled in labbook stays cancelled (a manager kept the instrument
        open); a moved or renamed one follows the calendar."""
        if row.state == "cancelled" or (row.start_at, row.end_at, row.title) == (
                event.start, event.end, event.title):
            return "unchanged"
        done = outages.update_outage(self.actor, row, event.start, event.end,
                                     title=event.title, now=self.now, notify=False)
        self.note(done, event)
        return "updated"

    def create(self, instrument: Instrument, event: ClosureEvent) -> str:
        rows = [r for r in slots.overlapping(instrument.id, event.start, event.end)
                if r.kind == "outage"]
        if rows and _covered(rows, event.start, event.end):
            self.skipped[instrument.name] += 1
            return "skipped"
        done = outages.schedule_outage(
            self.actor, instrument, event.start, event.end, "closure", event.title,
            external_uid=event.key, now=self.now, notify=False,
        )
        assert done.outage is not None
        self.existing[(instrument.id, event.key)] = done.outage
        self.note(done, event)
        return "created"

    def note(self, done: outages.OutageResult, event: ClosureEvent) -> None:
        if not done.affected or done.outage is None:
            return
        entry = self.displaced.setdefault(done.outage.id, (done.outage, []))
        entry[1].extend(done.affected)
        self.result.affected += [
            AffectedBooking(b.id, b.instrument.name, b.user.name, b.start_at, b.end_at,
                            event.label) for b in done.affected]

    def leftovers(self, parsed: Parsed) -> None:
        """Occurrences a recurring event no longer has (EXDATE, shorter rule) are cancelled,
        from now to the expansion horizon."""
        for (_iid, key), row in list(self.existing.items()):
            base = key if key in parsed.keys else key.rpartition("#")[0]
            if base not in parsed.keys or key in parsed.keys[base] or row.state != "scheduled":
                continue
            if self.now <= row.start_at <= parsed.horizon:
                self.result.counts[self.cancel(row)] += 1

    def notify(self) -> None:
        """Owners hear once every closure is in place, so no offered time is closed."""
        for outage, bookings in self.displaced.values():
            outages.notify_affected(bookings, outage, self.now)


def safe_source(source: str | None) -> str | None:
    """Where the calendar came from, for the audit log and the summary: a URL loses its
    credentials, query and middle path (private calendar URLs carry secrets there)."""
    if not source:
        return None
    parts = urlsplit(source)
    if parts.scheme.lower() not in ("http", "https", "webcal"):
        return source.replace("\\", "/").rpartition("/")[2][:200]
    last = parts.path.rstrip("/").rpartition("/")[2]
    middle = "/…/" if parts.path.count("/") > 1 else "/"
    return f"{parts.scheme.lower()}://{parts.hostname}{middle}{last}"[:200]


def import_closures(
    actor: User | None,
    facility: Facility,
    data: bytes,
    *,
    source: str | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> ImportResult:
    """Import the closures of an iCalendar file into ``facility`` (see the module's
    docstring); ``actor`` None is the system (CLI). With ``dry_run`` everything is done
    and rolled back, so the result previews the real import exactly.

    :raises Forbidden: unless ``actor`` manages the facility (or is an admin).
    :raises ValidationError: a malformed file, or an event that cannot be placed (named);
        nothing is written.
    """
    now = now or now_utc()
    if actor is not None and not actor.manages_facility(facility.id):
        raise Forbidden(_("Only managers of this facility may import its closures."))
    zone = ZoneInfo(facility.timezone)
    parsed = parse_calendar(data, zone, now)
    result = ImportResult(facility.id, safe_source(source), dry_run, parsed.events, parsed.past)
    if parsed.truncated:
        result.notes.append(_("Repeating events were imported up to %(date)s; import the "
                              "calendar again later for the dates after it.",
                              date=parsed.horizon.astimezone(zone).date().isoformat()))
    _apply(actor, facility, parsed, result, now)
    return result


def _apply(actor: User | None, facility: Facility, parsed: Parsed, result: ImportResult,
           now: datetime) -> None:
    """All or nothing, in a SAVEPOINT; a dry run does everything and rolls it back."""
    savepoint = db.session.begin_nested()
    try:
        applier = Applier(actor, facility, now, result)
        applier.run(parsed)
        if not result.dry_run:
            applier.notify()
    except BaseException:
        savepoint.rollback()
        raise
    if result.dry_run:
        savepoint.rollback()
        return
    savepoint.commit()
    if result.changed:
        _audit(actor, facility, result)


def _audit(actor: User | None, facility: Facility, result: ImportResult) -> None:
    audit.record(actor, "closures.import", facility, after={
        "source": result.source, "counts": dict(result.counts),
        "bookings_cancelled": [a.booking_id for a in result.affected]})
