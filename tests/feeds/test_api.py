"""``/api/v1/feeds`` and ``/api/v1/bookings/{id}/ics``."""
from __future__ import annotations

import pytest

from labbook.audit import AuditEntry
from labbook.extensions import db
from labbook.feeds.models import CalendarFeed
from tests import factories
from tests.feeds.parsers import read_both

PREFIX = "http://127.0.0.1:5000/feeds/"


def test_api_create_list_and_delete(client, scene, api_token):
    headers = api_token(scene.owner)
    response = client.post("/api/v1/feeds", headers=headers,
                           json={"scope": "instrument", "id": scene.instrument.id})
    assert response.status_code == 201
    created = response.get_json()
    assert set(created) == {"id", "scope", "target_id", "target_name", "hint", "created_at",
                            "url", "webcal_url"}
    assert (created["scope"], created["target_id"], created["target_name"]) == (
        "instrument", scene.instrument.id, "SEM-01")
    assert created["url"].startswith(PREFIX) and created["url"].endswith(".ics")
    assert created["webcal_url"] == created["url"].replace("http://", "webcal://")
    secret = created["url"][len(PREFIX):-len(".ics")]
    assert created["hint"] == secret[:8]
    path = f"/feeds/{secret}.ics"
    assert read_both(client.get(path).data)["calendar"]["name"] == "labbook — SEM-01"

    listed = client.get("/api/v1/feeds", headers=headers).get_json()["items"]
    assert [f["id"] for f in listed] == [created["id"]]
    assert "url" not in listed[0] and secret not in str(listed)

    assert client.delete(f"/api/v1/feeds/{created['id']}", headers=headers).status_code == 204
    assert client.get(path).status_code == 404
    assert client.get("/api/v1/feeds", headers=headers).get_json()["items"] == []
    assert client.delete(f"/api/v1/feeds/{created['id']}", headers=headers).status_code == 404
    actions = db.session.scalars(db.select(AuditEntry.action).where(
        AuditEntry.object_type == "CalendarFeed")).all()
    assert actions == ["feed.create", "feed.revoke"]


def test_api_user_scope_defaults_to_yourself(client, scene, api_token):
    response = client.post("/api/v1/feeds", headers=api_token(scene.owner),
                           json={"scope": "user"})
    assert response.status_code == 201
    assert response.get_json()["target_id"] == scene.owner.id
    assert response.get_json()["target_name"] == "My bookings"


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"scope": "planet", "id": 1}, 422, "scope"),
    ({"scope": "team"}, 422, "id"),
    ({"id": 1}, 422, "scope"),
    ({"scope": "instrument", "id": "1"}, 422, "id"),
    ({"scope": "instrument", "id": 1, "extra": True}, 422, "extra"),
    ({"scope": "instrument", "id": 2147483647}, 404, None),
    ({"scope": "facility", "id": 2147483647}, 404, None),
    ({"scope": "team", "id": 2147483647}, 404, None),
    ({"scope": "user", "id": 2147483647}, 403, None),
])
def test_api_create_refusals(client, scene, api_token, body, status, field):
    response = client.post("/api/v1/feeds", headers=api_token(scene.owner), json=body)
    assert response.status_code == status
    error = response.get_json()["error"]
    if field:
        assert field in error["fields"]
    assert db.session.scalar(db.select(db.func.count()).select_from(CalendarFeed)) == 0


def test_api_team_feed_rights(client, scene, api_token):
    finance = factories.make_user(roles=("finance",))
    lead = factories.make_user_with_role("team_lead", team=scene.team)
    db.session.commit()
    body = {"scope": "team", "id": scene.team.id}
    assert client.post("/api/v1/feeds", headers=api_token(scene.owner), json=body
                       ).status_code == 201  # a member
    assert client.post("/api/v1/feeds", headers=api_token(lead), json=body).status_code == 201
    assert client.post("/api/v1/feeds", headers=api_token(finance), json=body
                       ).status_code == 201
    assert client.post("/api/v1/feeds", headers=api_token(scene.other), json=body
                       ).status_code == 403
    assert client.post("/api/v1/feeds", headers=api_token(scene.manager), json=body
                       ).status_code == 403


def test_api_delete_someone_elses_feed(client, scene, api_token):
    response = client.post("/api/v1/feeds", headers=api_token(scene.other), json={"scope": "user"})
    feed_id = response.get_json()["id"]
    assert client.delete(f"/api/v1/feeds/{feed_id}", headers=api_token(scene.owner)
                         ).status_code == 404
    admin = factories.make_user(roles=("admin",))
    db.session.commit()
    assert client.delete(f"/api/v1/feeds/{feed_id}", headers=api_token(admin)).status_code == 204
    assert client.delete("/api/v1/feeds/1", headers={}).status_code == 401


def test_api_booking_ics(client, scene, api_token):
    booking = scene.bookings["mine"]
    response = client.get(f"/api/v1/bookings/{booking.id}/ics", headers=api_token(scene.owner))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="booking-{booking.id}.ics"')
    assert read_both(response.data)["events"][0]["summary"] == "SEM-01: Imaging grains"
    other = client.get(f"/api/v1/bookings/{booking.id}/ics", headers=api_token(scene.other))
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/api/v1/bookings/{booking.id}/ics", headers=api_token(scene.manager)
                      ).status_code == 200


def test_api_openapi_documents_the_feed_routes(client, scene, api_token):
    document = client.get("/api/v1/openapi.json", headers=api_token(scene.owner)).get_json()
    paths = document["paths"]
    assert set(paths["/feeds"]) == {"get", "post"}
    assert paths["/feeds"]["post"]["responses"]["201"]
    assert set(paths["/feeds/{feed_id}"]["delete"]["responses"]) == {"204", "401", "404"}
    assert "content" not in paths["/feeds/{feed_id}"]["delete"]["responses"]["204"]
    ics = paths["/bookings/{booking_id}/ics"]["get"]["responses"]["200"]
    assert set(ics["content"]) == {"text/calendar"}
    schema = document["components"]["schemas"]["FeedCreate"]
    assert schema["properties"]["scope"]["enum"] == ["user", "team", "instrument", "facility"]
    assert schema["required"] == ["scope"]
