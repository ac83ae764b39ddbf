"""Recurrence rules: validation and expansion in the facility's zone, DST included."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from labbook.bookings import recurrence
from labbook.errors import ValidationError

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def _local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)


def _expand(raw, start: datetime, minutes: int = 120, zone: ZoneInfo = SHANGHAI):
    rule = recurrence.parse_rule(raw, start.astimezone(zone).date())
    return recurrence.expand(rule, start, start + timedelta(minutes=minutes), zone)


def _local_starts(occurrences, zone):
    return [o.start.astimezone(zone).replace(tzinfo=None) for o in occurrences]


def test_expand_daily_count(app):
    first = _local(SHANGHAI, 2030, 1, 7, 10, 0)
    occurrences = _expand({"freq": "daily", "count": 5}, first)
    assert [o.start.astimezone(SHANGHAI).date() for o in occurrences] == [
        date(2030, 1, d) for d in (7, 8, 9, 10, 11)
    ]
    assert all(o.start.astimezone(SHANGHAI).time() == time(10, 0) for o in occurrences)
    assert all(o.end - o.start == timedelta(hours=2) for o in occurrences)
    assert occurrences[0].start == first.astimezone(UTC)


def test_expand_daily_interval_until_inclusive(app):
    first = _local(SHANGHAI, 2030, 1, 7, 10, 0)
    occurrences = _expand({"freq": "daily", "interval": 3, "until": "2030-01-16"}, first)
    assert [o.local_start.day for o in occurrences] == [7, 10, 13, 16]


def test_expand_weekly_byweekday_count(app):
    first = _local(SHANGHAI, 2030, 1, 7, 9, 30)  # a Monday
    occurrences = _expand({"freq": "weekly", "byweekday": [4, 0, 2], "count": 6}, first)
    assert [o.local_start for o in occurrences] == [
        datetime(2030, 1, d, 9, 30) for d in (7, 9, 11, 14, 16, 18)
    ]


def test_expand_weekly_defaults_to_first_weekday(app):
    first = _local(SHANGHAI, 2030, 1, 9, 14, 0)  # a Wednesday
    occurrences = _expand({"freq": "weekly", "count": 3}, first)
    assert [o.local_start.date() for o in occurrences] == [
        date(2030, 1, 9), date(2030, 1, 16), date(2030, 1, 23)
    ]


def test_expand_weekly_interval_skips_weeks_and_earlier_days_of_first_week(app):
    first = _local(SHANGHAI, 2030, 1, 9, 14, 0)  # Wednesday; Monday of that week is skipped
    rule = {"freq": "weekly", "interval": 2, "byweekday": [0, 2], "until": "2030-02-04"}
    occurrences = _expand(rule, first)
    assert [o.local_start.date() for o in occurrences] == [
        date(2030, 1, 9), date(2030, 1, 21), date(2030, 1, 23), date(2030, 2, 4)
    ]


def test_expand_shanghai_keeps_offset_across_european_dst_dates(app):
    first = _local(SHANGHAI, 2030, 3, 25, 9, 0)
    occurrences = _expand({"freq": "weekly", "until": "2030-11-04"}, first)
    assert len(occurrences) == 33
    assert {o.start.astimezone(SHANGHAI).utcoffset() for o in occurrences} == {
        timedelta(hours=8)
    }
    assert {o.start.time() for o in occurrences} == {time(1, 0)}


def test_expand_berlin_spring_forward_keeps_wall_clock(app):
    first = _local(BERLIN, 2030, 3, 18, 9, 0)  # Monday, CET
    occurrences = _expand({"freq": "weekly", "count": 3}, first, minutes=120, zone=BERLIN)
    assert _local_starts(occurrences, BERLIN) == [
        datetime(2030, 3, 18, 9), datetime(2030, 3, 25, 9), datetime(2030, 4, 1, 9)
    ]
    offsets = [o.start.astimezone(BERLIN).utcoffset() for o in occurrences]
    assert offsets == [timedelta(hours=1), timedelta(hours=1), timedelta(hours=2)]
    assert [o.start.hour for o in occurrences] == [8, 8, 7]
    assert [o.end.astimezone(BERLIN).hour for o in occurrences] == [11, 11, 11]


def test_expand_berlin_fall_back_keeps_wall_clock(app):
    first = _local(BERLIN, 2030, 10, 21, 9, 0)  # Monday, CEST
    occurrences = _expand({"freq": "weekly", "count": 2}, first, zone=BERLIN)
    assert _local_starts(occurrences, BERLIN) == [
        datetime(2030, 10, 21, 9), datetime(2030, 10, 28, 9)
    ]
    assert [o.start.astimezone(BERLIN).utcoffset() for o in occurrences] == [
        timedelta(hours=2), timedelta(hours=1)
    ]
    assert [o.start.hour for o in occurrences] == [7, 8]


def test_expand_nonexistent_local_time_is_reported_not_shifted(app):
    first = _local(BERLIN, 2030, 3, 30, 2, 30)
    occurrences = _expand({"freq": "daily", "count": 3}, first, minutes=60, zone=BERLIN)
    gap = occurrences[1]
    assert not gap.exists and gap.start is None and gap.end is None
    assert gap.local_start == datetime(2030, 3, 31, 2, 30)
    assert occurrences[2].start == datetime(2030, 4, 1, 0, 30, tzinfo=UTC)


def test_expand_ambiguous_local_time_takes_first_instance(app):
    first = _local(BERLIN, 2030, 10, 26, 2, 30)
    occurrences = _expand({"freq": "daily", "count": 3}, first, minutes=60, zone=BERLIN)
    ambiguous = occurrences[1]
    assert ambiguous.start == datetime(2030, 10, 27, 0, 30, tzinfo=UTC)  # 02:30 CEST
    assert ambiguous.start.astimezone(BERLIN).utcoffset() == timedelta(hours=2)
    assert occurrences[2].start == datetime(2030, 10, 28, 1, 30, tzinfo=UTC)  # 02:30 CET


def test_to_utc_rejects_gap_and_resolves_fold(app):
    assert recurrence.to_utc(datetime(2030, 3, 31, 2, 0), BERLIN) is None
    assert recurrence.to_utc(datetime(2030, 3, 31, 3, 0), BERLIN) == datetime(
        2030, 3, 31, 1, 0, tzinfo=UTC
    )
    assert recurrence.to_utc(datetime(2030, 10, 27, 2, 0), BERLIN) == datetime(
        2030, 10, 27, 0, 0, tzinfo=UTC
    )


def test_parse_rule_normalizes(app):
    rule = recurrence.parse_rule(
        {"freq": "weekly", "byweekday": [2, 0, 2], "until": "2030-02-01"}, date(2030, 1, 7)
    )
    assert rule.to_json() == {
        "freq": "weekly", "interval": 1, "byweekday": [0, 2], "until": "2030-02-01"
    }
    daily = recurrence.parse_rule({"freq": "daily", "count": 2}, date(2030, 1, 7))
    assert daily.to_json() == {"freq": "daily", "interval": 1, "count": 2}


def test_parse_rule_accepts_exactly_200(app):
    rule = recurrence.parse_rule({"freq": "daily", "count": 200}, date(2030, 1, 7))
    assert len(recurrence.occurrence_dates(rule, date(2030, 1, 7))) == 200
    until = recurrence.parse_rule({"freq": "daily", "until": "2030-07-25"}, date(2030, 1, 7))
    assert len(recurrence.occurrence_dates(until, date(2030, 1, 7))) == 200


MONDAY = date(2030, 1, 7)


@pytest.mark.parametrize(
    "raw, fields",
    [
        ({"freq": "monthly", "count": 3}, ["recurrence.freq"]),
        ({"count": 3}, ["recurrence.freq"]),
        ({"freq": "daily", "interval": 0, "count": 3}, ["recurrence.interval"]),
        ({"freq": "daily", "interval": 53, "count": 3}, ["recurrence.interval"]),
        ({"freq": "daily", "interval": True, "count": 3}, ["recurrence.interval"]),
        ({"freq": "daily", "interval": "2", "count": 3}, ["recurrence.interval"]),
        (
            {"freq": "daily", "count": 3, "until": "2030-02-01"},
            ["recurrence.count", "recurrence.until"],
        ),
        ({"freq": "daily"}, ["recurrence.count", "recurrence.until"]),
        ({"freq": "daily", "until": "2030-01-06"}, ["recurrence.until"]),
        ({"freq": "daily", "until": "next week"}, ["recurrence.until"]),
        ({"freq": "daily", "until": "20300201"}, ["recurrence.until"]),
        ({"freq": "daily", "until": 20300201}, ["recurrence.until"]),
        ({"freq": "weekly", "byweekday": [0, 7], "count": 3}, ["recurrence.byweekday"]),
        ({"freq": "weekly", "byweekday": [-1], "count": 3}, ["recurrence.byweekday"]),
        ({"freq": "weekly", "byweekday": [], "count": 3}, ["recurrence.byweekday"]),
        ({"freq": "weekly", "byweekday": "0", "count": 3}, ["recurrence.byweekday"]),
        ({"freq": "weekly", "byweekday": [1, 2], "count": 3}, ["recurrence.byweekday"]),
        ({"freq": "daily", "byweekday": [0], "count": 3}, ["recurrence.byweekday"]),
        ({"freq": "daily", "count": 201}, ["recurrence.count"]),
        ({"freq": "daily", "count": 0}, ["recurrence.count"]),
        ({"freq": "daily", "until": "2030-07-26"}, ["recurrence.until"]),
        ({"freq": "daily", "count": 3, "bymonth": 2}, ["recurrence.bymonth"]),
    ],
)
def test_parse_rule_refuses_bad_rules(app, raw, fields):
    with pytest.raises(ValidationError) as info:
        recurrence.parse_rule(raw, MONDAY)
    assert sorted(info.value.fields) == sorted(fields)
    assert all(info.value.fields[name] for name in fields)


@pytest.mark.parametrize("raw", [None, [], "weekly", 3])
def test_parse_rule_refuses_non_objects(app, raw):
    with pytest.raises(ValidationError) as info:
        recurrence.parse_rule(raw, MONDAY)
    assert list(info.value.fields) == ["recurrence"]


def test_parse_rule_reports_every_problem_at_once(app):
    with pytest.raises(ValidationError) as info:
        recurrence.parse_rule({"freq": "hourly", "interval": 0, "count": 999}, MONDAY)
    assert set(info.value.fields) == {
        "recurrence.freq", "recurrence.interval", "recurrence.count"
    }
