"""Account rules that the views do not already exercise."""

from __future__ import annotations

import pytest

from labbook.auth import services
from labbook.errors import ValidationError


def test_create_user_reports_every_problem_at_once(app):
    with pytest.raises(ValidationError) as info:
        services.create_user(None, "not-an-email", "", "short", roles=["wizard"], locale="fr")
    assert set(info.value.fields) == {"email", "name", "password", "roles", "locale"}


def test_create_user_stores_lowercase_email_and_hashes_password(app):
    user = services.create_user(None, "Ada@Example.ORG", "Ada", "long enough pw")
    assert user.email == "ada@example.org"
    assert user.password_hash.startswith("scrypt:") and user.check_password("long enough pw")


@pytest.mark.parametrize("ident", [0, -1, 2**31, 10**20])
def test_get_or_404_refuses_ids_outside_the_column_range(app, ident):
    from labbook.auth.guards import get_or_404
    from labbook.auth.models import User
    from labbook.errors import NotFound

    with pytest.raises(NotFound):
        get_or_404(User, ident)


def test_huge_id_in_a_url_is_404_not_500(client, login_as):
    login_as("researcher")
    assert client.get("/instruments/99999999999999999999").status_code == 404
