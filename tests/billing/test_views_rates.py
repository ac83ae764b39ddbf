"""Rate cards, classes, consumables, usage items and billing policies through the pages:
role checks, field errors with nothing written, and the closed-period refusal."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import sqlalchemy as sa

from labbook.billing.models import BillingPeriod, BillingPolicy, Consumable, CustomerClass, Rate
from labbook.extensions import db
from tests import factories
from tests.billing.ui_scene import make_scene, token


def _count(model) -> int:  # type: ignore[no-untyped-def]
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def _rate_form(instrument_id: int, **kw: str) -> dict[str, str]:
    return {"target": f"i:{instrument_id}", "customer_class": "internal",
            "charge_type": "instrument_hour", "amount": "150.00",
            "effective_from": "2026-12-01", **kw}


def test_rates_pages_render_for_finance(login_as, client):
    scene = make_scene()
    login_as("finance")
    html = client.get("/billing/rates").get_data(as_text=True)
    assert scene.instrument.name in html and "120.00 CNY" in html
    assert client.get(f"/billing/rates/instrument/{scene.instrument.id}").status_code == 200
    assert client.get("/billing/rates/new").status_code == 200
    assert client.get("/billing/classes").status_code == 200


def test_rate_preview_shows_each_team(login_as, client):
    scene = make_scene()
    factories.make_rate(scene.instrument, "200.00", effective_from=datetime(2026, 11, 1).date(),
                        published=False)
    db.session.commit()
    login_as("finance")
    html = client.get("/billing/rates/preview?month=2026-10").get_data(as_text=True)
    assert f'id="preview-{scene.team.id}"' in html and "400.00 CNY" in html


def test_new_rate_draft_publish_and_delete(login_as, client):
    scene = make_scene()
    login_as("finance")
    csrf = token(client, "/billing/rates/new")
    response = client.post("/billing/rates/new",
                           data={**_rate_form(scene.instrument.id), "csrf_token": csrf})
    assert response.status_code == 302
    draft = db.session.scalar(sa.select(Rate).where(Rate.amount == Decimal("150.00")))
    assert draft is not None and draft.is_draft
    assert client.post(f"/billing/rates/{draft.id}/publish",
                       data={"csrf_token": csrf}).status_code == 302
    db.session.expire_all()
    assert not db.session.get(Rate, draft.id).is_draft
    refused = client.post(f"/billing/rates/{draft.id}/delete", data={"csrf_token": csrf},
                          follow_redirects=True)
    assert "never deleted" in refused.get_data(as_text=True)
    assert db.session.get(Rate, draft.id) is not None


def test_rate_form_bad_amount_rerenders_and_writes_nothing(login_as, client):
    scene = make_scene()
    login_as("finance")
    before = _count(Rate)
    csrf = token(client, "/billing/rates/new")
    response = client.post("/billing/rates/new", data={
        **_rate_form(scene.instrument.id, amount="abc"), "csrf_token": csrf})
    assert response.status_code == 422
    assert "Not a decimal number." in response.get_data(as_text=True)
    assert _count(Rate) == before


def test_rate_form_refuses_a_day_in_a_closed_period(login_as, client):
    scene = make_scene()
    db.session.add(BillingPeriod(month=datetime(2026, 10, 1).date(),
                                 closed_at=datetime(2026, 11, 2, tzinfo=timezone.utc)))
    db.session.commit()
    login_as("finance")
    before = _count(Rate)
    csrf = token(client, "/billing/rates/new")
    response = client.post("/billing/rates/new", data={
        **_rate_form(scene.instrument.id, effective_from="2026-10-15"), "csrf_token": csrf,
        "publish": "y"})
    assert response.status_code == 409
    assert "is closed" in response.get_data(as_text=True)
    assert _count(Rate) == before


def test_rate_without_csrf_is_400(login_as, client):
    scene = make_scene()
    login_as("finance")
    before = _count(Rate)
    assert client.post("/billing/rates/new",
                       data=_rate_form(scene.instrument.id)).status_code == 400
    assert _count(Rate) == before


def test_rates_forbidden_to_researcher_and_manager(login_as, client):
    make_scene()
    login_as("facility_manager")
    for path in ("/billing/rates", "/billing/rates/new", "/billing/rates/preview",
                 "/billing/classes"):
        assert client.get(path).status_code == 403, path


def test_classes_add_and_bad_tax_rate(login_as, client):
    login_as("finance")
    csrf = token(client, "/billing/classes")
    values = {"code": "government", "name": "Government", "csrf_token": csrf}
    bad = client.post("/billing/classes", data={**values, "tax_rate": "1.5"})
    assert bad.status_code == 422 and "fraction below 1" in bad.get_data(as_text=True)
    assert db.session.get(CustomerClass, "government") is None
    good = client.post("/billing/classes", data={**values, "tax_rate": "0.03"})
    assert good.status_code == 302
    assert db.session.get(CustomerClass, "government").tax_rate == Decimal("0.03")
    edit = client.post("/billing/classes/government", data={
        "name": "Gov", "tax_rate": "0.09", "csrf_token": csrf})
    assert edit.status_code == 302
    db.session.expire_all()
    assert db.session.get(CustomerClass, "government").tax_rate == Decimal("0.09")


def test_manager_adds_consumable_for_own_facility_only(login_as, client):
    other = factories.make_facility()
    manager = login_as("facility_manager")
    own = manager.managed_facilities[0]
    csrf = token(client, "/billing/consumables")
    refused = client.post("/billing/consumables", data={
        "facility_id": other.id, "code": "GAS-1", "name": "Gas", "unit": "L",
        "csrf_token": csrf})
    assert refused.status_code == 422 and _count(Consumable) == 0
    done = client.post("/billing/consumables", data={
        "facility_id": own.id, "code": "GAS-1", "name": "Gas", "unit": "L",
        "csrf_token": csrf})
    assert done.status_code == 302 and _count(Consumable) == 1


def test_consumables_forbidden_to_researcher(login_as, client):
    login_as("researcher")
    assert client.get("/billing/consumables").status_code == 403
    assert client.get("/billing/items/new").status_code == 403


def test_manager_records_and_deletes_item(login_as, client):
    scene = make_scene()
    manager = login_as("facility_manager", facility=scene.facility)
    assert manager.manages_facility(scene.facility)
    consumable = factories.make_consumable(scene.facility)
    db.session.commit()
    csrf = token(client, "/billing/items/new")
    form = {"target": f"c:{consumable.id}", "account_id": scene.account.id, "quantity": "0",
            "occurred_on": "2026-11-20", "occurred_time": "10:00", "csrf_token": csrf}
    bad = client.post("/billing/items/new", data=form)
    assert bad.status_code == 422 and "more than 0" in bad.get_data(as_text=True)
    from labbook.billing.models import UsageItem
    assert _count(UsageItem) == 0
    assert client.post("/billing/items/new", data={**form, "quantity": "2"}).status_code == 302
    item = db.session.scalar(sa.select(UsageItem))
    assert item.quantity == Decimal("2") and item.occurred_at.hour == 2  # 10:00 Shanghai
    html = client.get("/billing/items/new").get_data(as_text=True)
    assert f'id="item-{item.id}"' in html
    assert client.post(f"/billing/items/{item.id}/delete",
                       data={"csrf_token": csrf}).status_code == 302
    assert _count(UsageItem) == 0


def test_finance_cannot_record_items(login_as, client):
    login_as("finance")
    assert client.get("/billing/items/new").status_code == 403


def test_policy_page_for_manager_not_finance(login_as, client):
    scene = make_scene()
    login_as("finance")
    path = f"/billing/instruments/{scene.instrument.id}/policy"
    assert client.get(path).status_code == 403
    client.post("/logout", data={"csrf_token": token(client, "/billing/")})
    login_as("facility_manager")  # another facility
    assert client.get(path).status_code == 403
    client.post("/logout", data={"csrf_token": token(client, "/billing/consumables")})
    login_as("facility_manager", facility=scene.facility)
    csrf = token(client, path)
    form = {"billing_basis": "actual", "billing_increment_minutes": "30",
            "minimum_charge_minutes": "60", "late_cancel_fraction": "0.5",
            "no_show_fraction": "2", "csrf_token": csrf}
    bad = client.post(path, data=form)
    assert bad.status_code == 422 and "between 0 and 1" in bad.get_data(as_text=True)
    assert db.session.get(BillingPolicy, scene.instrument.id) is None
    half_cap = client.post(path, data={**form, "no_show_fraction": "1", "cap_from": "17:00"})
    assert half_cap.status_code == 422
    assert db.session.get(BillingPolicy, scene.instrument.id) is None
    done = client.post(path, data={**form, "no_show_fraction": "1", "cap_from": "17:00",
                                   "cap_to": "09:00", "cap_max_minutes": "480"})
    assert done.status_code == 302
    policy = db.session.get(BillingPolicy, scene.instrument.id)
    assert policy.basis == "actual" and policy.cap_max_minutes == 480
