"""Login, logout, redirects, throttling, CSRF, profile, tokens and the language switch."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from labbook.audit import AuditEntry
from labbook.auth.models import ApiToken, User
from labbook.extensions import db
from labbook.i18n import LANG_COOKIE
from tests import factories
from tests.conftest import csrf_token, login


def test_login_success_redirects_to_catalog(client, app):
    user = factories.make_user()
    db.session.commit()
    response = login(client, user.email)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert db.session.get(User, user.id).last_login_at is not None


def test_login_is_case_insensitive_on_email(client, app):
    factories.make_user(email="mixed@example.org")
    db.session.commit()
    assert login(client, "MIXED@Example.org").status_code == 302


@pytest.mark.parametrize("password", ["wrong", ""])
def test_login_wrong_password_rerenders_with_error(client, app, password):
    user = factories.make_user()
    db.session.commit()
    response = login(client, user.email, password)
    assert response.status_code == 422
    assert "Invalid email or password" in response.get_data(as_text=True) or password == ""
    assert client.get("/").status_code == 302  # still logged out


def test_login_unknown_user_same_message_as_wrong_password(client, app):
    response = login(client, "nobody@example.org", "whatever-password")
    assert response.status_code == 422
    assert "Invalid email or password" in response.get_data(as_text=True)


def test_login_inactive_user_refused(client, app):
    user = factories.make_user(active=False)
    db.session.commit()
    assert login(client, user.email).status_code == 422


def test_login_without_csrf_token_is_refused(client, app):
    user = factories.make_user()
    db.session.commit()
    response = client.post("/login", data={"email": user.email, "password": factories.PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


@pytest.mark.parametrize(
    "target, expected",
    [
        ("/facilities", "/facilities"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
    ],
)
def test_login_follows_only_safe_next(client, app, target, expected):
    user = factories.make_user()
    db.session.commit()
    token = csrf_token(client, "/login")
    response = client.post(
        "/login",
        data={
            "email": user.email,
            "password": factories.PASSWORD,
            "csrf_token": token,
            "next": target,
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == expected


def test_login_throttles_after_repeated_failures(client, app):
    user = factories.make_user()
    db.session.commit()
    limit = app.config["LABBOOK_LOGIN_MAX_FAILURES"]
    for _ in range(limit):
        assert login(client, user.email, "wrong-password").status_code == 422
    # Even the right password is refused while the account is throttled.
    response = login(client, user.email)
    assert response.status_code == 429
    assert "Too many failed attempts" in response.get_data(as_text=True)


def test_login_throttle_is_per_account_and_per_address(client, app):
    victim, other = factories.make_user(), factories.make_user()
    db.session.commit()
    for _ in range(app.config["LABBOOK_LOGIN_MAX_FAILURES"]):
        login(client, victim.email, "wrong-password")
    # Same address, other account: the address counter is exhausted too.
    assert login(client, other.email).status_code == 429
    # Another address and the other account: allowed.
    other_client = app.test_client()
    token = csrf_token(other_client, "/login")
    response = other_client.post(
        "/login",
        data={"email": other.email, "password": factories.PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": "10.9.9.9"},
    )
    assert response.status_code == 302


def test_logout_requires_post_with_csrf(client, login_as):
    login_as("researcher")
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200  # still logged in
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/profile")})
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_session_cookie_flags(client, app):
    user = factories.make_user()
    db.session.commit()
    response = login(client, user.email)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_security_headers_on_every_page(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"]
    assert "Strict-Transport-Security" not in response.headers  # only in production


def test_hsts_in_production_config(app):
    app.config["HSTS"] = True
    try:
        response = app.test_client().get("/login")
    finally:
        app.config["HSTS"] = False
    assert "max-age=" in response.headers["Strict-Transport-Security"]


def test_profile_updates_name_and_locale(client, login_as):
    user = login_as("researcher")
    token = csrf_token(client, "/profile")
    response = client.post(
        "/profile", data={"name": "Dr. Li", "locale": "zh_Hans", "csrf_token": token}
    )
    assert response.status_code == 302
    refreshed = db.session.get(User, user.id)
    assert (refreshed.name, refreshed.locale) == ("Dr. Li", "zh_Hans")
    assert db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "user.profile"))


@pytest.mark.parametrize(
    "data, field",
    [
        ({"name": "", "locale": "en"}, "name"),
        ({"name": "x" * 121, "locale": "en"}, "name"),
        ({"name": "Ok", "locale": "fr"}, "locale"),
    ],
)
def test_profile_bad_input_rerenders_and_writes_nothing(client, login_as, data, field):
    user = login_as("researcher")
    before = (user.name, user.locale)
    response = client.post("/profile", data={**data, "csrf_token": csrf_token(client, "/profile")})
    assert response.status_code == 422
    assert 'class="error"' in response.get_data(as_text=True)
    db.session.expire_all()
    after = db.session.get(User, user.id)
    assert (after.name, after.locale) == before


def test_change_password_checks_current(client, login_as):
    user = login_as("researcher")
    token = csrf_token(client, "/profile")
    bad = client.post(
        "/profile/password",
        data={"current_password": "not-it", "new_password": "another-secret", "csrf_token": token},
    )
    assert bad.status_code == 422
    good = client.post(
        "/profile/password",
        data={
            "current_password": factories.PASSWORD,
            "new_password": "another-secret",
            "csrf_token": token,
        },
    )
    assert good.status_code == 302
    assert db.session.get(User, user.id).check_password("another-secret")


def test_token_created_on_profile_is_shown_once_and_works(client, login_as):
    user = login_as("researcher")
    response = client.post(
        "/profile/tokens", data={"name": "laptop", "csrf_token": csrf_token(client, "/profile")}
    )
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    secret = html.split('id="new-token">')[1].split("<")[0]
    assert secret.startswith("lbk_") and len(secret) >= 40
    stored = db.session.scalar(sa.select(ApiToken).where(ApiToken.user_id == user.id))
    assert stored.token_hash != secret and secret not in stored.token_hash
    assert secret not in client.get("/profile").get_data(as_text=True)
    api = client.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200


def test_token_revoke_only_own(client, login_as, api_token):
    other = factories.make_user()
    from labbook.auth.services import create_token

    foreign, _ = create_token(other, "theirs")
    db.session.commit()
    login_as("researcher")
    token = csrf_token(client, "/profile")
    response = client.post(f"/profile/tokens/{foreign.id}/revoke", data={"csrf_token": token})
    assert response.status_code == 404
    assert db.session.get(ApiToken, foreign.id).revoked_at is None


def test_revoked_token_no_longer_authenticates(client, login_as):
    from labbook.auth.services import create_token

    user = login_as("researcher")
    token, secret = create_token(user, "t")
    db.session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/openapi.json", headers=headers).status_code == 200
    client.post(
        f"/profile/tokens/{token.id}/revoke", data={"csrf_token": csrf_token(client, "/profile")}
    )
    assert client.get("/api/v1/openapi.json", headers=headers).status_code == 401


def test_api_ignores_session_cookie(client, login_as):
    login_as("admin")
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_language_switch_sets_cookie_for_anonymous(client):
    token = csrf_token(client, "/login")
    response = client.post(
        "/language", data={"lang": "zh_Hans", "next": "/login", "csrf_token": token}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert f"{LANG_COOKIE}=zh_Hans" in response.headers["Set-Cookie"]
    page = client.get("/login").get_data(as_text=True)
    assert 'lang="zh-Hans"' in page


def test_language_switch_saves_user_locale(client, login_as):
    user = login_as("researcher")
    token = csrf_token(client, "/profile")
    client.post("/language", data={"lang": "zh_Hans", "next": "/", "csrf_token": token})
    assert db.session.get(User, user.id).locale == "zh_Hans"


def test_language_switch_ignores_foreign_next(client):
    token = csrf_token(client, "/login")
    response = client.post(
        "/language", data={"lang": "en", "next": "https://evil.example/", "csrf_token": token}
    )
    assert response.headers["Location"] == "/"


def test_accept_language_picks_chinese(client):
    page = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(
        as_text=True
    )
    assert 'lang="zh-Hans"' in page


def test_error_pages_show_no_traceback(backend):
    from labbook.auth.security import public
    from tests.conftest import make_test_app

    fresh = make_test_app(backend[1])

    @fresh.route("/__boom_test")
    @public
    def _boom():
        raise RuntimeError("secret internals")

    response = fresh.test_client().get("/__boom_test")
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "secret internals" not in text and "Traceback" not in text


def test_method_not_allowed_names_allowed_methods(client, api_token, app):
    html = client.get("/logout")
    assert html.status_code == 405 and "POST" in html.headers["Allow"]
