"""Pages of labbook.feeds: the secret feed URL itself (no session: calendar apps fetch it),
the single-booking ``.ics`` download, and the pages that create, replace and revoke
calendar links.

A new link's secret is shown once, in the answer to the POST that created it (never in a
URL, a redirect or the session cookie); afterwards only its first characters are listed.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from labbook.auth.security import public
from labbook.bookings.models import Booking
from labbook.db import now_utc
from labbook.errors import NotFound, ValidationError
from labbook.extensions import db
from labbook.feeds import bp, content, fetch, ics, services
from labbook.feeds.forms import FeedActionForm, FeedForm
from labbook.feeds.models import CalendarFeed
from labbook.feeds.panels import title_of
from labbook.urls import safe_next

CALENDAR_TYPE = "text/calendar; charset=utf-8"


def _not_modified(checked: content.Validators, now: datetime) -> bool:
    """RFC 9110 section 13.2.2: If-None-Match decides when present (weak comparison),
    otherwise If-Modified-Since (HTTP dates have whole seconds; a date in the future is
    not a valid one)."""
    if request.if_none_match:
        return request.if_none_match.contains_weak(checked.etag)
    since = request.if_modified_since
    return (since is not None and since <= now
            and checked.last_modified.replace(microsecond=0) <= since)


def _calendar_response(body: bytes | None, checked: content.Validators) -> Response:
    """200 with the calendar, or 304 (``body`` None); both with the validators and
    ``Cache-Control: private, max-age=<refresh interval>``."""
    if body is None:
        return Response(status=304, headers=checked.headers)
    return Response(body, headers=checked.headers, content_type=CALENDAR_TYPE)


def _conditional() -> bool:
    return bool(request.if_none_match) or request.if_modified_since is not None


@bp.get("/feeds/<token>.ics")
@public
def feed(token: str) -> Response:
    """A calendar app fetches this (GET or HEAD). Unknown or revoked tokens, inactive
    owners and owners who lost the right to the target all get 404. A conditional request
    is first checked against the validators kept from earlier fetches (``fetch.py``), then
    against validators computed from the data; the feed is rendered only when it changed.

    :raises NotFound: as above.
    """
    found = fetch.lookup(token)
    if found is None:
        raise NotFound(_("No such calendar feed."))
    now = now_utc()
    if _conditional():
        kept = fetch.kept_validators(found, now)
        if kept is not None and _not_modified(kept, now):
            return _calendar_response(None, kept)
    checked = fetch.fresh_validators(found, now)
    if _conditional() and _not_modified(checked, now):
        return _calendar_response(None, checked)
    return _calendar_response(content.render(found.feed, checked.window), checked)


@bp.get("/bookings/<int:booking_id>.ics")
def booking_download(booking_id: int) -> Response:
    """The booking as a one-event calendar file, for whoever may see the booking.

    :raises NotFound: unknown, or not visible to the current user.
    """
    booking = db.session.get(Booking, booking_id) if 0 < booking_id <= 2**31 - 1 else None
    if booking is None or not booking.can_see_details(current_user):
        raise NotFound(_("No such booking."))
    response = Response(ics.booking_ics(booking, now=now_utc()), content_type=CALENDAR_TYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="booking-{booking.id}.ics"'
    return response


def _describe(feeds: list[CalendarFeed]) -> list[dict[str, Any]]:
    targets = services.targets_of(feeds)
    return [{"feed": f, "name": title_of(f.scope, targets.get((f.scope, f.target_id)))}
            for f in feeds]


def _render_index(errors: list[str] | None = None, status: int = 200) -> tuple[str, int]:
    user = current_user._get_current_object()
    feeds = services.active_feeds(user)
    return render_template(
        "feeds/index.html", rows=_describe(feeds), errors=errors or [],
        has_own=any(f.scope == "user" for f in feeds), action_form=FeedActionForm(formdata=None),
    ), status


def _render_created(feed: CalendarFeed, secret: str, next_url: str | None) -> tuple[str, int]:
    url, webcal_url = services.feed_urls(secret)
    target = services.targets_of([feed]).get((feed.scope, feed.target_id))
    return render_template(
        "feeds/created.html", feed=feed, url=url, webcal_url=webcal_url,
        name=services.target_name(feed.scope, target, str(get_locale() or "en")),
        back=safe_next(next_url, url_for("feeds.index")),
    ), 201


@bp.get("/feeds")
def index() -> tuple[str, int]:
    return _render_index()


@bp.post("/feeds")
def create() -> tuple[str, int]:
    """:raises Forbidden: not allowed on this target. :raises NotFound: no such target."""
    form = FeedForm()
    if not form.validate_on_submit():
        return _render_index([m for ms in form.errors.values() for m in ms], 422)
    try:
        feed, secret = services.create_feed(current_user._get_current_object(),
                                            form.scope.data, form.target_id.data)
    except ValidationError as error:
        db.session.rollback()
        return _render_index([m for ms in error.fields.values() for m in ms] or [error.message],
                             422)
    db.session.commit()
    return _render_created(feed, secret, form.next.data)


@bp.post("/feeds/<int:feed_id>/regenerate")
def regenerate(feed_id: int) -> tuple[str, int]:
    """:raises NotFound: not an active feed of the current user. :raises Forbidden: the
    user may no longer subscribe to its target."""
    form = FeedActionForm()
    feed, secret = services.regenerate_feed(current_user._get_current_object(), feed_id)
    db.session.commit()
    return _render_created(feed, secret, form.next.data)


@bp.post("/feeds/<int:feed_id>/revoke")
def revoke(feed_id: int) -> Any:
    """:raises NotFound: not an active feed of the current user (admins: anyone's)."""
    form = FeedActionForm()
    services.revoke_feed(current_user._get_current_object(), feed_id)
    db.session.commit()
    flash(_("Calendar link revoked: calendars using it stop updating."), "success")
    return redirect(safe_next(form.next.data, url_for("feeds.index")))
