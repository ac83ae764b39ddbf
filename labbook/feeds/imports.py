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
"""
from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterator
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from dateutil.rrule import rrulestr
from flask import current_app
from flask_babel import gettext as _
from icalendar import Calendar, vRecur

from labbook import audit
from labbook.auth.models import User
from labbook.bookings import outages, slots
from labbook.bookings.models import Booking, Outage
from labbook.db import now_utc
from labbook.errors import Forbidden, LabbookError, ValidationError
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument

MAX_EVENTS = 2000
RECURRENCE_DAYS = 400
MAX_ITERATIONS = 100_000
UID_BASE_MAX = 200
FIELD = "calendar"
# Properties the import reads: any of them unreadable stops it.
USED = {"DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID"}


def refuse(message: str) -> ValidationError:
    return ValidationError(message, {FIELD: [message]})


@dataclass(frozen=True)
class ClosureEvent:
    """One occurrence to import: ``key`` is the closure's ``external_uid``."""

    key: str
    uid: str
    summary: str
    start: datetime
    end: datetime
    all_day: bool
    cancelled: bool
    label: str  # summary and local date, for messages

    @property
    def title(self) -> str | None:
        return self.summary[: outages.TITLE_MAX] or None


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


# -- reading the calendar ---------------------------------------------------------------------


