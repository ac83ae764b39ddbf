"""The feed services: who may subscribe to what, secrets stored as hashes, revoking and
regenerating, the cap on active feeds."""
from __future__ import annotations

import hashlib

import pytest

from labbook.errors import Forbidden, NotFound, ValidationError
from labbook.extensions import db
from labbook.feeds import fetch, services
from labbook.feeds.models import CalendarFeed
from tests import factories


def test_services_secret_is_stored_only_as_its_hash(app, scene):
    feed, secret = services.create_feed(scene.owner, "user")
    assert len(secret) == 43  # token_urlsafe(32): 256 bits
    assert feed.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert feed.hint == secret[:8]
    row = db.session.execute(db.select(CalendarFeed.__table__)).one()
    assert secret not in [str(value) for value in row]
    assert fetch.lookup(secret).feed is feed
    assert fetch.lookup(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None


@pytest.mark.parametrize(("who", "scope", "allowed"), [
    ("owner", "user", True),
    ("owner", "team", True),
    ("owner", "other_team", False),
    ("lead", "team", True),
    ("finance", "other_team", True),
    ("admin", "other_team", True),
    ("manager", "team", False),
    ("manager", "instrument", True),
    ("other", "facility", True),
])
def test_services_who_may_subscribe(app, scene, who, scope, allowed):
    users = {
        "owner": scene.owner, "other": scene.other, "manager": scene.manager,
        "lead": factories.make_user_with_role("team_lead", team=scene.team),
        "finance": factories.make_user(roles=("finance",)),
        "admin": factories.make_user(roles=("admin",)),
    }
    targets = {"user": users[who].id, "team": scene.team.id, "other_team": scene.other_team.id,
               "instrument": scene.instrument.id, "facility": scene.facility.id}
    real_scope = "team" if scope == "other_team" else scope
    user = users[who]
    assert services.may_subscribe(user, real_scope, targets[scope]) is allowed
    # The plain-value form the feed URL uses at every fetch gives the same answer.
    member = targets[scope] in user.team_ids() if real_scope == "team" else False
    assert services.still_allowed(real_scope, targets[scope], user.id, frozenset(user.roles),
                                  member) is allowed
    if allowed:
        feed, _secret = services.create_feed(users[who], real_scope, targets[scope])
        assert (feed.scope, feed.target_id, feed.owner_id) == (
            real_scope, targets[scope], users[who].id)
    else:
        with pytest.raises(Forbidden):
            services.create_feed(users[who], real_scope, targets[scope])


def test_services_user_feed_only_for_yourself(app, scene):
    with pytest.raises(Forbidden):
        services.create_feed(scene.owner, "user", scene.other.id)
    admin = factories.make_user(roles=("admin",))
    with pytest.raises(Forbidden):
        services.create_feed(admin, "user", scene.other.id)


def test_services_unknown_targets_and_scopes(app, scene):
    for scope in ("team", "instrument", "facility"):
        with pytest.raises(NotFound):
            services.create_feed(scene.owner, scope, 10**6)
    with pytest.raises(ValidationError) as refused:
        services.create_feed(scene.owner, "room", 1)
    assert set(refused.value.fields) == {"scope"}
    with pytest.raises(ValidationError) as refused:
        services.create_feed(scene.owner, "instrument", None)
    assert set(refused.value.fields) == {"id"}


def test_services_regenerate_replaces_the_secret(app, scene):
    feed, secret = services.create_feed(scene.owner, "facility", scene.facility.id)
    new, new_secret = services.regenerate_feed(scene.owner, feed.id)
    assert new.id != feed.id and new_secret != secret
    assert (new.scope, new.target_id) == ("facility", scene.facility.id)
    assert feed.revoked_at is not None
    assert fetch.lookup(secret) is None
    assert fetch.lookup(new_secret).feed is new
    assert services.active_feeds(scene.owner) == [new]


def test_services_regenerate_rechecks_the_right(app, scene):
    lead = factories.make_user_with_role("team_lead", team=scene.team)
    feed, _secret = services.create_feed(lead, "team", scene.team.id)
    lead.memberships.clear()
    db.session.flush()
    with pytest.raises(Forbidden):
        services.regenerate_feed(lead, feed.id)


def test_services_cap_on_active_feeds(app, scene, monkeypatch):
    monkeypatch.setattr(services, "MAX_ACTIVE_FEEDS", 2)
    first, _ = services.create_feed(scene.owner, "user")
    services.create_feed(scene.owner, "instrument", scene.instrument.id)
    with pytest.raises(ValidationError):
        services.create_feed(scene.owner, "facility", scene.facility.id)
    services.revoke_feed(scene.owner, first.id)
    services.create_feed(scene.owner, "facility", scene.facility.id)


def test_services_panel_rows(app, scene):
    from flask_login import login_user

    from labbook.feeds.panels import feed_panel

    with app.test_request_context("/"):
        login_user(scene.other)
        feed, _ = services.create_feed(scene.other, "facility", scene.facility.id)
        rows = feed_panel([("instrument", scene.instrument), ("facility", scene.facility),
                           ("team", scene.team)])
    assert [(r.scope, r.target_id) for r in rows] == [
        ("instrument", scene.instrument.id), ("facility", scene.facility.id)]  # not the team
    assert rows[0].feeds == [] and rows[1].feeds == [feed]
    assert rows[1].title == "Schedule of the whole facility Nano Fab"
