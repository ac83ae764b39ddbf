"""VTIMEZONE components that every calendar client reads the same way.

``icalendar``'s own generator lists each year's transitions as comma-separated RDATE values
and writes the spring-forward onset in the new offset. ical.js (and so Thunderbird) reads
only the first value of such an RDATE, and Outlook understands recurring rules best. So this
module derives the definition from the zone database itself:

* the zone's transitions are found by scanning ``zoneinfo`` over the years the calendar
  needs (at least eight, so "last Sunday" and "fourth Sunday" rules can be told apart);
* where each kind of transition falls on the same weekday rule every year, it becomes one
  STANDARD or DAYLIGHT observance with ``RRULE:FREQ=YEARLY;BYMONTH=..;BYDAY=..`` (the
  form Outlook itself writes);
* otherwise (zones whose rules follow no weekday pattern) every transition is its own
  observance with a single DTSTART; a zone without transitions has one STANDARD.

DTSTART is the onset's local time before the change (RFC 5545 3.6.5).
"""
from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar.cal import Timezone, TimezoneDaylight, TimezoneStandard

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
MIN_YEARS = 8
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Transition:
    onset: datetime  # local wall time before the change (naive)
    offset_from: timedelta
    offset_to: timedelta
    name: str
    dst: bool

    @property
    def key(self) -> tuple[bool, timedelta, timedelta, str]:
        return self.dst, self.offset_from, self.offset_to, self.name


def _offset(zone: ZoneInfo, moment: datetime) -> timedelta:
    offset = moment.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _change_at(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The first minute in (low, high] with ``high``'s offset (bisection)."""
    before = _offset(zone, low)
    while high - low > MINUTE:
        middle = low + ((high - low) // 2 // MINUTE) * MINUTE
        if _offset(zone, middle) == before:
            low = middle
        else:
            high = middle
    return high


def transitions(zone: ZoneInfo, first_year: int, last_year: int) -> Iterator[Transition]:
    """Offset changes from 1 January ``first_year`` to 31 December ``last_year`` (UTC)."""
    moment = datetime(first_year, 1, 1, tzinfo=timezone.utc)
    end = datetime(last_year + 1, 1, 1, tzinfo=timezone.utc)
    current = _offset(zone, moment)
    while moment < end:
        following = moment + DAY
        offset = _offset(zone, following)
        if offset != current:
            at = _change_at(zone, moment, following)
            local = at.astimezone(zone)
            yield Transition((at + current).replace(tzinfo=None), current, offset,
                             local.tzname() or "", bool(local.dst()))
            current = offset
        moment = following


def _byday(onsets: list[datetime]) -> str | None:
    """The BYDAY of a yearly rule every onset follows ("-1SU", "2SU"...), or None."""
    weekdays = {d.weekday() for d in onsets}
    ordinals = {(d.day - 1) // 7 + 1 for d in onsets}
    if len(weekdays) != 1:
        return None
    weekday = WEEKDAYS[weekdays.pop()]
    if all(d.day + 7 > calendar.monthrange(d.year, d.month)[1] for d in onsets):
        if ordinals != {4}:
            return f"-1{weekday}"
    return f"{ordinals.pop()}{weekday}" if len(ordinals) == 1 else None


def _yearly(group: list[Transition], years: range) -> str | None:
    onsets = [t.onset for t in group]
    if ([d.year for d in onsets] != list(years) or len({d.month for d in onsets}) != 1
            or len({d.time() for d in onsets}) != 1):
        return None
    return _byday(onsets)


def _observance(transition: Transition, rule: dict | None = None):  # type: ignore[no-untyped-def]
    component = TimezoneDaylight() if transition.dst else TimezoneStandard()
    component.add("dtstart", transition.onset)
    if rule is not None:
        component.add("rrule", rule)
    component.add("tzname", transition.name)
    component.add("tzoffsetfrom", transition.offset_from)
    component.add("tzoffsetto", transition.offset_to)
    return component


def _rules(found: list[Transition], years: range) -> list | None:  # type: ignore[type-arg]
    """One observance with an RRULE per kind of transition, or None when the zone's
    transitions do not all follow yearly weekday rules."""
    groups: dict[tuple, list[Transition]] = {}
    for transition in found:
        groups.setdefault(transition.key, []).append(transition)
    observances = []
    for group in groups.values():
        byday = _yearly(group, years)
        if byday is None:
            return None
        rule = {"freq": "yearly", "bymonth": group[0].onset.month, "byday": byday}
        observances.append(_observance(group[0], rule))
    return observances


@lru_cache(maxsize=128)
def vtimezone(tzid: str, first_year: int, last_year: int) -> Timezone:
    """The VTIMEZONE of ``tzid`` valid from ``first_year`` through ``last_year`` (built
    once per zone and span: it scans the zone day by day)."""
    zone = ZoneInfo(tzid)
    years = range(first_year, max(last_year, first_year + MIN_YEARS - 1) + 1)
    found = list(transitions(zone, years.start, years.stop - 1))
    component = Timezone()
    component.add("tzid", tzid)
    observances = _rules(found, years) if found else None
    if observances is None:
        start = datetime(years.start, 1, 1, tzinfo=zone)
        offset = start.utcoffset() or timedelta(0)
        initial = Transition(start.replace(tzinfo=None), offset, offset, start.tzname() or "",
                             bool(start.dst()))
        observances = [_observance(t) for t in [initial, *found]]
    for observance in observances:
        component.add_component(observance)
    return component
