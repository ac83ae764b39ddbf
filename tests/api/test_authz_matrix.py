"""The authorization matrix of the API: every route × every kind of caller → status.

A route added under /api/v1 without a row here fails ``test_matrix_covers_every_route``.
Refused writes must leave the database as it was.
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import ROLES, api_routes, snapshot_db, valid_instrument

READ = {"anonymous": 401, "revoked": 401, "inactive": 401, "researcher": 200, "team_lead": 200,
        "facility_manager": 200, "other_manager": 200, "finance": 200, "admin": 200}


def _write(ok: int) -> dict[str, int]:
    """Only managers of the instrument's facility and admins may write."""
    return {"anonymous": 401, "revoked": 401, "inactive": 401, "researcher": 403,
            "team_lead": 403, "facility_manager": ok, "other_manager": 403, "finance": 403,
            "admin": ok}


MATRIX: dict[tuple[str, str], dict[str, int]] = {
    ("/instruments", "get"): READ,
    ("/instruments", "post"): _write(201),
    ("/instruments/{instrument_id}", "get"): READ,
    ("/instruments/{instrument_id}", "patch"): _write(200),
    ("/facilities", "get"): READ,
    ("/fields", "get"): READ,
    ("/teams", "get"): READ,
    ("/openapi.json", "get"): READ,
}


def _body(path: str, method: str, catalog: Any) -> dict[str, Any] | None:
    """A request that succeeds for whoever may make it."""
    if method == "post":
        return valid_instrument(catalog)
    if method == "patch":
        return {"name": "Renamed", "slot_minutes": 30, "min_minutes": 30, "max_minutes": 480}
    return None


def test_matrix_covers_every_route(app):
    assert set(MATRIX) == api_routes(app)
    assert all(set(row) == set(ROLES) for row in MATRIX.values())


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("path", "method"), sorted(MATRIX))
def test_api_authorization(client, catalog, headers_for, path, method, role):
    headers = headers_for(role)
    expected = MATRIX[(path, method)][role]
    before = snapshot_db()
    url = "/api/v1" + path.format(instrument_id=catalog.instrument.id)
    response = client.open(url, method=method.upper(), headers=headers,
                           json=_body(path, method, catalog))
    assert response.status_code == expected, response.get_data(as_text=True)[:300]
    if expected >= 400:
        code = {401: "unauthorized", 403: "forbidden"}[expected]
        assert response.get_json()["error"]["code"] == code
        assert snapshot_db() == before
    elif method in {"post", "patch"}:
        assert snapshot_db() != before
