"""Unit tests of the typed input parsing that every API module shares."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from werkzeug.datastructures import MultiDict

from labbook.api.schema import (
    Boolean,
    Choice,
    Date,
    DateTime,
    DecimalString,
    IdList,
    Integer,
    Invalid,
    Schema,
    String,
)
from labbook.errors import ValidationError

PROBE = Schema("Probe", {
    "name": String(max_length=5, min_length=1, required=True),
    "count": Integer(minimum=0, maximum=10, default=3),
    "flag": Boolean(),
    "limit": Integer(minimum=1, nullable=True),
}, read_only=("id",))


@pytest.mark.parametrize(("prop", "value", "expected"), [
    (Integer(), 7, 7),
    (Integer(minimum=0, maximum=0), 0, 0),
    (Boolean(), False, False),
    (String(max_length=3), "abc", "abc"),
    (Choice(choices=("a", "b")), "b", "b"),
    (IdList(), [3, 1], [3, 1]),
    (Date(), "2026-02-28", date(2026, 2, 28)),
    (DateTime(), "2026-03-02T09:00:00+08:00",
     datetime(2026, 3, 2, 9, tzinfo=timezone(timedelta(hours=8)))),
    (DateTime(), "2026-03-02T01:00:00Z", datetime(2026, 3, 2, 1, tzinfo=timezone.utc)),
    (DecimalString(), "12.50", Decimal("12.50")),
    (DecimalString(places=4), "0.06", Decimal("0.06")),
])
def test_prop_parse_accepts_well_typed_values(prop, value, expected):
    assert prop.parse(value) == expected


@pytest.mark.parametrize(("prop", "value"), [
    (Integer(), "7"), (Integer(), True), (Integer(), 7.0), (Integer(maximum=5), 6),
    (Integer(minimum=1), 0), (Boolean(), "true"), (Boolean(), 0), (String(), 5),
    (String(max_length=3), "abcd"), (String(min_length=1), "  "), (String(), "a\x00"),
    (Choice(choices=("a",)), "c"), (Choice(choices=("a",)), 1), (IdList(), [1, 1]),
    (IdList(), [0]), (IdList(), [2**31]), (IdList(), "1"), (IdList(min_items=1), []),
    (IdList(max_items=1), [1, 2]), (Date(), "2026-02-30"), (Date(), "20260201"),
    (Date(), 20260201), (DateTime(), "2026-03-02T09:00:00"), (DateTime(), "2026-03-02"),
    (DateTime(), "tomorrow"), (DateTime(), 1767225600), (DecimalString(), 12.5),
    (DecimalString(), "12.505"), (DecimalString(), "1e3"), (DecimalString(), "NaN"),
    (DecimalString(minimum=Decimal(0)), "-1"),
])
def test_prop_parse_refuses_wrong_values(prop, value):
    with pytest.raises(Invalid) as info:
        prop.parse(value)
    assert info.value.message


def test_datetime_parse_names_the_missing_offset():
    with pytest.raises(Invalid) as info:
        DateTime().parse("2026-03-02T09:00:00")
    assert "offset" in info.value.message


@pytest.mark.parametrize(("prop", "raw", "expected"), [
    (Integer(), "42", 42), (Integer(), "-3", -3), (Boolean(), "true", True),
    (Boolean(), "0", False), (String(), "x", "x"),
])
def test_prop_parse_text_converts_query_values(prop, raw, expected):
    assert prop.parse_text(raw) == expected


@pytest.mark.parametrize(("prop", "raw"), [
    (Integer(), "4.0"), (Integer(), " 4"), (Integer(), "٣"), (Integer(), "9" * 30),
    (Boolean(), "yes"),
])
def test_prop_parse_text_refuses_malformed_query_values(prop, raw):
    with pytest.raises(Invalid):
        prop.parse_text(raw)


def test_schema_parse_returns_only_present_values(app):
    assert PROBE.parse({"name": "ab", "limit": None}) == {"name": "ab", "limit": None}


def test_schema_parse_reports_every_problem(app):
    with pytest.raises(ValidationError) as info:
        PROBE.parse({"count": "1", "flag": None, "id": 3, "colour": "red"})
    assert set(info.value.fields) == {"name", "count", "flag", "id", "colour"}
    assert info.value.fields["name"] == ["This field is required."]
    assert info.value.fields["flag"] == ["Must not be null."]
    assert info.value.fields["id"] == ["This field cannot be changed."]
    assert info.value.fields["colour"] == ["Unknown field."]


def test_schema_partial_requires_nothing(app):
    assert PROBE.partial("ProbeUpdate").parse({}) == {}
    assert PROBE.partial("ProbeUpdate").json_schema()["required"] == []


def test_schema_parse_query_fills_defaults_and_ignores_empty_values(app):
    assert PROBE.parse_query(MultiDict({"name": "ab", "flag": ""})) == {"name": "ab", "count": 3}


def test_schema_parse_query_refuses_repeated_and_unknown_parameters(app):
    args = MultiDict([("name", "a"), ("name", "b"), ("other", "1")])
    with pytest.raises(ValidationError) as info:
        PROBE.parse_query(args)
    assert info.value.fields == {"name": ["Give this parameter at most once."],
                                 "other": ["Unknown parameter."]}


def test_schema_json_schema_describes_limits(app):
    schema = PROBE.json_schema()
    assert schema["required"] == ["name"] and schema["additionalProperties"] is False
    assert schema["properties"]["name"] == {"type": "string", "minLength": 1, "maxLength": 5}
    assert schema["properties"]["count"] == {"type": "integer", "minimum": 0, "maximum": 10,
                                             "default": 3}
    assert schema["properties"]["limit"]["type"] == ["integer", "null"]
    assert PROBE.parameters()[0] == {"name": "name", "in": "query", "required": True,
                                     "schema": schema["properties"]["name"]}
