"""Recurrence rules for booking series: parsing, validation and DST-safe expansion.

A rule is a small JSON object (as stored in ``BookingSeries.rule``)::

    {"freq": "daily" | "weekly", "interval": 1..52,
     "byweekday": [0..6],            # weekly only, 0 = Monday; default: the first day's
     "count": 1..200 | "until": "YYYY-MM-DD"}   # exactly one; "until" is a LOCAL date,
                                                # inclusive

Why expansion happens in the facility's zone: people book "Tuesdays 09:00-11:00" on the
lab's wall clock. Every occurrence keeps the first occurrence's LOCAL start time and its
duration (elapsed time), so 09:00-11:00 Europe/Berlin stays 09:00-11:00 after the clocks
change, at a different UTC offset. Arithmetic is done on local dates and naive wall-clock
times, then converted to UTC once per occurrence with ``zoneinfo`` (no extra dependency):

* a local start that does not exist (the spring-forward gap) is NOT shifted silently; the
  occurrence is returned without UTC times and the series service reports it as failed
  with the rule ``nonexistent_time``;
* an ambiguous local start (the fall-back hour) takes its first instance (``fold=0``, the
  offset in force before the change).

The first occurrence is the booking the user entered; its weekday must be one of
``byweekday`` (a series that silently skipped the day the user typed would surprise them).
Weekly intervals count Monday-based local weeks from the first occurrence's week. At most
``MAX_OCCURRENCES`` occurrences: a longer rule is refused, never truncated.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext as _

from labbook.errors import ValidationError

MAX_OCCURRENCES = 200
MAX_INTERVAL = 52
FREQS = ("daily", "weekly")
KEYS = ("freq", "interval", "byweekday", "count", "until")
PREFIX = "recurrence"

Fields = dict[str, list[str]]


@dataclass(frozen=True)
class Rule:
    """A validated recurrence rule."""

    freq: str
    interval: int
    byweekday: tuple[int, ...]
    count: int | None
    until: date | None

    def to_json(self) -> dict[str, Any]:
        """The normalized rule, as stored on the series (and echoed by the API)."""
        data: dict[str, Any] = {"freq": self.freq, "interval": self.interval}
        if self.freq == "weekly":
            data["byweekday"] = list(self.byweekday)
        if self.count is not None:
            data["count"] = self.count
        if self.until is not None:
            data["until"] = self.until.isoformat()
        return data


@dataclass(frozen=True)
class Occurrence:
    """One expanded occurrence. ``start``/``end`` are aware UTC, or None when the local
    start does not exist in the zone (spring-forward gap)."""

    index: int
    local_start: datetime  # naive wall-clock time in the facility's zone
    start: datetime | None
    end: datetime | None

    @property
    def exists(self) -> bool:
        return self.start is not None


# -- parsing and validation -------------------------------------------------------------------


def _add(fields: Fields, name: str, message: str) -> None:
    fields.setdefault(f"{PREFIX}.{name}", []).append(message)


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _freq(raw: dict[str, Any], fields: Fields) -> str:
    freq = raw.get("freq")
    if freq not in FREQS:
        _add(fields, "freq", _("Repeat daily or weekly."))
        return "weekly"
    return str(freq)


def _interval(raw: dict[str, Any], fields: Fields) -> int:
    interval = raw.get("interval", 1)
    if not _int_in(interval, 1, MAX_INTERVAL):
        _add(
            fields, "interval", _("The interval is a whole number from 1 to %(n)d.", n=MAX_INTERVAL)
        )
        return 1
    return int(interval)


def _byweekday(raw: dict[str, Any], freq: str, first_day: date, fields: Fields) -> tuple[int, ...]:
    days = raw.get("byweekday")
    if days is None:
        return (first_day.weekday(),) if freq == "weekly" else ()
    if freq != "weekly":
        _add(fields, "byweekday", _("Days of the week apply to weekly repetition only."))
        return ()
    if not isinstance(days, list) or not days or not all(_int_in(d, 0, 6) for d in days):
        _add(fields, "byweekday", _("Days of the week are numbers from 0 (Monday) to 6 (Sunday)."))
        return (first_day.weekday(),)
    if first_day.weekday() not in days:
        _add(fields, "byweekday", _("The days of the week must include the first booking's day."))
    return tuple(sorted(set(days)))


def _until(value: Any, first_day: date, fields: Fields) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        until = value
    else:
        try:
            until = date.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            until = None
        if until is None or len(value) != 10:
            _add(fields, "until", _("The end date is a date like 2030-01-31."))
            return None
    if until < first_day:
        _add(fields, "until", _("The end date is before the first booking."))
        return None
    return until


def _end_condition(
    raw: dict[str, Any], first_day: date, fields: Fields
) -> tuple[int | None, date | None]:
    has_count, has_until = raw.get("count") is not None, raw.get("until") is not None
    if has_count == has_until:
        message = _("Give either a number of occurrences or an end date, not both.")
        if not has_count:
            message = _("Give a number of occurrences or an end date.")
        _add(fields, "count", message)
        _add(fields, "until", message)
        return None, None
    if has_count:
        if not _int_in(raw["count"], 1, MAX_OCCURRENCES):
            _add(
                fields,
                "count",
                _("The number of occurrences is from 1 to %(n)d.", n=MAX_OCCURRENCES),
            )
            return None, None
        return int(raw["count"]), None
    return None, _until(raw["until"], first_day, fields)


def parse_rule(raw: Any, first_day: date) -> Rule:
    """Validate ``raw`` (the JSON object of a request, or a form's values) for a series whose
    first occurrence starts on the local date ``first_day``.

    Every problem is reported at once, keyed ``recurrence.<name>``.

    :raises ValidationError: when the rule is malformed or yields more than
        ``MAX_OCCURRENCES`` occurrences.
    """
    if not isinstance(raw, dict):
        raise ValidationError(
            _("The repetition rule is not valid."),
            {PREFIX: [_("The repetition rule must be an object.")]},
        )
    fields: Fields = {}
    for key in sorted(set(raw) - set(KEYS)):
        _add(fields, str(key), _("Unknown field."))
    freq = _freq(raw, fields)
    interval = _interval(raw, fields)
    byweekday = _byweekday(raw, freq, first_day, fields)
    count, until = _end_condition(raw, first_day, fields)
    rule = Rule(freq, interval, byweekday, count, until)
    if not fields and until is not None:
        if len(occurrence_dates(rule, first_day)) > MAX_OCCURRENCES:
            _add(fields, "until", _("At most %(n)d occurrences.", n=MAX_OCCURRENCES))
    if fields:
        raise ValidationError(_("The repetition rule is not valid."), fields)
    return rule


# -- expansion ----------------------------------------------------------------------------------


def _candidate_days(rule: Rule, first_day: date) -> Iterator[date]:
    """Every day the rule names, from ``first_day`` on, in order (endless)."""
    if rule.freq == "daily":
        step = timedelta(days=rule.interval)
        day = first_day
        while True:
            yield day
            day += step
    monday = first_day - timedelta(days=first_day.weekday())
    while True:
        for weekday in rule.byweekday:
            day = monday + timedelta(days=weekday)
            if day >= first_day:
                yield day
        monday += timedelta(weeks=rule.interval)


def occurrence_dates(rule: Rule, first_day: date) -> list[date]:
    """The local dates of the occurrences; stops one past ``MAX_OCCURRENCES`` so a caller
    can tell that the rule is too long."""
    days: list[date] = []
    for day in _candidate_days(rule, first_day):
        if rule.until is not None and day > rule.until:
            break
        days.append(day)
        if len(days) == (rule.count or MAX_OCCURRENCES + 1):
            break
    return days


def to_utc(local: datetime, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of the naive wall-clock time ``local`` in ``zone``: None when that
    time does not exist there (skipped by a DST change); the first instance (``fold=0``)
    when it is ambiguous."""
    aware = local.replace(tzinfo=zone, fold=0)
    instant = aware.astimezone(timezone.utc)
    if instant.astimezone(zone).replace(tzinfo=None) != local:
        return None
    return instant


def expand(
    rule: Rule, first_start: datetime, first_end: datetime, zone: ZoneInfo
) -> list[Occurrence]:
    """The occurrences of a series whose first booking is ``[first_start, first_end)`` (aware),
    keeping its local start time and its duration in ``zone``. The first occurrence is
    exactly the booking entered (even in the second instance of an ambiguous hour)."""
    local_first = first_start.astimezone(zone)
    wall_clock = local_first.time().replace(tzinfo=None, fold=0)
    duration = first_end - first_start
    out = []
    for index, day in enumerate(occurrence_dates(rule, local_first.date())[:MAX_OCCURRENCES]):
        local = datetime.combine(day, wall_clock)
        start = first_start.astimezone(timezone.utc) if index == 0 else to_utc(local, zone)
        end = start + duration if start is not None else None
        out.append(Occurrence(index, local, start, end))
    return out
