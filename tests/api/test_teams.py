"""GET /api/v1/teams: members see their own teams, admins and finance every team; each
team carries its accounts and the caller's member/lead flags."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from labbook.extensions import db
from tests import factories
from tests.api.conftest import count_statements


@pytest.fixture
def teams(app):  # type: ignore[no-untyped-def]
    """Two teams with accounts; ``lab`` has a lead and a researcher."""
    lab = factories.make_team(name="Alpha Lab", invoice_title="Alpha Lab, ZJU", tax_id="TAX-1")
    startup = factories.make_team("startup", name="Beta Startup")
    grant = factories.make_account(lab, code="G-001", name="NSFC grant", kind="grant",
                                   valid_from=date(2026, 1, 1), valid_until=date(2027, 12, 31),
                                   spending_limit=Decimal("50000.5"), is_default=True)
    restricted = factories.make_account(lab, code="PO-002", kind="purchase_order",
                                        spending_limit=None, all_members=False)
    factories.make_account(startup, code="S-001")
    lead = factories.make_user_with_role("team_lead", team=lab)
    member = factories.make_user_with_role("researcher", team=lab)
    restricted.authorised_users.append(lead)
    db.session.commit()
    return lab, startup, grant, restricted, lead, member


def _teams(client, headers, **query):  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/teams", headers=headers, query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_list_teams_member_sees_only_own_team_with_accounts(client, teams, api_token):
    lab, _startup, grant, restricted, _lead, member = teams
    body = _teams(client, api_token(member))
    assert body["total"] == 1 and body["page"] == 1
    [team] = body["items"]
    assert team == {
        "id": lab.id, "name": "Alpha Lab", "customer_class": "internal",
        "invoice_title": "Alpha Lab, ZJU", "tax_id": "TAX-1", "is_member": True,
        "is_lead": False, "accounts": team["accounts"],
    }
    accounts = {a["code"]: a for a in team["accounts"]}
    assert list(accounts) == ["G-001", "PO-002"]
    assert accounts["G-001"] == {
        "id": grant.id, "code": "G-001", "name": "NSFC grant", "kind": "grant",
        "valid_from": "2026-01-01", "valid_until": "2027-12-31", "spending_limit": "50000.50",
        "active": True, "is_default": True, "all_members": True, "may_charge": True,
    }
    assert accounts["PO-002"]["spending_limit"] is None
    assert accounts["PO-002"]["valid_until"] is None
    assert accounts["PO-002"]["may_charge"] is False  # not among the authorised users


def test_list_teams_lead_flag_and_authorised_account(client, teams, api_token):
    lead = teams[4]
    [team] = _teams(client, api_token(lead))["items"]
    assert team["is_lead"] is True and team["is_member"] is True
    assert {a["code"]: a["may_charge"] for a in team["accounts"]} == {"G-001": True,
                                                                      "PO-002": True}


@pytest.mark.parametrize("role", ["admin", "finance"])
def test_list_teams_admin_and_finance_see_every_team(client, teams, api_token, role):
    user = factories.make_user(roles=(role,))
    body = _teams(client, api_token(user))
    names = [t["name"] for t in body["items"]]
    assert names == ["Alpha Lab", "Beta Startup"]
    assert all(not t["is_member"] and not t["is_lead"] for t in body["items"])
    assert all(not a["may_charge"] for t in body["items"] for a in t["accounts"])
    assert body["items"][1]["customer_class"] == "startup"


def test_list_teams_manager_without_team_sees_none(client, teams, api_token):
    manager = factories.make_user_with_role("facility_manager")
    body = _teams(client, api_token(manager))
    assert body == {"items": [], "page": 1, "per_page": 50, "total": 0}


def test_list_teams_paginates(client, teams, api_token):
    headers = api_token(factories.make_user(roles=("admin",)))
    first = _teams(client, headers, per_page=1)
    second = _teams(client, headers, per_page=1, page=2)
    assert [t["name"] for t in first["items"] + second["items"]] == ["Alpha Lab", "Beta Startup"]
    assert first["total"] == second["total"] == 2


def test_list_teams_query_count_does_not_grow(client, teams, api_token):
    headers = api_token(factories.make_user(roles=("finance",)))
    with count_statements() as few:
        _teams(client, headers)
    for _ in range(5):
        team = factories.make_team()
        factories.make_account(team)
        restricted = factories.make_account(team, all_members=False)
        restricted.authorised_users.append(factories.make_user_with_role("researcher", team=team))
    db.session.commit()
    with count_statements() as many:
        assert _teams(client, headers)["total"] == 7
    assert len(many) == len(few)
