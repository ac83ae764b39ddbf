"""The ``flask`` commands: seed-demo (idempotent, --if-empty), users create and tokens create.
Every refusal exits with status 1, says why on stderr and writes nothing."""
from __future__ import annotations

import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.auth.models import ApiToken, User
from labbook.auth.services import user_for_token
from labbook.billing.models import Rate
from labbook.extensions import db
from labbook.instruments.models import Facility, Instrument, Platform, ResearchField
from labbook.teams.models import Account, Membership, Team
from tests import factories
from tests.conftest import login

SEEDED_MODELS = (ResearchField, Platform, Facility, Instrument, Team, Account, User, Membership,
                 AuditEntry)


def _counts() -> dict[str, int]:
    return {model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in SEEDED_MODELS}


def _count(model: type) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


# -- seed-demo ---------------------------------------------------------------------------

def test_seed_demo_second_run_adds_and_changes_nothing(runner):
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    counts = _counts()
    stamps = dict(db.session.execute(sa.select(Instrument.asset_code, Instrument.updated_at)).all())
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "nothing to add" in result.stdout
    assert _counts() == counts  # no new rows, not even audit entries
    db.session.expire_all()
    assert dict(db.session.execute(
        sa.select(Instrument.asset_code, Instrument.updated_at)).all()) == stamps


def test_seed_demo_adds_only_what_is_missing(runner):
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    total = _count(Instrument)
    # an instrument without demo bookings or qualifications: only its rates refer to it
    # (its billing policy goes with it)
    ald = sa.select(Instrument.id).where(Instrument.asset_code == "NFC-ALD-01").scalar_subquery()
    db.session.execute(sa.delete(Rate).where(Rate.instrument_id == ald))
    db.session.execute(sa.delete(Instrument).where(Instrument.asset_code == "NFC-ALD-01"))
    db.session.commit()
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "1 instruments" in result.stdout
    assert _count(Instrument) == total


