"""The instrument editor: create and edit for facility managers and admins, with field
errors re-rendered (422), CSRF, and role and facility scope."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.extensions import db
from labbook.instruments.models import Instrument
from tests import factories
from tests.conftest import csrf_token, login
from tests.instruments import page


@pytest.fixture
def setup(app):
    facility = factories.make_facility(name="Nano Fab")
    other = factories.make_facility(name="Bio Lab")
    field, field2 = factories.make_field(name="Functional Materials"), factories.make_field()
    db.session.commit()
    return facility, other, field, field2


def _form(facility, field, **overrides):
    data = {
        "name": "Bruker D8 XRD", "asset_code": "XRD-0001", "category": "XRD", "make": "Bruker",
        "model": "D8 Advance", "facility_id": str(facility.id), "location": "B2-104",
        "description": "Powder diffraction", "field_ids": [str(field.id)], "status": "available",
        "slot_minutes": "30", "min_minutes": "30", "max_minutes": "240", "lead_minutes": "60",
        "horizon_days": "60", "buffer_minutes": "15", "late_cancel_notice_hours": "48",
        "no_show_grace_minutes": "20", "user_weekly_quota_minutes": "600",
        "team_weekly_quota_minutes": "", "requires_approval": "y",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _count() -> int:
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count(Instrument.id)))


def _audit(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action)))


def _post(client, path, data, token_page=None):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, token_page or path)})


# -- create -----------------------------------------------------------------------------------

def test_create_form_shows_policy_defaults(client, login_as, setup):
    login_as("facility_manager", facility=setup[0])
    html = page(client.get("/instruments/new"))
    values = {e.attrs["name"]: e.attrs.get("value") for e in html.find("input")
              if "name" in e.attrs}
    assert (values["slot_minutes"], values["min_minutes"], values["max_minutes"]) == (
        "15", "15", "480")
    assert (values["horizon_days"], values["late_cancel_notice_hours"]) == ("90", "24")
    assert values["user_weekly_quota_minutes"] == ""
    assert "checked" in html.one("input", name="requires_qualification").attrs
    assert "checked" not in html.one("input", name="requires_approval").attrs


def test_create_writes_the_instrument_and_an_audit_entry(client, login_as, setup):
    facility, _, field, _ = setup
    manager = login_as("facility_manager", facility=facility)
    response = _post(client, "/instruments/new", _form(facility, field))
    assert response.status_code == 302
    instrument = db.session.scalar(sa.select(Instrument).where(Instrument.asset_code == "XRD-0001"))
    assert response.headers["Location"].endswith(f"/instruments/{instrument.id}")
    assert (instrument.name, instrument.facility_id, instrument.field_ids) == (
        "Bruker D8 XRD", facility.id, [field.id])
    assert (instrument.slot_minutes, instrument.max_minutes,
            instrument.late_cancel_notice_hours) == (30, 240, 48)
    assert instrument.requires_approval and not instrument.requires_qualification
    assert instrument.user_weekly_quota_minutes == 600
    assert instrument.team_weekly_quota_minutes is None
    [entry] = _audit("instrument.create")
    assert entry.actor_id == manager.id and entry.object_id == str(instrument.id)
    assert "created" in page(client.get(response.headers["Location"])).one(cls="flash").text


def test_create_by_admin_in_any_facility(client, login_as, setup):
    facility, other, field, _ = setup
    login_as("admin")
    html = page(client.get("/instruments/new"))
    offered = {o.attrs["value"] for o in html.find("option") if o.attrs.get("value", "").isdigit()}
    assert {str(facility.id), str(other.id)} <= offered
    response = _post(client, "/instruments/new", _form(other, field))
    assert response.status_code == 302 and _count() == 1


BAD_CREATE = {
    "min_not_multiple_of_slot": ({"slot_minutes": "30", "min_minutes": "45"}, "min_minutes",
                                 "multiple of the slot length"),
    "over_long_name": ({"name": "x" * 161}, "name", "160"),
    "unknown_field_id": ({"field_ids": ["987654"]}, "field_ids", "not a valid choice"),
    "no_field": ({"field_ids": None}, "field_ids", "at least one research field"),
    "missing_name": ({"name": ""}, "name", "required"),
    "slot_not_a_number": ({"slot_minutes": "half an hour"}, "slot_minutes", "integer"),
    "missing_slot": ({"slot_minutes": None}, "slot_minutes", "required"),
    "slot_out_of_range": ({"slot_minutes": "0"}, "slot_minutes", "between"),
    "negative_quota": ({"user_weekly_quota_minutes": "-5"}, "user_weekly_quota_minutes", "between"),
    "unknown_status": ({"status": "exploded"}, "status", "not a valid choice"),
}


@pytest.mark.parametrize("case", BAD_CREATE)
def test_create_rejects_bad_input_and_writes_nothing(client, login_as, setup, case):
    facility, _, field, _ = setup
    login_as("facility_manager", facility=facility)
    overrides, name, message = BAD_CREATE[case]
    response = _post(client, "/instruments/new", _form(facility, field, **overrides))
    assert response.status_code == 422
    error = page(response).one("p", "error", id_=f"{name}-error")
    assert message.lower() in error.text.lower()
    assert page(response).one(id_="form-problems")
    assert _count() == 0 and _audit("instrument.create") == []


def test_create_rejects_a_duplicate_asset_code(client, login_as, setup):
    facility, _, field, _ = setup
    factories.make_instrument(facility, asset_code="XRD-0001")
    db.session.commit()
    login_as("facility_manager", facility=facility)
    response = _post(client, "/instruments/new", _form(facility, field))
    assert response.status_code == 422
    assert "already has this asset code" in page(response).one(id_="asset_code-error").text
    assert _count() == 1


def test_create_keeps_what_was_typed_after_an_error(client, login_as, setup):
    facility, _, field, _ = setup
    login_as("facility_manager", facility=facility)
    response = _post(client, "/instruments/new", _form(facility, field, min_minutes="45"))
    html = page(response)
    assert html.one("input", name="name").attrs["value"] == "Bruker D8 XRD"
    assert html.one("input", name="min_minutes").attrs["value"] == "45"


def test_create_without_csrf_token_is_refused(client, login_as, setup):
    facility, _, field, _ = setup
    login_as("facility_manager", facility=facility)
    response = client.post("/instruments/new", data=_form(facility, field))
    assert response.status_code == 400
    assert _count() == 0


@pytest.mark.parametrize("role", ["researcher", "team_lead", "finance"])
def test_create_is_forbidden_without_a_managed_facility(client, login_as, setup, role):
    facility, _, field, _ = setup
    login_as(role)
    assert client.get("/instruments/new").status_code == 403
    response = _post(client, "/instruments/new", _form(facility, field), token_page="/")
    assert response.status_code == 403 and _count() == 0


def test_create_manager_without_facilities_is_forbidden(client, login_as, setup):
    user = factories.make_user(roles=("facility_manager",))
    db.session.commit()
    login(client, user.email)
    assert client.get("/instruments/new").status_code == 403


def test_create_manager_is_offered_only_their_facilities(client, login_as, setup):
    facility, other, _, _ = setup
    login_as("facility_manager", facility=facility)
    select = page(client.get("/instruments/new"))
    offered = [o.attrs["value"] for o in select.find("option")
               if o.attrs.get("value", "").isdigit()]
    assert str(facility.id) in offered and str(other.id) not in offered


def test_create_manager_cannot_tamper_another_facility_into_the_post(client, login_as, setup):
    facility, other, field, _ = setup
    login_as("facility_manager", facility=facility)
    response = _post(client, "/instruments/new", _form(other, field), token_page="/instruments/new")
    assert response.status_code == 422
    assert "not a valid choice" in page(response).one(id_="facility_id-error").text.lower()
    assert _count() == 0


# -- edit -------------------------------------------------------------------------------------

@pytest.fixture
def instrument(setup):
    facility, _, field, _ = setup
    item = factories.make_instrument(facility, name="Old name", asset_code="OLD-1", fields=[field])
    db.session.commit()
    return item


def test_edit_form_is_prefilled(client, login_as, setup, instrument):
    login_as("facility_manager", facility=setup[0])
    html = page(client.get(f"/instruments/{instrument.id}/edit"))
    assert html.one("input", name="name").attrs["value"] == "Old name"
    assert html.one("input", name="slot_minutes").attrs["value"] == "15"
    assert "checked" in html.one("input", name="field_ids", value=str(setup[2].id)).attrs
    assert "checked" not in html.one("input", name="field_ids", value=str(setup[3].id)).attrs


def test_edit_saves_changes_with_an_audit_entry(client, login_as, setup, instrument):
    facility, _, field, field2 = setup
    manager = login_as("facility_manager", facility=facility)
    data = _form(facility, field2, name="New name", asset_code="OLD-1", status="down",
                 user_weekly_quota_minutes="")
    response = _post(client, f"/instruments/{instrument.id}/edit", data)
    assert response.status_code == 302
    db.session.expire_all()
    assert (instrument.name, instrument.status) == ("New name", "down")
    assert instrument.field_ids == [field2.id]
    assert instrument.user_weekly_quota_minutes is None and instrument.slot_minutes == 30
    [entry] = _audit("instrument.update")
    assert entry.actor_id == manager.id
    assert entry.before["name"] == "Old name" and entry.after["name"] == "New name"
    assert entry.after["field_ids"] == [field2.id]


def test_edit_rejects_bad_input_and_changes_nothing(client, login_as, setup, instrument):
    facility, _, field, _ = setup
    login_as("facility_manager", facility=facility)
    data = _form(facility, field, name="Renamed", asset_code="OLD-1", max_minutes="250")
    response = _post(client, f"/instruments/{instrument.id}/edit", data)
    assert response.status_code == 422
    assert "multiple of the slot length" in page(response).one(id_="max_minutes-error").text
    db.session.expire_all()
    assert instrument.name == "Old name" and _audit("instrument.update") == []


def test_edit_without_csrf_token_is_refused(client, login_as, setup, instrument):
    facility, _, field, _ = setup
    login_as("facility_manager", facility=facility)
    response = client.post(f"/instruments/{instrument.id}/edit",
                           data=_form(facility, field, name="Renamed", asset_code="OLD-1"))
    assert response.status_code == 400
    db.session.expire_all()
    assert instrument.name == "Old name"


def test_edit_by_manager_of_another_facility_is_forbidden(client, login_as, setup, instrument):
    facility, other, field, _ = setup
    login_as("facility_manager", facility=other)
    assert client.get(f"/instruments/{instrument.id}/edit").status_code == 403
    data = _form(other, field, name="Hijacked", asset_code="OLD-1")
    response = _post(client, f"/instruments/{instrument.id}/edit", data, token_page="/")
    assert response.status_code == 403
    db.session.expire_all()
    assert instrument.name == "Old name" and instrument.facility_id == facility.id


@pytest.mark.parametrize("role", ["researcher", "team_lead", "finance"])
def test_edit_is_forbidden_to_non_managers(client, login_as, setup, instrument, role):
    login_as(role)
    assert client.get(f"/instruments/{instrument.id}/edit").status_code == 403


def test_edit_manager_cannot_move_an_instrument_to_a_facility_they_do_not_manage(
        client, login_as, setup, instrument):
    facility, other, field, _ = setup
    login_as("facility_manager", facility=facility)
    data = _form(other, field, asset_code="OLD-1")
    response = _post(client, f"/instruments/{instrument.id}/edit", data)
    assert response.status_code == 422
    db.session.expire_all()
    assert instrument.facility_id == facility.id


def test_edit_admin_may_move_an_instrument(client, login_as, setup, instrument):
    facility, other, field, _ = setup
    login_as("admin")
    data = _form(other, field, asset_code="OLD-1")
    response = _post(client, f"/instruments/{instrument.id}/edit", data)
    assert response.status_code == 302
    db.session.expire_all()
    assert instrument.facility_id == other.id


def test_edit_unknown_instrument_is_404(client, login_as, setup):
    login_as("facility_manager", facility=setup[0])
    assert client.get("/instruments/987654/edit").status_code == 404
