"""Adjustments through the pages: a team lead requests one on a line of their statement,
finance approves it (it lands in the line's own open period) or a manager of another
facility is refused; bad input re-renders with nothing written."""
from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from labbook.billing.models import Adjustment, ChargeLine
from labbook.extensions import db
from tests.billing.ui_scene import make_scene, token
from tests.conftest import login


def _line_after_refresh(client, login_as):  # type: ignore[no-untyped-def]
    scene = make_scene()
    finance = login_as("finance")
    client.get("/billing/periods/2026-10")  # refreshes the drafts
    client.post("/logout", data={"csrf_token": token(client, "/billing/")})
    line = db.session.scalar(sa.select(ChargeLine))
    return scene, finance, line


def test_lead_requests_and_finance_approves(login_as, client):
    scene, finance, line = _line_after_refresh(client, login_as)
    login(client, scene.lead.email)
    path = f"/billing/lines/{line.id}/adjust"
    csrf = token(client, path)
    bad = client.post(path, data={"amount": "-1000", "reason": "too much", "csrf_token": csrf})
    assert bad.status_code == 422 and "may not exceed" in bad.get_data(as_text=True)
    empty = client.post(path, data={"amount": "-10", "reason": "", "csrf_token": csrf})
    assert empty.status_code == 422
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Adjustment)) == 0
    done = client.post(path, data={"amount": "-40.00", "reason": "ran short",
                                   "csrf_token": csrf})
    assert done.status_code == 302
    adjustment = db.session.scalar(sa.select(Adjustment))
    assert adjustment.state == "pending" and adjustment.amount == Decimal("-40.00")
    assert client.get("/billing/adjustments").status_code == 403  # leads do not decide
    client.post("/logout", data={"csrf_token": csrf})
    login(client, finance.email)
    queue = client.get("/billing/adjustments").get_data(as_text=True)
    assert f'id="adjustment-{adjustment.id}"' in queue and "ran short" in queue
    assert ">Awaiting decision</span>" in queue  # the state in words, not its identifier
    csrf = token(client, "/billing/adjustments")
    assert client.post(f"/billing/adjustments/{adjustment.id}/approve",
                       data={"csrf_token": csrf}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Adjustment, adjustment.id).state == "approved"
    queue = client.get("/billing/adjustments").get_data(as_text=True)
    assert "booked in 2026-10" in queue
    statement = client.get(f"/billing/periods/2026-10/teams/{scene.team.id}")
    assert "200.00 CNY" in statement.get_data(as_text=True)  # 240.00 - 40.00
    again = client.post(f"/billing/adjustments/{adjustment.id}/approve",
                        data={"csrf_token": csrf})
    assert again.status_code == 409
    finance.locale = "zh_Hans"
    db.session.commit()
    queue = client.get("/billing/adjustments").get_data(as_text=True)
    assert ">已批准</span>" in queue and ">approved<" not in queue


def test_reject_needs_a_note(login_as, client):
    scene, finance, line = _line_after_refresh(client, login_as)
    adjustment = Adjustment(line_id=line.id, amount=Decimal("5.00"), reason="extra",
                            requested_by_id=scene.lead.id)
    db.session.add(adjustment)
    db.session.commit()
    login(client, finance.email)
    csrf = token(client, "/billing/adjustments")
    bad = client.post(f"/billing/adjustments/{adjustment.id}/reject",
                      data={"note": "", "csrf_token": csrf})
    assert bad.status_code == 422 and "Say why" in bad.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Adjustment, adjustment.id).state == "pending"
    assert client.post(f"/billing/adjustments/{adjustment.id}/reject",
                       data={"csrf_token": ""}).status_code == 400
    done = client.post(f"/billing/adjustments/{adjustment.id}/reject",
                       data={"note": "not agreed", "csrf_token": csrf})
    assert done.status_code == 302
    db.session.expire_all()
    assert db.session.get(Adjustment, adjustment.id).state == "rejected"


def test_manager_of_other_facility_and_researcher_refused(login_as, client):
    scene, _finance, line = _line_after_refresh(client, login_as)
    adjustment = Adjustment(line_id=line.id, amount=Decimal("5.00"), reason="extra",
                            requested_by_id=scene.lead.id)
    db.session.add(adjustment)
    db.session.commit()
    login_as("facility_manager")
    assert 'id="adjustment-' not in client.get("/billing/adjustments").get_data(as_text=True)
    csrf = token(client, "/billing/consumables")
    assert client.post(f"/billing/adjustments/{adjustment.id}/approve",
                       data={"csrf_token": csrf}).status_code == 403
    assert client.get(f"/billing/lines/{line.id}/adjust").status_code == 403
    client.post("/logout", data={"csrf_token": csrf})
    login_as("researcher")
    assert client.get("/billing/adjustments").status_code == 403
    assert client.get(f"/billing/lines/{line.id}/adjust").status_code == 403
    db.session.expire_all()
    assert db.session.get(Adjustment, adjustment.id).state == "pending"


def test_manager_of_the_facility_decides(login_as, client):
    scene, _finance, line = _line_after_refresh(client, login_as)
    adjustment = Adjustment(line_id=line.id, amount=Decimal("5.00"), reason="extra",
                            requested_by_id=scene.lead.id)
    db.session.add(adjustment)
    db.session.commit()
    login_as("facility_manager", facility=scene.facility)
    assert f'id="adjustment-{adjustment.id}"' in client.get(
        "/billing/adjustments").get_data(as_text=True)
