"""Reading a closure calendar (labbook/feeds/import_parse.py), through the import: timed
events land at the right instant (TZID, UTC or floating on the facility's clock), repeating
events expand with their exceptions and moved occurrences up to the horizon, METHOD:CANCEL
and events without a UID, past events skipped; malformed files, files that are too big or
yield too many events are refused with a clear message and nothing is written."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from labbook.bookings.models import Outage
from labbook.errors import ValidationError
from tests.feeds.import_support import (
    BERLIN_VISIT,
    NATIONAL_DAY,
    UTC,
    _closures,
    _count,
    _import,
    _snapshot,
    ics,
)


def test_timed_event_with_tzid_lands_at_the_right_instant(lab):
    facility, _instruments, manager = lab
    floating = """
    UID:floating@x
    SUMMARY:Power work
    DTSTART:20300716T080000
    DURATION:PT2H
    """
    _import(facility, manager, ics(BERLIN_VISIT, floating))
    berlin = _closures(facility, Outage.external_uid == "berlin-service@vendor.example")
    assert {(r.start_at, r.end_at) for r in berlin} == {  # CEST is UTC+2
        (datetime(2030, 7, 15, 7, tzinfo=UTC), datetime(2030, 7, 15, 9, 30, tzinfo=UTC))}
    local = _closures(facility, Outage.external_uid == "floating@x")
    assert {(r.start_at, r.end_at) for r in local} == {  # floating: the facility's clock
        (datetime(2030, 7, 16, 0, tzinfo=UTC), datetime(2030, 7, 16, 2, tzinfo=UTC))}


def test_repeating_event_expands_with_exceptions_and_follows_changes(lab):
    facility, _instruments, manager = lab
    weekly = """
    UID:weekly-shutdown@x
    SUMMARY:Weekly shutdown
    DTSTART;TZID=Asia/Shanghai:20300701T180000
    DTEND;TZID=Asia/Shanghai:20300701T200000
    RRULE:FREQ=WEEKLY;COUNT=4
    EXDATE;TZID=Asia/Shanghai:20300708T180000
    """
    result = _import(facility, manager, ics(weekly))
    assert result.counts["created"] == 6  # 3 occurrences x 2 instruments
    keys = sorted({r.external_uid for r in _closures(facility)})
    assert keys == ["weekly-shutdown@x#20300701T100000Z", "weekly-shutdown@x#20300715T100000Z",
                    "weekly-shutdown@x#20300722T100000Z"]
    fewer = weekly.replace("COUNT=4", "COUNT=2")
    result = _import(facility, manager, ics(fewer))
    assert result.counts["unchanged"] == 2 and result.counts["cancelled"] == 4
    live = {r.external_uid for r in _closures(facility, Outage.state == "scheduled")}
    assert live == {"weekly-shutdown@x#20300701T100000Z"}


def test_yearly_rule_with_a_moved_occurrence_stops_at_the_horizon(lab):
    facility, _instruments, manager = lab
    new_year = """
    UID:new-year@x
    SUMMARY:元旦
    DTSTART;VALUE=DATE:20300101
    RRULE:FREQ=YEARLY;UNTIL=20331231
    """
    moved = """
    UID:new-year@x
    SUMMARY:元旦（补）
    RECURRENCE-ID;VALUE=DATE:20310101
    DTSTART;VALUE=DATE:20310102
    """
    result = _import(facility, manager, ics(new_year, moved))
    assert result.past == 1  # 2030-01-01 is before NOW; 2032 and 2033 are past the horizon
    assert [(e.key, e.summary) for e in result.events] == [("new-year@x#20310101", "元旦（补）")]
    assert any("import the calendar again later" in note for note in result.notes)
    rows = _closures(facility)
    assert {(r.start_at, r.end_at) for r in rows} == {
        (datetime(2031, 1, 1, 16, tzinfo=UTC), datetime(2031, 1, 2, 16, tzinfo=UTC))}


def test_method_cancel_and_events_without_uid(lab):
    facility, _instruments, manager = lab
    anonymous = "SUMMARY:Shutdown\nDTSTART;VALUE=DATE:20301110\nDURATION:P2D"
    first = _import(facility, manager, ics(anonymous, NATIONAL_DAY))
    assert first.counts["created"] == 4
    rows = _closures(facility, Outage.title == "Shutdown")
    assert {r.end_at - r.start_at for r in rows} == {timedelta(days=2)}
    assert _import(facility, manager, ics(anonymous)).counts["unchanged"] == 2
    cancel = _import(facility, manager, ics(NATIONAL_DAY, method="CANCEL"))
    assert cancel.counts["cancelled"] == 2
    assert {r.state for r in _closures(facility, Outage.title == "国庆节")} == {"cancelled"}


def test_past_events_are_skipped(lab):
    facility, _instruments, manager = lab
    past = NATIONAL_DAY.replace("2030", "2029").replace("national-day-2029", "nd-2029")
    result = _import(facility, manager, ics(past, NATIONAL_DAY))
    assert result.past == 1 and len(result.events) == 1 and result.counts["created"] == 2


@pytest.mark.parametrize("data, words", [
    (b"hello, world", "not an iCalendar file"),
    (b"<!doctype html><html><body>Holidays</body></html>", "not an iCalendar file"),
    (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n", "malformed"),
    (b"BEGIN:VCALENDAR\r\n\xff\xfe\r\nEND:VCALENDAR\r\n", "UTF-8"),
    (ics("UID:a\nSUMMARY:Lost"), "“Lost” has no start"),
    (ics("UID:a\nSUMMARY:Nowhere\nDTSTART;TZID=Mars/Olympus:20301001T090000\n"
         "DURATION:PT1H"), "unknown time zone: Mars/Olympus"),
    (ics("UID:a\nSUMMARY:Backwards\nDTSTART:20301001T090000Z\nDTEND:20301001T080000Z"),
     "“Backwards” (2030-10-01) ends before it starts"),
    (ics("UID:a\nSUMMARY:Odd\nDTSTART:20301001T090000Z\nDURATION:PT1H\nRRULE:FREQ=SOMETIMES"),
     "“Odd” has an unreadable RRULE"),
    (ics("UID:a\nSUMMARY:Twice\nDTSTART;VALUE=DATE:20301001",
         "UID:a\nSUMMARY:Twice\nDTSTART;VALUE=DATE:20301002"), "Two events share the UID"),
])
def test_bad_files_are_refused_with_a_clear_message(lab, data, words):
    facility, _instruments, manager = lab
    before = _snapshot()
    with pytest.raises(ValidationError) as info:
        _import(facility, manager, data)
    assert words in info.value.message and info.value.fields["calendar"]
    assert _snapshot() == before


def test_too_big_and_too_many_are_refused(app, lab):
    facility, _instruments, manager = lab
    app.config["LABBOOK_IMPORT_MAX_BYTES"] = 200
    try:
        with pytest.raises(ValidationError, match="too big"):
            _import(facility, manager, ics(NATIONAL_DAY, BERLIN_VISIT))
    finally:
        app.config["LABBOOK_IMPORT_MAX_BYTES"] = 2 * 1024 * 1024
    daily = "UID:d\nSUMMARY:Every night\nDTSTART:20300601T200000Z\nDURATION:PT1H\nRRULE:FREQ=HOURLY"
    with pytest.raises(ValidationError, match="more than 2000 events"):
        _import(facility, manager, ics(daily))
    assert _count(Outage) == 0