def test_seed_demo_if_empty_seeds_an_empty_database(runner):
    result = runner.invoke(args=["seed-demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    assert _count(User) == 9  # five demo logins and a guest in each of the four external teams
    assert _count(Instrument) >= 40


def test_seed_demo_if_empty_does_nothing_when_users_exist(runner):
    factories.make_user()
    db.session.commit()
    counts = _counts()
    result = runner.invoke(args=["seed-demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    assert "already has users" in result.stdout
    assert _counts() == counts


# -- users create ------------------------------------------------------------------------

def test_users_create_makes_a_user_who_can_log_in(runner, client):
    result = runner.invoke(args=["users", "create", "Ada@Example.org",
                                 "--password", "long-enough-pw",
                                 "--role", "facility_manager", "--role", "finance",
                                 "--name", "Ada Lovelace"])
    assert result.exit_code == 0, result.output
    user = db.session.scalar(sa.select(User).where(User.email == "ada@example.org"))
    assert user.name == "Ada Lovelace"
    assert user.roles == {"facility_manager", "finance"}
    assert "ada@example.org" in result.stdout
    assert login(client, "ada@example.org", "long-enough-pw").status_code == 302


def test_users_create_defaults_to_researcher_named_after_the_email(runner):
    result = runner.invoke(args=["users", "create", "jane.doe@example.org", "--password", "x" * 8])
    assert result.exit_code == 0, result.output
    user = db.session.scalar(sa.select(User).where(User.email == "jane.doe@example.org"))
    assert user.roles == {"researcher"}
    assert user.name == "Jane Doe"


def test_users_create_prompts_for_the_password_twice(runner):
    result = runner.invoke(args=["users", "create", "p@example.org"],
                           input="prompted-secret\nprompted-secret\n")
    assert result.exit_code == 0, result.output
    user = db.session.scalar(sa.select(User).where(User.email == "p@example.org"))
    assert user.check_password("prompted-secret")
    assert "prompted-secret" not in result.output  # the input is not echoed


def test_users_create_with_new_team_creates_it_with_a_default_account(runner):
    result = runner.invoke(args=["users", "create", "pi@example.org", "--password", "x" * 8,
                                 "--role", "researcher", "--role", "team_lead",
                                 "--team", "Photonics Group"])
    assert result.exit_code == 0, result.output
    team = db.session.scalar(sa.select(Team).where(Team.name == "Photonics Group"))
    user = db.session.scalar(sa.select(User).where(User.email == "pi@example.org"))
    assert team.default_account is not None
    assert user.leads_team(team)
    assert "created team" in result.stdout


def test_users_create_with_existing_team_joins_it(runner):
    team = factories.make_team(name="Existing Group")
    db.session.commit()
    result = runner.invoke(args=["users", "create", "m@example.org", "--password", "x" * 8,
                                 "--team", "Existing Group"])
    assert result.exit_code == 0, result.output
    user = db.session.scalar(sa.select(User).where(User.email == "m@example.org"))
    assert user.team_ids() == {team.id}
    assert not user.leads_team(team)
    assert _count(Team) == 1


def _assert_refused(result, *phrases: str) -> None:
    assert result.exit_code == 1, result.output
    for phrase in phrases:
        assert phrase in result.stderr
    assert result.stdout == ""


def test_users_create_duplicate_email_is_refused(runner):
    factories.make_user(email="taken@example.org")
    db.session.commit()
    counts = _counts()
    result = runner.invoke(args=["users", "create", "TAKEN@example.org", "--password", "x" * 8])
    _assert_refused(result, "already exists")
    assert _counts() == counts


def test_users_create_unknown_role_is_refused_listing_valid_roles(runner):
    counts = _counts()
    result = runner.invoke(args=["users", "create", "r@example.org", "--password", "x" * 8,
                                 "--role", "wizard"])
    _assert_refused(result, "Unknown role: wizard", "team_lead")
    assert _counts() == counts


def test_users_create_short_password_is_refused(runner):
    counts = _counts()
    result = runner.invoke(args=["users", "create", "s@example.org", "--password", "short"])
    _assert_refused(result, "at least 8 characters")
    assert _counts() == counts


def test_users_create_mismatched_prompted_passwords_write_nothing(runner):
    counts = _counts()
    result = runner.invoke(args=["users", "create", "q@example.org"],
                           input="first-password\nother-password\n")
    assert result.exit_code != 0
    assert _counts() == counts


def test_users_create_bad_team_rolls_back_the_user(runner):
    counts = _counts()
    result = runner.invoke(args=["users", "create", "t@example.org", "--password", "x" * 8,
                                 "--team", "T" * 121])
    _assert_refused(result, "name: At most 120 characters")
    assert _counts() == counts


def test_users_create_invalid_email_is_refused(runner):
    counts = _counts()
    result = runner.invoke(args=["users", "create", "not-an-email", "--password", "x" * 8])
    _assert_refused(result, "valid email")
    assert _counts() == counts


# -- tokens create -----------------------------------------------------------------------

def test_tokens_create_prints_a_working_token_on_the_last_line(runner, client):
    user = factories.make_user(email="api@example.org")
    db.session.commit()
    result = runner.invoke(args=["tokens", "create", "api@example.org", "--name", "ci"])
    assert result.exit_code == 0, result.output
    secret = result.stdout.rstrip("\n").splitlines()[-1]
    assert secret.startswith("lbk_") and " " not in secret
    assert user_for_token(secret).id == user.id
    token = db.session.scalar(sa.select(ApiToken).where(ApiToken.user_id == user.id))
    assert token.name == "ci" and token.token_hash != secret
    response = client.get("/api/v1/fields", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200


def test_tokens_create_unknown_email_is_refused(runner):
    result = runner.invoke(args=["tokens", "create", "ghost@example.org"])
    _assert_refused(result, "ghost@example.org")
    assert _count(ApiToken) == 0


def test_tokens_create_for_deactivated_user_is_refused(runner):
    factories.make_user(email="gone@example.org", active=False)
    db.session.commit()
    result = runner.invoke(args=["tokens", "create", "gone@example.org"])
    _assert_refused(result, "deactivated")
    assert _count(ApiToken) == 0


def test_tokens_create_overlong_name_is_refused(runner):
    factories.make_user(email="api@example.org")
    db.session.commit()
    result = runner.invoke(args=["tokens", "create", "api@example.org", "--name", "n" * 81])
    _assert_refused(result, "1 to 80 characters")
    assert _count(ApiToken) == 0
