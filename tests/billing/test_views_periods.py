"""Finance pages: the periods list, a period's page (refresh, checklist, statements, close)
and a team's statement, with their role checks."""
from __future__ import annotations

import sqlalchemy as sa

from labbook.billing.models import BillingPeriod, ChargeLine, Statement
from labbook.extensions import db
from tests.billing.ui_scene import make_scene, token


def _statements() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Statement))


def test_periods_list_shows_current_and_previous_month(login_as, client):
    login_as("finance")
    html = client.get("/billing/").get_data(as_text=True)
    assert 'id="period-2026-11"' in html and 'id="period-2026-10"' in html


def test_period_page_refreshes_and_shows_statement(login_as, client):
    scene = make_scene()
    login_as("finance")
    response = client.get("/billing/periods/2026-10")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'id="statement-{scene.team.id}"' in html
    assert "240.00 CNY" in html  # 2 hours at 120.00
    assert "DRAFT" in html and 'id="checklist-clear"' in html
    assert "/billing/periods/2026-10/export/journal" in html


def test_period_page_lists_unsettled_session(login_as, client):
    scene = make_scene()
    scene.booking.state = "in_use"
    db.session.commit()
    login_as("finance")
    html = client.get("/billing/periods/2026-10").get_data(as_text=True)
    assert 'id="unsettled"' in html and f"/bookings/{scene.booking.id}" in html


def test_close_then_close_again_is_refused_and_changes_nothing(login_as, client):
    make_scene()
    login_as("finance")
    csrf = token(client, "/billing/periods/2026-10")
    response = client.post("/billing/periods/2026-10/close", data={"csrf_token": csrf})
    assert response.status_code == 302
    period = db.session.scalar(sa.select(BillingPeriod).where(BillingPeriod.closed_at.is_not(None)))
    assert period is not None and _statements() == 1
    closed_at = period.closed_at
    again = client.post("/billing/periods/2026-10/close", data={"csrf_token": csrf})
    assert again.status_code == 409
    assert "closed already" in again.get_data(as_text=True)
    db.session.expire_all()
    assert _statements() == 1
    assert db.session.get(BillingPeriod, period.id).closed_at == closed_at
    html = client.get("/billing/periods/2026-10").get_data(as_text=True)
    assert "LB-" in html and 'id="close-form"' not in html


def test_close_refused_by_checklist_writes_nothing(login_as, client):
    scene = make_scene()
    scene.booking.state = "in_use"
    db.session.commit()
    login_as("finance")
    csrf = token(client, "/billing/periods/2026-11")  # a page with a CSRF token
    response = client.post("/billing/periods/2026-10/close",
                           data={"csrf_token": csrf, "force": "y"})
    assert response.status_code == 409
    assert "checklist" in response.get_data(as_text=True)
    assert _statements() == 0
    assert db.session.scalar(sa.select(BillingPeriod.closed_at).where(
        BillingPeriod.month == scene.booking.start_at.date().replace(day=1))) is None


def test_close_without_csrf_is_400(login_as, client):
    make_scene()
    login_as("finance")
    assert client.post("/billing/periods/2026-10/close").status_code == 400
    assert _statements() == 0


def test_current_month_has_no_close_button(login_as, client):
    login_as("finance")
    html = client.get("/billing/periods/2026-11").get_data(as_text=True)
    assert 'id="close-form"' not in html and "after its last day" in html


def test_bad_month_is_404(login_as, client):
    login_as("finance")
    assert client.get("/billing/periods/2026-13").status_code == 404


def test_statement_for_lead_and_finance_with_explanation(login_as, client):
    scene = make_scene()
    login_as("finance")
    client.get("/billing/periods/2026-10")  # refresh the drafts
    html = client.get(f"/billing/periods/2026-10/teams/{scene.team.id}").get_data(as_text=True)
    assert "DRAFT" in html and "<details>" in html
    assert "rounded up to 120 in steps of 15" in html
    line = db.session.scalar(sa.select(ChargeLine))
    assert f"/billing/lines/{line.id}/adjust" in html
    client.post("/logout", data={"csrf_token": token(client, "/billing/")})
    from tests.conftest import login
    login(client, scene.lead.email)
    lead_html = client.get(f"/billing/periods/2026-10/teams/{scene.team.id}")
    assert lead_html.status_code == 200
    assert "240.00 CNY" in lead_html.get_data(as_text=True)


def test_pages_forbidden_to_others(login_as, client):
    scene = make_scene()
    login_as("finance")
    client.get("/billing/periods/2026-10")
    client.post("/logout", data={"csrf_token": token(client, "/billing/")})
    login_as("researcher")
    for path in ("/billing/", "/billing/periods/2026-10",
                 f"/billing/periods/2026-10/teams/{scene.team.id}", "/billing/statements"):
        assert client.get(path).status_code == 403, path


def test_other_team_lead_cannot_read_statement(login_as, client):
    scene = make_scene()
    login_as("finance")
    client.get("/billing/periods/2026-10")
    client.post("/logout", data={"csrf_token": token(client, "/billing/")})
    login_as("team_lead")
    assert client.get(f"/billing/periods/2026-10/teams/{scene.team.id}").status_code == 403
    assert client.get("/billing/periods/2026-10").status_code == 403


def test_lead_statements_list_and_nav(login_as, client):
    scene = make_scene()
    login_as("finance")
    client.get("/billing/periods/2026-10")
    client.post("/logout", data={"csrf_token": token(client, "/billing/")})
    from tests.conftest import login
    login(client, scene.lead.email)
    html = client.get("/billing/statements").get_data(as_text=True)
    assert f"/billing/periods/2026-10/teams/{scene.team.id}" in html
    assert 'id="nav-statements"' in html and 'id="nav-billing"' not in html
    team_page = client.get(f"/teams/{scene.team.id}").get_data(as_text=True)
    assert f'id="remaining-{scene.account.id}"' in team_page


def test_finance_nav_has_billing(login_as, client):
    login_as("finance")
    assert 'id="nav-billing"' in client.get("/billing/").get_data(as_text=True)
