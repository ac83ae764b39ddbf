"""Instrument rules: validation, coherence of the booking policy, scope, audit, search."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.errors import Forbidden, ValidationError
from labbook.extensions import db
from labbook.instruments import services
from labbook.instruments.models import Instrument
from tests import factories


def _values(facility, field, **kw):
    return {
        "facility_id": facility.id,
        "name": "Zeiss Sigma 300 FE-SEM",
        "asset_code": "EM-0001",
        "category": "SEM",
        "field_ids": [field.id],
        **kw,
    }


def test_create_instrument_applies_policy_defaults_and_audits(app):
    facility, field = factories.make_facility(), factories.make_field()
    manager = factories.make_user_with_role("facility_manager", facility=facility)
    instrument = services.create_instrument(manager, _values(facility, field))
    assert (instrument.slot_minutes, instrument.max_minutes, instrument.horizon_days) == (
        15,
        480,
        90,
    )
    assert instrument.requires_qualification and not instrument.requires_approval
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "instrument.create"))
    assert entry.actor_id == manager.id and entry.after["asset_code"] == "EM-0001"


def test_create_instrument_reports_every_bad_field_at_once(app):
    facility = factories.make_facility()
    admin = factories.make_user(roles=("admin",))
    with pytest.raises(ValidationError) as info:
        services.create_instrument(
            admin,
            {
                "facility_id": facility.id,
                "name": "",
                "asset_code": "x" * 65,
                "category": "SEM",
                "slot_minutes": "15",
                "requires_approval": "yes",
                "field_ids": [999999],
                "colour": "red",
            },
        )
    assert set(info.value.fields) == {
        "name",
        "asset_code",
        "slot_minutes",
        "requires_approval",
        "field_ids",
        "colour",
    }
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Instrument)) == 0


@pytest.mark.parametrize(
    "policy, field",
    [
        ({"slot_minutes": 30, "min_minutes": 45}, "min_minutes"),
        ({"slot_minutes": 30, "min_minutes": 30, "max_minutes": 50}, "max_minutes"),
        ({"min_minutes": 60, "max_minutes": 30}, "max_minutes"),
        ({"slot_minutes": 0}, "slot_minutes"),
        ({"horizon_days": 0}, "horizon_days"),
        ({"user_weekly_quota_minutes": -1}, "user_weekly_quota_minutes"),
    ],
)
def test_create_instrument_refuses_incoherent_policy(app, policy, field):
    facility, f = factories.make_facility(), factories.make_field()
    admin = factories.make_user(roles=("admin",))
    with pytest.raises(ValidationError) as info:
        services.create_instrument(admin, _values(facility, f, **policy))
    assert field in info.value.fields


def test_update_checks_coherence_against_current_values(app):
    instrument = factories.make_instrument(slot_minutes=30, min_minutes=30, max_minutes=240)
    admin = factories.make_user(roles=("admin",))
    with pytest.raises(ValidationError) as info:
        services.update_instrument(admin, instrument, {"min_minutes": 45})
    assert "min_minutes" in info.value.fields
    services.update_instrument(admin, instrument, {"min_minutes": 60})
    assert instrument.min_minutes == 60


def test_duplicate_asset_code_refused(app):
    existing = factories.make_instrument(asset_code="DUP-1")
    admin = factories.make_user(roles=("admin",))
    with pytest.raises(ValidationError) as info:
        services.create_instrument(
            admin, _values(existing.facility, factories.make_field(), asset_code="DUP-1")
        )
    assert "asset_code" in info.value.fields
    services.update_instrument(admin, existing, {"asset_code": "DUP-1"})  # its own code is fine


def test_manager_cannot_touch_other_facility(app):
    mine, theirs = factories.make_facility(), factories.make_facility()
    manager = factories.make_user_with_role("facility_manager", facility=mine)
    foreign = factories.make_instrument(facility=theirs)
    with pytest.raises(Forbidden):
        services.update_instrument(manager, foreign, {"name": "Renamed"})
    with pytest.raises(Forbidden):
        services.create_instrument(manager, _values(theirs, factories.make_field()))
    own = factories.make_instrument(facility=mine)
    with pytest.raises(Forbidden):  # moving into a facility they do not manage
        services.update_instrument(manager, own, {"facility_id": theirs.id})


def test_researcher_cannot_create(app):
    facility = factories.make_facility()
    researcher = factories.make_user()
    with pytest.raises(Forbidden):
        services.create_instrument(researcher, _values(facility, factories.make_field()))


def test_update_audits_only_changed_values(app):
    instrument = factories.make_instrument(name="Old name")
    admin = factories.make_user(roles=("admin",))
    services.update_instrument(
        admin, instrument, {"name": "New name", "category": instrument.category}
    )
    entry = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "instrument.update"))
    assert entry.before == {"name": "Old name"} and entry.after == {"name": "New name"}


def test_search_filters_combine(app):
    bio, mat = factories.make_field(), factories.make_field()
    platform = factories.make_platform()
    fac = factories.make_facility(platform=platform)
    a = factories.make_instrument(facility=fac, fields=[bio], category="Confocal", name="Leica SP8")
    factories.make_instrument(facility=fac, fields=[mat], category="XRD", name="Bruker D8")
    factories.make_instrument(fields=[bio], category="Confocal", status="down", name="Nikon A1")
    stmt = services.search_instruments(
        field_id=bio.id, platform_id=platform.id, category="Confocal"
    )
    assert db.session.scalars(stmt).all() == [a]
    found = db.session.scalars(services.search_instruments(query="sp8")).all()
    assert found == [a]
    down = db.session.scalars(services.search_instruments(status="down", field_id=bio.id)).all()
    assert [i.name for i in down] == ["Nikon A1"]


@pytest.mark.parametrize("query", ["%", "_", "\\"])
def test_search_treats_wildcards_literally(app, query):
    factories.make_instrument(name="Plain name")
    literal = factories.make_instrument(name=f"Odd {query} name")
    assert db.session.scalars(services.search_instruments(query=query)).all() == [literal]


def test_create_instrument_requires_a_research_field(app):
    facility = factories.make_facility()
    admin = factories.make_user(roles=("admin",))
    for values in ({}, {"field_ids": []}):
        with pytest.raises(ValidationError) as info:
            services.create_instrument(
                admin,
                (
                    {**_values(facility, factories.make_field()), **values}
                    if values
                    else {
                        k: v
                        for k, v in _values(facility, factories.make_field()).items()
                        if k != "field_ids"
                    }
                ),
            )
        assert "field_ids" in info.value.fields


def test_changing_only_fields_bumps_updated_at(app):
    instrument = factories.make_instrument()
    admin = factories.make_user(roles=("admin",))
    before = instrument.updated_at
    other = factories.make_field()
    services.update_instrument(admin, instrument, {"field_ids": [other.id]})
    assert instrument.updated_at > before
