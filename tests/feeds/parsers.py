"""Two independent readings of an iCalendar file: Python's ``icalendar`` and Mozilla's
``ical.js`` (through node, tests/js/parse_ics.mjs). Both are reduced to the same plain
shape, so a test asserts on values (times with their zone and UTC instant, statuses,
sequences), never on strings of the file.

ical.js resolves a TZID through the VTIMEZONE the file carries, ``icalendar`` through the
zone database: when both agree on the UTC instant, the file's VTIMEZONE is right.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = ROOT / "tests" / "js"
JS_SCRIPT = JS_DIR / "parse_ics.mjs"
ICAL_JS = JS_DIR / "node_modules" / "ical.js"


def ical_js_missing() -> str | None:
    """Why the ical.js half cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "ical.js half skipped: node is not installed (install Node.js, then `make test`)"
    if not ICAL_JS.is_dir():
        return ("ical.js half skipped: tests/js/node_modules is missing (run `make test`, or "
                "`npm ci --prefix tests/js`)")
    return None


def _when_py(prop: Any) -> dict[str, Any] | None:
    if prop is None:
        return None
    value = prop.dt
    if not isinstance(value, datetime):
        assert isinstance(value, date)
        return {"tzid": None, "is_date": True, "local": value.isoformat(), "utc": None}
    tzid = prop.params.get("TZID")
    utc = value.astimezone(timezone.utc) if value.tzinfo is not None else None
    return {
        "tzid": tzid,
        "is_date": False,
        "local": value.replace(tzinfo=None).isoformat(),
        "utc": utc.isoformat().replace("+00:00", "Z") if utc else None,
    }


def _text(component: Any, name: str) -> str | None:
    value = component.get(name)
    return None if value is None else str(value)


def read_icalendar(data: bytes) -> dict[str, Any]:
    """The file as ``icalendar`` understands it."""
    cal = Calendar.from_ical(data)
    events = []
    for event in cal.walk("VEVENT"):
        sequence = event.get("SEQUENCE")
        events.append({
            "uid": _text(event, "UID"),
            "summary": _text(event, "SUMMARY"),
            "description": _text(event, "DESCRIPTION"),
            "location": _text(event, "LOCATION"),
            "url": _text(event, "URL"),
            "status": _text(event, "STATUS"),
            "sequence": None if sequence is None else int(sequence),
            "start": _when_py(event.get("DTSTART")),
            "end": _when_py(event.get("DTEND")),
            "dtstamp": _when_py(event.get("DTSTAMP")),
        })
    ttl = cal.get("X-PUBLISHED-TTL")
    refresh = cal.get("REFRESH-INTERVAL")
    return {
        "calendar": {
            "version": _text(cal, "VERSION"),
            "prodid": _text(cal, "PRODID"),
            "calscale": _text(cal, "CALSCALE"),
            "method": _text(cal, "METHOD"),
            "name": _text(cal, "NAME"),
            "x_wr_calname": _text(cal, "X-WR-CALNAME"),
            "refresh_interval_seconds": _seconds(refresh),
            "x_published_ttl_seconds": _seconds(ttl),
        },
        "timezones": [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")],
        "events": events,
    }


def _seconds(prop: Any) -> int | None:
    if prop is None:
        return None
    value = prop.dt if hasattr(prop, "dt") else prop
    if not isinstance(value, timedelta):
        from icalendar.prop import vDuration

        value = vDuration.from_ical(str(value))
    return int(value.total_seconds())


def read_ical_js(data: bytes) -> dict[str, Any]:
    """The file as ical.js understands it (the test is skipped without node/ical.js)."""
    reason = ical_js_missing()
    if reason:
        pytest.skip(reason)
    done = subprocess.run(["node", str(JS_SCRIPT)], input=data, capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    result = json.loads(done.stdout)
    for event in result["events"]:
        for key in ("start", "end", "dtstamp"):
            when = event.get(key)
            if when is None:
                continue
            when["local"] = _js_local(when["local"], when["is_date"])
            if when["utc"]:
                when["utc"] = when["utc"].replace(".000Z", "Z")
            event[key] = {k: when[k] for k in ("tzid", "is_date", "local", "utc")}
    return result


def _js_local(text: str, is_date: bool) -> str:
    """ical.js writes "2030-01-07T10:00:00" (or with "Z" for UTC): as Python's isoformat."""
    return text if is_date else text.removesuffix("Z")


COMPARED = ("uid", "summary", "description", "location", "url", "status", "sequence",
            "start", "end", "dtstamp")


def read_both(data: bytes) -> dict[str, Any]:
    """Parse with both parsers, assert they agree on the header and every event, and
    return the (common) reading."""
    py = read_icalendar(data)
    js = read_ical_js(data)
    assert js["calendar"] == py["calendar"]
    assert sorted(js["timezones"]) == sorted(py["timezones"])
    assert [{k: e[k] for k in COMPARED} for e in js["events"]] == py["events"]
    return py


def events_by_uid(reading: dict[str, Any]) -> dict[str, dict[str, Any]]:
    events = {e["uid"]: e for e in reading["events"]}
    assert len(events) == len(reading["events"]), "duplicate UIDs"
    return events


def utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
