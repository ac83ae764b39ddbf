"""A database that cannot serve right now (unreachable, too many clients, a lock past the
busy timeout) answers 503 with Retry-After and a machine-readable body, not a 500; a
programming error behind an OperationalError stays a 500."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
import sqlalchemy as sa

from labbook.errors import database_unavailable
from labbook.instruments import api as instruments_api
from labbook.instruments import views as instruments_views


def _raise(orig: Exception):  # type: ignore[no-untyped-def]
    def fail(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise sa.exc.OperationalError("SELECT 1", {}, orig)

    return fail


@pytest.mark.parametrize("orig", [
    psycopg.OperationalError("connection failed: FATAL: sorry, too many clients already"),
    sqlite3.OperationalError("database is locked"),
])
def test_api_answers_503_with_retry_after(app, client, login_as, api_token, monkeypatch, orig):
    from tests.factories import make_user

    headers = api_token(make_user())
    monkeypatch.setattr(instruments_api, "search_instruments", _raise(orig))
    response = client.get("/api/v1/instruments", headers=headers)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"]["code"] == "unavailable"


def test_page_answers_503(app, client, login_as, monkeypatch):
    login_as("researcher")
    monkeypatch.setattr(instruments_views.services, "search_instruments",
                        _raise(sqlite3.OperationalError("database is locked")))
    response = client.get("/")
    assert response.status_code == 503 and "try again" in response.get_data(as_text=True)


def test_a_missing_table_is_not_called_unavailable():
    error = sa.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("no such table: x"))
    assert not database_unavailable(error)
