from datetime import date
from decimal import Decimal

import pytest

from labbook.errors import Forbidden, ValidationError
from labbook.teams import services
from tests import factories


def test_create_team_makes_default_account(app):
    admin = factories.make_user(roles=("admin",))
    team = services.create_team(
        admin, {"name": "Quantum Materials Lab", "customer_class_code": "startup"}
    )
    assert team.default_account is not None
    assert team.customer_class.tax_rate == Decimal("0.0600")


def test_create_team_rejects_unknown_class_and_duplicate_name(app):
    services.create_team(None, {"name": "Dup"})
    with pytest.raises(ValidationError) as info:
        services.create_team(None, {"name": "Dup", "customer_class_code": "martian"})
    assert set(info.value.fields) == {"name", "customer_class_code"}


def test_save_account_moves_default_flag(app):
    team = services.create_team(None, {"name": "T"})
    first = team.default_account
    second = services.save_account(
        None,
        team,
        {
            "code": "G-1",
            "name": "Grant",
            "kind": "grant",
            "valid_from": date(2026, 1, 1),
            "is_default": True,
        },
    )
    assert second.is_default and not first.is_default
    assert team.default_account is second


@pytest.mark.parametrize("limit", ["-1", "abc", "1.234", 1.5])
def test_save_account_rejects_bad_money(app, limit):
    team = services.create_team(None, {"name": "T"})
    with pytest.raises(ValidationError) as info:
        services.save_account(
            None,
            team,
            {"code": "X", "name": "X", "valid_from": date(2026, 1, 1), "spending_limit": limit},
        )
    assert "spending_limit" in info.value.fields


def test_add_member_requires_lead_or_admin(app):
    team = factories.make_team()
    outsider = factories.make_user()
    newcomer = factories.make_user()
    with pytest.raises(Forbidden):
        services.add_member(outsider, team, newcomer)
    lead = factories.make_user(roles=("researcher", "team_lead"))
    factories.add_member(team, lead, is_lead=True)
    services.add_member(lead, team, newcomer)
    assert newcomer.id in {m.user_id for m in team.memberships}


def test_last_lead_cannot_remove_themselves(app):
    team = factories.make_team()
    lead = factories.make_user(roles=("team_lead",))
    factories.add_member(team, lead, is_lead=True)
    with pytest.raises(ValidationError):
        services.remove_member(lead, team, lead)


def test_last_lead_cannot_be_demoted_by_a_lead(app):
    team = factories.make_team()
    lead = factories.make_user(roles=("team_lead",))
    factories.add_member(team, lead, is_lead=True)
    with pytest.raises(ValidationError):
        services.add_member(lead, team, lead, is_lead=False)
    second = factories.make_user()
    services.add_member(lead, team, second, is_lead=True)
    services.add_member(lead, team, lead, is_lead=False)  # another lead remains: allowed
    assert [u.id for u in team.leads] == [second.id]
