"""Reading a closure calendar (labbook/feeds/imports.py holds the import service that writes
the outages, labbook/feeds/import_fetch.py the download by URL): an iCalendar file becomes
``ClosureEvent`` occurrences, all-day events on the facility's wall clock, recurrences
expanded up to ``RECURRENCE_DAYS`` ahead. Also ``refuse``, the ``ValidationError`` every
step of the import raises.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterator
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from flask import current_app
from flask_babel import gettext as _
from icalendar import Calendar, vRecur

from labbook.bookings import outages
from labbook.errors import ValidationError

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
