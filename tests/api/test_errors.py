"""Every failure answers with the error body of SPEC section 8 and writes nothing: bad
tokens (401), unknown paths (404) and methods (405), non-JSON (415), malformed JSON (400),
and a battery of invalid values (422 with ``fields``) for creating and changing
instruments and for query strings."""
from __future__ import annotations

import pytest

from tests.api.conftest import snapshot_db, valid_instrument

NOT_FOUND_ID = 2147483647

# (case id, body changes, the field the 422 must name). ``None`` as a change deletes the key
# on POST; on PATCH the change is sent as is.
BAD_VALUES = [
    ("int-as-string", {"slot_minutes": "15"}, "slot_minutes"),
    ("int-as-bool", {"slot_minutes": True}, "slot_minutes"),
    ("int-as-float", {"slot_minutes": 15.0}, "slot_minutes"),
    ("int-huge", {"lead_minutes": 10**30}, "lead_minutes"),
    ("int-negative", {"buffer_minutes": -1}, "buffer_minutes"),
    ("int-above-range", {"horizon_days": 3661}, "horizon_days"),
    ("int-null", {"slot_minutes": None}, "slot_minutes"),
    ("bool-as-string", {"requires_approval": "yes"}, "requires_approval"),
    ("bool-as-int", {"requires_qualification": 1}, "requires_qualification"),
    ("bool-null", {"requires_approval": None}, "requires_approval"),
    ("text-as-number", {"name": 42}, "name"),
    ("text-null", {"make": None}, "make"),
    ("text-empty", {"name": ""}, "name"),
    ("text-blank", {"category": "   "}, "category"),
    ("text-too-long", {"name": "x" * 161}, "name"),
    ("description-too-long", {"description": "x" * 5001}, "description"),
    ("text-nul-character", {"asset_code": "A\u0000B"}, "asset_code"),
    ("status-unknown", {"status": "broken"}, "status"),
    ("facility-unknown", {"facility_id": NOT_FOUND_ID}, "facility_id"),
    ("facility-as-string", {"facility_id": "1"}, "facility_id"),
    ("facility-null", {"facility_id": None}, "facility_id"),
    ("fields-unknown", {"field_ids": [NOT_FOUND_ID]}, "field_ids"),
    ("fields-not-a-list", {"field_ids": 1}, "field_ids"),
    ("fields-of-strings", {"field_ids": ["1"]}, "field_ids"),
    ("fields-empty", {"field_ids": []}, "field_ids"),
    ("fields-duplicated", {"field_ids": [1, 1]}, "field_ids"),
    ("min-not-aligned", {"slot_minutes": 15, "min_minutes": 20}, "min_minutes"),
    ("max-below-min", {"min_minutes": 60, "max_minutes": 30}, "max_minutes"),
    ("quota-zero", {"user_weekly_quota_minutes": 0}, "user_weekly_quota_minutes"),
    ("unknown-attribute", {"colour": "blue"}, "colour"),
    ("read-only-id", {"id": 7}, "id"),
    ("read-only-updated-at", {"updated_at": "2026-01-01T00:00:00+00:00"}, "updated_at"),
]
MISSING_ON_CREATE = ["name", "asset_code", "category", "facility_id", "field_ids"]


def _assert_error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.mark.parametrize(("changes", "field"), [c[1:] for c in BAD_VALUES],
                         ids=[c[0] for c in BAD_VALUES])
def test_post_instrument_bad_value_is_422_and_writes_nothing(client, catalog, headers_for,
                                                             changes, field):
    headers = headers_for("admin")
    before = snapshot_db()
    response = client.post("/api/v1/instruments", json=valid_instrument(catalog, **changes),
                           headers=headers)
    error = _assert_error(response, 422, "validation")
    assert field in error["fields"] and error["fields"][field][0]
    assert snapshot_db() == before


@pytest.mark.parametrize(("changes", "field"), [c[1:] for c in BAD_VALUES],
                         ids=[c[0] for c in BAD_VALUES])
def test_patch_instrument_bad_value_is_422_and_writes_nothing(client, catalog, headers_for,
                                                              changes, field):
    headers = headers_for("facility_manager")
    before = snapshot_db()
    response = client.patch(f"/api/v1/instruments/{catalog.instrument.id}", json=changes,
                            headers=headers)
    error = _assert_error(response, 422, "validation")
    assert field in error["fields"]
    assert snapshot_db() == before


@pytest.mark.parametrize("missing", MISSING_ON_CREATE)
def test_post_instrument_missing_required_is_422(client, catalog, headers_for, missing):
    headers = headers_for("admin")
    body = valid_instrument(catalog)
    del body[missing]
    before = snapshot_db()
    error = _assert_error(client.post("/api/v1/instruments", json=body, headers=headers),
                          422, "validation")
    assert list(error["fields"]) == [missing]
    assert snapshot_db() == before


def test_post_instrument_reports_every_bad_field_at_once(client, catalog, headers_for):
    body = {"name": "", "slot_minutes": "15", "colour": "blue"}
    error = _assert_error(client.post("/api/v1/instruments", json=body,
                                      headers=headers_for("admin")), 422, "validation")
    assert set(error["fields"]) == {"name", "slot_minutes", "colour", "asset_code", "category",
                                    "facility_id", "field_ids"}


def test_post_instrument_duplicate_asset_code_is_422(client, catalog, headers_for):
    headers = headers_for("facility_manager")
    before = snapshot_db()
    body = valid_instrument(catalog, asset_code=catalog.instrument.asset_code)
    error = _assert_error(client.post("/api/v1/instruments", json=body, headers=headers),
                          422, "validation")
    assert "asset_code" in error["fields"]
    assert snapshot_db() == before


