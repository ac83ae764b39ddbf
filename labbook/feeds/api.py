"""JSON API of labbook.feeds (routes attach to ``labbook.api.bp``): list, create and revoke
calendar feeds, and a booking as an ``.ics`` file.

A feed's secret URL appears once, in the answer to the POST that created it; the list shows
only its first characters (``hint``).
"""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from labbook.api import ID, bp, json_body
from labbook.api.openapi import component, list_of, operation
from labbook.api.schema import MAX_ID, Choice, Integer, Schema, response_schema
from labbook.bookings.models import Booking
from labbook.db import now_utc, run_with_retry
from labbook.errors import NotFound
from labbook.extensions import db
from labbook.feeds import ics, services
from labbook.feeds.models import FEED_SCOPES, CalendarFeed

TAGS = ("feeds",)
FEED_CREATE = Schema("FeedCreate", {
    "scope": Choice(choices=FEED_SCOPES, required=True, description=(
        "`user`: your bookings; `team`: a team's bookings (members, finance, admins); "
        "`instrument` or `facility`: its schedule (any user)")),
    "id": Integer(minimum=1, maximum=MAX_ID, description=(
        "the user, team, instrument or facility; optional for `user` (yourself)")),
})
_FEED_PROPS: dict[str, dict[str, Any]] = {
    "id": {"type": "integer"},
    "scope": {"type": "string", "enum": list(FEED_SCOPES)},
    "target_id": {"type": "integer"},
    "target_name": {"type": "string"},
    "hint": {"type": "string", "description": "the first characters of the feed's secret"},
    "created_at": {"type": "string", "format": "date-time"},
}
FEED = component("CalendarFeed", response_schema(_FEED_PROPS))
CREATED_FEED = component("CreatedCalendarFeed", response_schema({
    **_FEED_PROPS,
    "url": {"type": "string", "format": "uri",
            "description": "the secret feed URL; shown in this answer only"},
    "webcal_url": {"type": "string", "format": "uri",
                   "description": "the same as webcal://, for Apple Calendar"},
}))


def feed_to_dict(feed: CalendarFeed, target: Any) -> dict[str, Any]:
    return {
        "id": feed.id,
        "scope": feed.scope,
        "target_id": feed.target_id,
        "target_name": services.target_name(feed.scope, target, str(get_locale() or "en")),
        "hint": feed.hint,
        "created_at": feed.created_at.isoformat(),
    }


def answers(status: str, description: str, content: dict[str, Any] | None = None) -> Any:
    """Document a success answer that is not JSON, e.g. 204 or a calendar file (apply
    above ``@operation``, which describes JSON answers only)."""

    def decorator(view: Any) -> Any:
        success: dict[str, Any] = {"description": description}
        if content is not None:
            success["content"] = content
        errors = {code: answer for code, answer in view._openapi["responses"].items()
                  if code != "200"}
        view._openapi["responses"] = {status: success, **errors}
        return view

    return decorator


@bp.get("/feeds")
@operation("Your calendar feeds", tags=TAGS, response=list_of(FEED), description=(
    "Your active (unrevoked) feeds, oldest first. Their URLs are not shown again: revoke a "
    "feed and create a new one to get a new URL."))
def list_feeds() -> Response:
    feeds = services.active_feeds(current_user._get_current_object())
    targets = services.targets_of(feeds)
    return jsonify({"items": [feed_to_dict(f, targets.get((f.scope, f.target_id)))
                              for f in feeds]})


@bp.post("/feeds")
@operation("Create a calendar feed", tags=TAGS, body=FEED_CREATE, response=CREATED_FEED,
           status=201, errors=(403, 404), description=(
               "Answers the secret `url` (and `webcal_url`) once. `user` feeds are for "
               "yourself only (403 for another id); `team` feeds for the team's members and "
               "leads, finance and admins (403); 404 when the object does not exist. Who "
               "booked and why show only where you may see them in labbook."))
def create_feed() -> Response:
    values = FEED_CREATE.parse(json_body())
    owner = current_user._get_current_object()

    def unit() -> dict[str, Any]:
        feed, secret = services.create_feed(owner, values["scope"], values.get("id"))
        target = services.targets_of([feed]).get((feed.scope, feed.target_id))
        url, webcal_url = services.feed_urls(secret)
        return {**feed_to_dict(feed, target), "url": url, "webcal_url": webcal_url}

    data = run_with_retry(unit)
    response = jsonify(data)
    response.status_code = 201
    response.headers["Location"] = url_for("api.list_feeds")
    return response


@bp.delete(f"/feeds/<{ID}:feed_id>")
@answers("204", "Revoked: the feed's URL answers 404 from now on.")
@operation("Revoke a calendar feed", tags=TAGS, response={}, errors=(404,), description=(
    "Your own feeds (admins: anyone's, to stop a leaked URL). 404 for unknown, already "
    "revoked or other people's feeds."))
def delete_feed(feed_id: int) -> Response:
    actor = current_user._get_current_object()
    run_with_retry(lambda: services.revoke_feed(actor, feed_id))
    return Response(status=204)


@bp.get(f"/bookings/<{ID}:booking_id>/ics")
@answers("200", "The booking as an iCalendar file (one VEVENT, no METHOD).",
         {"text/calendar": {"schema": {"type": "string"}}})
@operation("One booking as an .ics file", tags=("bookings",), response={}, errors=(404,),
           description=(
               "The same file as the booking page's download, for whoever may see the "
               "booking (owner, the team's leads, managers of its facility, admins); others "
               "get 404."))
def get_booking_ics(booking_id: int) -> Response:
    booking = db.session.get(Booking, booking_id)
    if booking is None or not booking.can_see_details(current_user._get_current_object()):
        raise NotFound(_("No such booking."))
    response = Response(ics.booking_ics(booking, now=now_utc()),
                        content_type="text/calendar; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="booking-{booking.id}.ics"'
    return response
