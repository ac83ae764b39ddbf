"""Availability, find-a-slot and qualification services."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from labbook.bookings import availability, qualifications
from labbook.bookings.errors import NotAllowed
from labbook.bookings.models import Outage
from labbook.errors import ValidationError
from labbook.extensions import db
from tests import factories

UTC = timezone.utc
MON_10 = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
NOW = MON_10 - timedelta(days=7)


def test_availability_lists_busy_and_free_without_leaking(app):
    instrument = factories.make_instrument(buffer_minutes=15)
    owner = factories.make_booker(instrument)
    factories.make_booking(instrument, owner, start=MON_10, purpose="secret sample")
    viewer = factories.make_booker(instrument)
    result = availability.availability(
        instrument, MON_10 - timedelta(hours=2), MON_10 + timedelta(hours=2), viewer
    )
    (busy,) = result["busy"]
    assert busy["blocked_until"] == (MON_10 + timedelta(minutes=75)).isoformat()
    assert "purpose" not in busy and busy["mine"] is False
    assert [f["end"] for f in result["free"]] == [
        MON_10.isoformat(),
        (MON_10 + timedelta(hours=2)).isoformat(),
    ]
    mine = availability.availability(instrument, MON_10, MON_10 + timedelta(hours=1), owner)
    assert mine["busy"][0]["purpose"] == "secret sample" and mine["busy"][0]["mine"]


def test_find_slots_skips_busy_unqualified_and_down(app):
    field = factories.make_field()
    a = factories.make_instrument(fields=[field], name="A")
    factories.make_instrument(fields=[field], name="B", requires_qualification=False)
    factories.make_instrument(fields=[field], name="C")  # user not qualified
    factories.make_instrument(fields=[field], name="D", status="down", requires_qualification=False)
    user = factories.make_booker(a)
    factories.make_booking(a, user, start=MON_10, end=MON_10 + timedelta(hours=3))
    query = availability.SlotQuery(
        minutes=60, start=MON_10, end=MON_10 + timedelta(days=2), field_id=field.id
    )
    found = availability.find_slots(user, query, now=NOW)
    assert [(f["instrument"], f["start"]) for f in found] == [
        ("B", MON_10.isoformat()),
        ("A", (MON_10 + timedelta(hours=3)).isoformat()),
    ]


def test_find_slots_respects_staffed_hours(app):
    instrument = factories.make_instrument(requires_qualification=False)
    user = factories.make_booker(instrument)
    evening = MON_10 + timedelta(hours=9)  # 19:00 local, after closing
    query = availability.SlotQuery(minutes=60, start=evening, end=evening + timedelta(days=2))
    (found,) = availability.find_slots(user, query, now=NOW)
    assert (
        found["start"] == (MON_10 + timedelta(days=1) - timedelta(hours=1, minutes=30)).isoformat()
    )


def test_outage_shows_as_busy(app):
    instrument = factories.make_instrument()
    db.session.add(
        Outage(
            instrument=instrument,
            start_at=MON_10,
            state="scheduled",
            outage_kind="repair",
            title="Column leak",
        )
    )
    db.session.flush()
    viewer = factories.make_user()
    result = availability.availability(
        instrument, MON_10 - timedelta(hours=1), MON_10 + timedelta(hours=1), viewer
    )
    assert result["busy"][0]["title"] == "Column leak" and len(result["free"]) == 1


def test_grant_and_revoke_qualification(app):
    instrument = factories.make_instrument()
    manager = factories.make_user_with_role("facility_manager", facility=instrument.facility)
    user = factories.make_user()
    q = qualifications.grant_qualification(
        manager, user, instrument=instrument, level="basic", now=NOW
    )
    again = qualifications.grant_qualification(
        manager, user, instrument=instrument, level="advanced", now=NOW
    )
    assert again.id == q.id and again.level == "advanced"
    qualifications.revoke_qualification(manager, q, now=NOW)
    assert q.revoked_at is not None
    with pytest.raises(NotAllowed):
        qualifications.grant_qualification(
            factories.make_user_with_role("facility_manager"), user, instrument=instrument, now=NOW
        )
    with pytest.raises(NotAllowed):  # categories span facilities: admins only
        qualifications.grant_qualification(manager, user, category="SEM", now=NOW)


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"level": "expert"}, "level"),
        ({"expires_at": NOW - timedelta(days=1)}, "expires_at"),
        ({"category": "SEM"}, "instrument_id"),
    ],
)
def test_grant_qualification_bad_input(app, kw, field):
    instrument = factories.make_instrument()
    admin = factories.make_user(roles=("admin",))
    with pytest.raises(ValidationError) as info:
        qualifications.grant_qualification(
            admin, factories.make_user(), instrument=instrument, now=NOW, **kw
        )
    assert field in info.value.fields


def test_request_then_grant_closes_request(app):
    instrument = factories.make_instrument()
    user = factories.make_user()
    request = qualifications.request_qualification(user, instrument, "Trained at my old lab")
    assert qualifications.request_qualification(user, instrument).id == request.id
    admin = factories.make_user(roles=("admin",))
    qualifications.grant_qualification(admin, user, instrument=instrument, now=NOW)
    assert request.state == "granted"