TRANSPORT = [
    ("form-encoded", {"data": {"name": "x"}}, 415, "unsupported_media_type"),
    ("text-plain", {"data": '{"name": "x"}', "content_type": "text/plain"}, 415,
     "unsupported_media_type"),
    ("no-body", {}, 415, "unsupported_media_type"),
    ("malformed", {"data": '{"name": ', "content_type": "application/json"}, 400,
     "bad_request"),
    ("empty-json", {"data": "", "content_type": "application/json"}, 400, "bad_request"),
    ("bad-utf8", {"data": b'{"name": "\xff"}', "content_type": "application/json"}, 400,
     "bad_request"),
    ("deeply-nested", {"data": "[" * 100000 + "]" * 100000,
                       "content_type": "application/json"}, 400, "bad_request"),
    ("array", {"json": [1, 2]}, 422, "validation"),
    ("null", {"data": "null", "content_type": "application/json"}, 422, "validation"),
    ("string", {"json": "name"}, 422, "validation"),
]


@pytest.mark.parametrize(("kwargs", "status", "code"), [t[1:] for t in TRANSPORT],
                         ids=[t[0] for t in TRANSPORT])
@pytest.mark.parametrize("method", ["post", "patch"])
def test_instrument_write_rejects_bad_transport(client, catalog, headers_for, method, kwargs,
                                                status, code):
    headers = headers_for("admin")
    url = "/api/v1/instruments" + (f"/{catalog.instrument.id}" if method == "patch" else "")
    before = snapshot_db()
    _assert_error(getattr(client, method)(url, headers=headers, **kwargs), status, code)
    assert snapshot_db() == before


BAD_QUERIES = [
    ("field-not-a-number", {"field": "abc"}, "field"),
    ("field-negative", {"field": "-1"}, "field"),
    ("field-huge", {"field": "99999999999999999999999"}, "field"),
    ("platform-decimal", {"platform": "1.5"}, "platform"),
    ("facility-zero", {"facility": "0"}, "facility"),
    ("status-unknown", {"status": "broken"}, "status"),
    ("q-too-long", {"q": "x" * 201}, "q"),
    ("q-nul-character", {"q": "a\u0000b"}, "q"),
    ("page-zero", {"page": "0"}, "page"),
    ("per-page-too-big", {"per_page": "201"}, "per_page"),
    ("per-page-word", {"per_page": "all"}, "per_page"),
    ("repeated", {"field": ["1", "2"]}, "field"),
    ("unknown-parameter", {"facilty": "1"}, "facilty"),
]


@pytest.mark.parametrize(("query", "field"), [q[1:] for q in BAD_QUERIES],
                         ids=[q[0] for q in BAD_QUERIES])
def test_list_instruments_bad_query_is_422(client, catalog, headers_for, query, field):
    response = client.get("/api/v1/instruments", query_string=query,
                          headers=headers_for("researcher"))
    error = _assert_error(response, 422, "validation")
    assert list(error["fields"]) == [field]


@pytest.mark.parametrize("query", [{"page": "0"}, {"per_page": "x"}, {"extra": "1"}])
def test_list_teams_bad_query_is_422(client, catalog, headers_for, query):
    response = client.get("/api/v1/teams", query_string=query, headers=headers_for("researcher"))
    _assert_error(response, 422, "validation")


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Bearer lbk_not-a-real-token", "Basic dXNlcjpwYXNz",
     "Token lbk_whatever"],
    ids=["absent", "empty", "scheme-only", "scheme-space", "unknown-token", "basic",
         "other-scheme"],
)
def test_api_without_a_valid_token_is_401(client, catalog, header):
    headers = {"Authorization": header} if header is not None else {}
    response = client.get("/api/v1/instruments", headers=headers)
    _assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("role", ["revoked", "inactive"])
def test_api_refuses_revoked_token_and_inactive_user(client, catalog, headers_for, role):
    response = client.get("/api/v1/instruments", headers=headers_for(role))
    _assert_error(response, 401, "unauthorized")


def test_api_ignores_a_browser_session(client, catalog, login_as):
    login_as("admin")  # the client now holds a valid session cookie
    _assert_error(client.get("/api/v1/instruments"), 401, "unauthorized")


def test_api_write_with_only_a_session_cookie_is_refused(client, catalog, login_as):
    """The API is exempt from CSRF because a cookie alone never authenticates it."""
    login_as("admin")
    before = snapshot_db()
    response = client.post("/api/v1/instruments", json=valid_instrument(catalog))
    _assert_error(response, 401, "unauthorized")
    assert snapshot_db() == before


def test_api_unknown_path_is_json_404(client, catalog, headers_for):
    response = client.get("/api/v1/no-such-thing", headers=headers_for("researcher"))
    _assert_error(response, 404, "not_found")


@pytest.mark.parametrize(("method", "path"), [
    ("delete", "/api/v1/instruments/{id}"),
    ("put", "/api/v1/instruments/{id}"),
    ("delete", "/api/v1/instruments"),
    ("post", "/api/v1/teams"),
    ("patch", "/api/v1/facilities"),
])
def test_api_wrong_method_is_json_405(client, catalog, headers_for, method, path):
    headers = headers_for("admin")
    before = snapshot_db()
    response = getattr(client, method)(path.format(id=catalog.instrument.id), headers=headers,
                                       json={})
    _assert_error(response, 405, "method_not_allowed")
    assert snapshot_db() == before