def load_calendar(data: bytes) -> Calendar:
    """:raises ValidationError: unless ``data`` is one UTF-8 VCALENDAR."""
    limit = current_app.config["LABBOOK_IMPORT_MAX_BYTES"]
    if len(data) > limit:
        raise refuse(_("The calendar is too big (more than %(n)d KB).", n=limit // 1024))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise refuse(_("The calendar is not UTF-8 text.")) from None
    if not text.lstrip().upper().startswith("BEGIN:VCALENDAR"):
        raise refuse(_("This is not an iCalendar file (it does not start with "
                       "BEGIN:VCALENDAR)."))
    try:
        calendar = Calendar.from_ical(text)
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise refuse(_("The calendar file is malformed: %(error)s",
                       error=str(error).splitlines()[0][:200])) from None
    return calendar


class Frame:
    """The wall clock an event's recurrence is expanded in: its own zone, or the
    facility's for all-day and floating events."""

    def __init__(self, zone: ZoneInfo | Any) -> None:
        self.zone = zone

    def naive(self, value: date | datetime) -> datetime:
        if not isinstance(value, datetime):
            return datetime.combine(value, time())
        if value.tzinfo is None:
            return value
        return value.astimezone(self.zone).replace(tzinfo=None)

    def aware(self, value: datetime) -> datetime:
        return value.replace(tzinfo=self.zone).astimezone(timezone.utc)


@dataclass
class Spec:
    """A VEVENT read: start in its frame, and how long each occurrence lasts."""

    uid: str
    summary: str
    frame: Frame
    start: datetime  # naive, in the frame
    length: timedelta
    all_day: bool
    cancelled: bool
    truncated: bool = False  # the rule goes on beyond the expansion horizon


def _label(summary: str, day: date) -> str:
    return f"“{summary or _('(no title)')}” ({day.isoformat()})"


def _decoded(component: Any, name: str, summary: str) -> Any:
    try:
        return component.decoded(name)
    except (ValueError, TypeError, KeyError):
        raise refuse(_("The event %(event)s has an unreadable %(name)s.",
                       event=f"“{summary}”", name=name)) from None


def _check_value(component: Any, name: str, value: Any, label: str) -> None:
    """Dates and date-times only, and a TZID this server knows."""
    if not isinstance(value, date):
        raise refuse(_("The event %(event)s has an unreadable %(name)s.", event=label, name=name))
    tzid = getattr(component[name], "params", {}).get("TZID")
    if isinstance(value, datetime) and value.tzinfo is None and tzid:
        raise refuse(_("The event %(event)s uses an unknown time zone: %(tz)s.",
                       event=label, tz=str(tzid)))


def _length(component: Any, start: date, zone: Any, label: str) -> timedelta:
    """How long each occurrence lasts: DTEND - DTSTART, DURATION, or one day for an
    all-day event without either (a timed one without either has no length: refused)."""
    summary = str(component.get("SUMMARY", ""))
    length = timedelta(0) if isinstance(start, datetime) else timedelta(days=1)
    if "DTEND" in component:
        end = _decoded(component, "DTEND", summary)
        _check_value(component, "DTEND", end, label)
        if isinstance(start, datetime) != isinstance(end, datetime):
            raise refuse(_("The event %(event)s mixes a date and a date-time.", event=label))
        if isinstance(start, datetime):  # a floating end is read in the start's zone
            start = start if start.tzinfo else start.replace(tzinfo=zone)
            end = end if end.tzinfo else end.replace(tzinfo=start.tzinfo)
        length = end - start
        if end == start and not isinstance(start, datetime):
            length = timedelta(days=1)  # DTEND = DTSTART: a common way to write one day
    elif "DURATION" in component:
        length = _decoded(component, "DURATION", summary)
    if not isinstance(length, timedelta) or length <= timedelta(0):
        raise refuse(_("The event %(event)s ends before it starts or has no length.",
                       event=label))
    return length


def read_event(component: Any, zone: ZoneInfo, cancel_all: bool) -> Spec:
    """:raises ValidationError: naming the event when it cannot be read."""
    summary = str(component.get("SUMMARY", "")).replace("\x00", "").strip()
    broken = sorted({name for name, _msg in getattr(component, "errors", ()) if name in USED})
    if broken:
        raise refuse(_("The event %(event)s has an unreadable %(name)s.",
                       event=f"“{summary or _('(no title)')}”", name=", ".join(broken)))
    if "DTSTART" not in component:
        raise refuse(_("The event %(event)s has no start (DTSTART).",
                       event=f"“{summary or _('(no title)')}”"))
    start = _decoded(component, "DTSTART", summary)
    label = _label(summary, start if not isinstance(start, datetime) else start.date())
    _check_value(component, "DTSTART", start, label)
    aware = isinstance(start, datetime) and start.tzinfo is not None
    frame = Frame(start.tzinfo if aware else zone)
    length = _length(component, start, frame.zone, label)
    uid = str(component.get("UID", "")).strip() or _synthetic_uid(summary, start)
    status = str(component.get("STATUS", "")).upper()
    return Spec(uid, summary, frame, frame.naive(start), length,
                not isinstance(start, datetime), cancel_all or status == "CANCELLED")


def _synthetic_uid(summary: str, start: date) -> str:
    """Events without a UID (RFC 5545 requires one) are known by title and start."""
    digest = hashlib.sha256(f"{summary}|{start.isoformat()}".encode()).hexdigest()[:32]
    return f"no-uid-{digest}"


def _base(uid: str) -> str:
    if len(uid) <= UID_BASE_MAX:
        return uid
    return "sha256-" + hashlib.sha256(uid.encode()).hexdigest()[:40]


def _suffix(spec: Spec, naive_start: datetime) -> str:
    if spec.all_day:
        return naive_start.strftime("%Y%m%d")
    return spec.frame.aware(naive_start).strftime("%Y%m%dT%H%M%SZ")


def _event(spec: Spec, naive_start: datetime, key: str, zone: ZoneInfo) -> ClosureEvent:
    if spec.all_day:  # local midnight to local midnight, whatever the day's length
        start = spec.frame.aware(naive_start)
        end = spec.frame.aware(naive_start + spec.length)
    else:
        start = spec.frame.aware(naive_start)
        end = start + spec.length
    label = _label(spec.summary, start.astimezone(zone).date())
    return ClosureEvent(key, spec.uid, spec.summary, start, end, spec.all_day,
                        spec.cancelled, label)


def _date_list(component: Any, name: str, frame: Frame) -> list[datetime]:
    value = component.get(name)
    lists = value if isinstance(value, list) else ([value] if value is not None else [])
    out = []
    for item in lists:
        for dt in item.dts:
            moment = dt.dt[0] if isinstance(dt.dt, tuple) else dt.dt
            out.append(frame.naive(moment))
    return out


def _until(rule: vRecur, frame: Frame) -> datetime | None:
    values = rule.get("UNTIL")
    if not values:
        return None
    until = values[0]
    if not isinstance(until, datetime):
        return datetime.combine(until, time.max)
    return frame.naive(until) if until.tzinfo is not None else until


def occurrences(component: Any, spec: Spec, horizon: datetime) -> Iterator[datetime]:
    """The naive starts of ``spec``'s recurrence set up to ``horizon`` (naive, frame).

    :raises ValidationError: for a rule that cannot be read or runs away.
    """
    starts = {spec.start} | set(_date_list(component, "RDATE", spec.frame))
    rule = component.get("RRULE")
    if rule is not None:
        rules = rule if isinstance(rule, list) else [rule]
        for item in rules:
            starts |= set(_expand_rule(item, spec, horizon))
    excluded = set(_date_list(component, "EXDATE", spec.frame))
    return iter(sorted(s for s in starts if s not in excluded and s <= horizon))


def _expand_rule(rule: vRecur, spec: Spec, horizon: datetime) -> Iterator[datetime]:
    until = _until(rule, spec.frame)
    text = vRecur({k: v for k, v in rule.items() if k != "UNTIL"}).to_ical().decode()
    try:
        expanded = rrulestr(text, dtstart=spec.start)
    except (ValueError, TypeError):
        raise refuse(_("The event %(event)s has a repetition rule that cannot be read.",
                       event=_label(spec.summary, spec.start.date()))) from None
    for count, start in enumerate(expanded):
        if until is not None and start > until:
            return
        if start > horizon:
            spec.truncated = True
            return
        if count >= MAX_ITERATIONS:
            raise refuse(_("The event %(event)s repeats too often.",
                           event=_label(spec.summary, spec.start.date())))
        yield start


# -- the calendar as closures -----------------------------------------------------------------


@dataclass
class Parsed:
    events: list[ClosureEvent]
    past: int
    keys: dict[str, set[str]]  # UID base -> every key the file yields (to spot leftovers)
    horizon: datetime
    truncated: bool = False


def _group(components: list[Any], zone: ZoneInfo, cancel_all: bool) -> tuple[dict, dict]:
    """Masters by UID, and RECURRENCE-ID overrides by UID then original start.

    :raises ValidationError: for two events with one UID.
    """
    masters: dict[str, tuple[Any, Spec]] = {}
    overrides: dict[str, list[tuple[Any, Spec]]] = {}
    for component in components:
        spec = read_event(component, zone, cancel_all)
        if "RECURRENCE-ID" in component:
            overrides.setdefault(spec.uid, []).append((component, spec))
        elif spec.uid in masters:
            raise refuse(_("Two events share the UID %(uid)s (the second is %(event)s).",
                           uid=spec.uid[:80], event=_label(spec.summary, spec.start.date())))
        else:
            masters[spec.uid] = (component, spec)
    return masters, overrides


def _add(parsed: Parsed, event: ClosureEvent, now: datetime) -> None:
    parsed.keys.setdefault(_base(event.uid), set()).add(event.key)
    if event.end <= now:
        parsed.past += 1
        return
    parsed.events.append(event)
    if len(parsed.events) > MAX_EVENTS:
        raise refuse(_("The calendar has more than %(n)d events to import.", n=MAX_EVENTS))


def _series(parsed: Parsed, master: tuple[Any, Spec], changed: list[tuple[Any, Spec]],
            zone: ZoneInfo, now: datetime) -> None:
    """Every occurrence of one UID, with its RECURRENCE-ID overrides in place."""
    component, spec = master
    recurring = bool(changed) or "RRULE" in component or "RDATE" in component
    base = _base(spec.uid)
    by_start = {spec.frame.naive(_decoded(c, "RECURRENCE-ID", s.summary)): s for c, s in changed}
    horizon = spec.frame.naive(parsed.horizon)
    starts = list(occurrences(component, spec, horizon)) if recurring else [spec.start]
    parsed.truncated |= spec.truncated
    for start in sorted(set(starts) | {s for s in by_start if s <= horizon}):
        key = f"{base}#{_suffix(spec, start)}" if recurring else base
        override = by_start.get(start)
        event = _event(override, override.start, key, zone) if override \
            else _event(spec, start, key, zone)
        _add(parsed, event, now)


def parse_calendar(data: bytes, zone: ZoneInfo, now: datetime) -> Parsed:
    """The closures an iCalendar file asks for, from ``now`` on.

    :raises ValidationError: for a malformed file or event (named), or too many events.
    """
    calendar = load_calendar(data)
    cancel_all = str(calendar.get("METHOD", "")).upper() == "CANCEL"
    components = calendar.walk("VEVENT")
    if len(components) > MAX_EVENTS:
        raise refuse(_("The calendar has more than %(n)d events to import.", n=MAX_EVENTS))
    masters, overrides = _group(components, zone, cancel_all)
    parsed = Parsed([], 0, {}, now + timedelta(days=RECURRENCE_DAYS))
    for uid, master in masters.items():
        _series(parsed, master, overrides.pop(uid, []), zone, now)
    for changed in overrides.values():  # overrides without their series: on their own
        for component, spec in changed:
            rid = spec.frame.naive(_decoded(component, "RECURRENCE-ID", spec.summary))
            _add(parsed, _event(spec, spec.start, f"{_base(spec.uid)}#{_suffix(spec, rid)}",
                                zone), now)
    return parsed


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


# -- fetching a calendar by URL ---------------------------------------------------------------

SCHEMES = ("http", "https")
NOT_CALENDARS = ("text/html", "application/xhtml+xml", "application/json", "application/pdf")


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (never file:, ftp: or data:)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urlsplit(newurl).scheme.lower() not in SCHEMES:
            raise refuse(_("The address redirects to something other than http or https."))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def check_url(url: str) -> str:
    """The URL to fetch (webcal:// is read as https://).

    :raises ValidationError: for any other scheme or a URL without a host.
    """
    url = (url or "").strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "webcal":
        url, parts = "https" + url[len(scheme):], urlsplit("https" + url[len(scheme):])
    elif scheme not in SCHEMES:
        raise refuse(_("Only http://, https:// and webcal:// addresses can be imported."))
    if not parts.hostname:
        raise refuse(_("The address has no host name."))
    return url


def _read(response: Any, limit: int) -> bytes:
    """:raises ValidationError: for a body over ``limit`` or one that is not a calendar."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise refuse(_("The calendar is too big (more than %(n)d KB).", n=limit // 1024))
    if response.headers.get_content_type() in NOT_CALENDARS:
        raise refuse(_("The address returned a %(type)s document, not a calendar.",
                       type=response.headers.get_content_type()))
    chunks, size = [], 0
    while size <= limit:
        chunk = response.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise refuse(_("The calendar is too big (more than %(n)d KB).", n=limit // 1024))
    return b"".join(chunks)


def fetch_url(url: str) -> bytes:
    """Download a calendar: http(s) only, within ``LABBOOK_IMPORT_TIMEOUT`` seconds and
    ``LABBOOK_IMPORT_MAX_BYTES``; messages name the host, never the full URL (private
    calendar URLs carry secrets).

    :raises ValidationError: bad scheme, unreachable, an HTTP error, too big, or not a
        calendar.
    """
    url = check_url(url)
    host = urlsplit(url).hostname
    timeout = current_app.config["LABBOOK_IMPORT_TIMEOUT"]
    request = urllib.request.Request(url, headers={
        "User-Agent": "labbook closure import", "Accept": "text/calendar, */*;q=0.5"})
    try:
        with urllib.request.build_opener(_Redirects).open(request, timeout=timeout) as response:
            data = _read(response, current_app.config["LABBOOK_IMPORT_MAX_BYTES"])
    except urllib.error.HTTPError as error:
        error.close()
        if 300 <= error.code < 400:  # a redirect urllib itself refused (file:, data:...)
            raise refuse(_("The address redirects to something other than http or https.")) \
                from None
        raise refuse(_("%(host)s answered %(status)d %(reason)s.", host=host,
                       status=error.code, reason=error.reason)) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError):
            raise refuse(_("%(host)s did not answer within %(n)d seconds.", host=host,
                           n=int(timeout))) from None
        raise refuse(_("Could not reach %(host)s: %(reason)s", host=host,
                       reason=str(reason)[:200])) from None
    if not data.lstrip(b"\xef\xbb\xbf \t\r\n").upper().startswith(b"BEGIN:VCALENDAR"):
        raise refuse(_("The address did not return an iCalendar file."))
    return data
