"""The pages: the calendar-link panel on the instrument, team and profile pages, creating,
replacing and revoking links, the list of links, and the single-booking download."""
from __future__ import annotations

import re

from labbook.extensions import db
from labbook.feeds import services
from tests import factories
from tests.conftest import csrf_token, login
from tests.feeds.parsers import read_both

LINK = re.compile(r'value="(http://127\.0\.0\.1:5000/feeds/([A-Za-z0-9_-]{43})\.ics)"')
WEBCAL = re.compile(r'value="(webcal://127\.0\.0\.1:5000/feeds/[A-Za-z0-9_-]{43}\.ics)"')


def post(client, path, **data):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf_token(client, "/feeds"), **data})


def created_link(response) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    html = response.get_data(as_text=True)
    match = LINK.search(html)
    assert match, html[:2000]
    return match.group(1), f"/feeds/{match.group(2)}.ics"


def test_views_instrument_page_offers_instrument_and_facility_links(client, scene):
    login(client, scene.owner.email)
    page = client.get(f"/instruments/{scene.instrument.id}").get_data(as_text=True)
    assert 'id="calendar-feeds"' in page
    assert f'id="feed-instrument-{scene.instrument.id}"' in page
    assert f'id="feed-facility-{scene.facility.id}"' in page
    assert page.count("Get a calendar link") == 2


def test_views_create_shows_the_link_once(client, scene):
    login(client, scene.owner.email)
    next_url = f"/instruments/{scene.instrument.id}"
    response = post(client, "/feeds", scope="instrument", target_id=scene.instrument.id,
                    next=next_url)
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    url, path = created_link(response)
    webcal = WEBCAL.search(html)
    assert webcal and webcal.group(1) == url.replace("http://", "webcal://")
    assert f'href="{next_url}"' in html
    assert '<script src="/static/js/feeds.js" defer></script>' in html
    assert "<script>" not in html  # the CSP allows no inline script
    assert response.headers["Cache-Control"] == "no-store"
    feed = client.get(path)
    assert feed.status_code == 200
    assert read_both(feed.data)["calendar"]["name"] == "labbook — SEM-01"
    page = client.get(next_url).get_data(as_text=True)
    secret = path.split("/")[-1].removesuffix(".ics")
    assert secret not in page and f"/feeds/{secret[:8]}…" in page
    assert "Replace link" in page and page.count("Get a calendar link") == 1


def test_views_copy_script_is_served(client):
    response = client.get("/static/js/feeds.js")
    assert response.status_code == 200
    assert b"navigator.clipboard" in response.data


def test_views_profile_panel_and_the_list_of_links(client, scene):
    login(client, scene.owner.email)
    profile = client.get("/profile").get_data(as_text=True)
    assert f'id="feed-user-{scene.owner.id}"' in profile
    _url, path = created_link(post(client, "/feeds", scope="user", target_id=scene.owner.id))
    post(client, "/feeds", scope="facility", target_id=scene.facility.id)
    listing = client.get("/feeds").get_data(as_text=True)
    assert "My bookings" in listing and "Nano Fab" in listing
    assert listing.count('<tr id="feed-') == 2
    assert "Get a link for my bookings" not in listing  # there is one already


def test_views_team_page_panel_for_members_only(client, scene):
    login(client, scene.owner.email)
    page = client.get(f"/teams/{scene.team.id}").get_data(as_text=True)
    assert f'id="feed-team-{scene.team.id}"' in page
    response = post(client, "/feeds", scope="team", target_id=scene.other_team.id)
    assert response.status_code == 403
    assert services.active_feeds(scene.owner) == []


def test_views_create_refuses_bad_input(client, scene):
    login(client, scene.owner.email)
    response = post(client, "/feeds", scope="planet", target_id=1)
    assert response.status_code == 422
    assert "Must be one of: user, team, instrument, facility." in response.get_data(as_text=True)
    assert post(client, "/feeds", scope="instrument").status_code == 422
    assert post(client, "/feeds", scope="instrument", target_id="x").status_code == 422
    assert post(client, "/feeds", scope="instrument", target_id=999999).status_code == 404
    assert post(client, "/feeds", scope="user", target_id=scene.other.id).status_code == 403
    no_csrf = client.post("/feeds", data={"scope": "user"})
    assert no_csrf.status_code == 400
    assert services.active_feeds(scene.owner) == []


def test_views_replace_link(client, scene):
    login(client, scene.owner.email)
    _url, old = created_link(post(client, "/feeds", scope="user"))
    (feed,) = services.active_feeds(scene.owner)
    response = post(client, f"/feeds/{feed.id}/regenerate", next="/profile")
    assert response.status_code == 201
    _url, new = created_link(response)
    assert new != old
    assert client.get(old).status_code == 404
    assert client.get(new).status_code == 200
    (replacement,) = services.active_feeds(scene.owner)
    assert (replacement.scope, replacement.target_id) == ("user", scene.owner.id)


def test_views_revoke_link(client, scene):
    login(client, scene.owner.email)
    _url, path = created_link(post(client, "/feeds", scope="user"))
    (feed,) = services.active_feeds(scene.owner)
    response = post(client, f"/feeds/{feed.id}/revoke", next="https://evil.example/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/feeds"
    assert client.get(path).status_code == 404
    assert post(client, f"/feeds/{feed.id}/revoke").status_code == 404  # once


def test_views_other_peoples_links_are_404(client, scene):
    feed, secret = services.create_feed(scene.other, "user")
    admin = factories.make_user(roles=("admin",))
    db.session.commit()
    login(client, scene.owner.email)
    assert post(client, f"/feeds/{feed.id}/revoke").status_code == 404
    assert post(client, f"/feeds/{feed.id}/regenerate").status_code == 404
    client.post("/logout", data={"csrf_token": csrf_token(client, "/feeds")})
    login(client, admin.email)
    assert post(client, f"/feeds/{feed.id}/regenerate").status_code == 404
    assert post(client, f"/feeds/{feed.id}/revoke").status_code == 302  # a leaked link
    assert client.get(f"/feeds/{secret}.ics").status_code == 404


def test_views_booking_download(client, scene):
    booking = scene.bookings["mine"]
    path = f"/bookings/{booking.id}.ics"
    assert client.get(path).status_code == 302  # login first
    login(client, scene.owner.email)
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="booking-{booking.id}.ics"')
    (event,) = read_both(response.data)["events"]
    assert event["summary"] == "SEM-01: Imaging grains"
    detail = client.get(f"/bookings/{booking.id}").get_data(as_text=True)
    assert f'href="{path}"' in detail
    assert client.get(f"/bookings/{scene.bookings['theirs'].id}.ics").status_code == 404
    assert client.get("/bookings/99999999.ics").status_code == 404


def test_views_booking_download_for_the_teams_lead_and_the_manager(client, scene):
    lead = factories.make_user_with_role("team_lead", team=scene.team)
    db.session.commit()
    path = f"/bookings/{scene.bookings['mine'].id}.ics"
    for user in (lead, scene.manager):
        client.post("/logout", data={"csrf_token": csrf_token(client, "/login")})
        login(client, user.email)
        assert client.get(path).status_code == 200
    client.post("/logout", data={"csrf_token": csrf_token(client, "/login")})
    login(client, scene.other.email)
    assert client.get(path).status_code == 404
