"""Calendar feeds: who may subscribe to what, and creating, listing, revoking and
regenerating feeds (the content a feed serves is built in ``content.py``).

A feed's URL carries a secret (``secrets.token_urlsafe(32)``: 256 bits); only its SHA-256
is stored, and the secret is shown once, at creation (SPEC section 10). Scopes:

* ``user``: my bookings, for any signed-in user, for themself only;
* ``team``: the bookings charged to a team, for its members and leads, finance and admins;
* ``instrument``, ``facility``: a schedule, for every signed-in user. Who booked and why
  shows only where the feed's owner may see it in labbook (``Booking.can_see_details``),
  judged when the feed is fetched, so a change of rights applies to existing feeds.

Services flush and audit; the caller commits.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from labbook import audit
from labbook.auth.models import User, hash_token
from labbook.db import now_utc
from labbook.errors import Forbidden, NotFound, ValidationError
from labbook.extensions import db
from labbook.feeds.ics import base_url
from labbook.feeds.models import FEED_SCOPES, CalendarFeed
from labbook.instruments.models import Facility, Instrument
from labbook.teams.models import Team

TOKEN_BYTES = 32
# ``token_urlsafe(32)`` gives 43 characters of the URL-safe alphabet; anything else cannot
# be a feed token and is refused before the database is asked.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
HINT_LENGTH = 8
MAX_ACTIVE_FEEDS = 50
TARGET_MODELS: dict[str, type[Any]] = {
    "user": User, "team": Team, "instrument": Instrument, "facility": Facility,
}


def new_feed_secret() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def feed_urls(secret: str) -> tuple[str, str]:
    """The feed's URL on ``LABBOOK_BASE_URL`` (its scheme, normally https) and the same
    as ``webcal://``, which calendar apps open as a subscription."""
    url = f"{base_url()}/feeds/{secret}.ics"
    return url, "webcal://" + url.partition("://")[2]


def load_target(scope: str, target_id: int) -> Any:
    """The user, team, instrument or facility a feed of ``scope`` would show.

    :raises NotFound: when there is no such object.
    """
    model = TARGET_MODELS[scope]
    target = db.session.get(model, target_id) if 0 < target_id <= 2**31 - 1 else None
    if target is None or (scope == "user" and not target.active):
        messages = {"user": _("No such user."), "team": _("No such team."),
                    "instrument": _("No such instrument."), "facility": _("No such facility.")}
        raise NotFound(messages[scope])
    return target


def may_subscribe(user: User, scope: str, target_id: int) -> bool:
    """May ``user`` own a feed of ``scope`` on ``target_id``? Also asked at every fetch."""
    if scope == "user":
        return target_id == user.id
    if scope == "team":
        return user.can_see_team(target_id)  # members and leads, finance, admins
    return True  # an instrument's or facility's schedule: every signed-in user


def still_allowed(scope: str, target_id: int, owner_id: int, roles: frozenset[str],
                  member_of_target: bool) -> bool:
    """``may_subscribe`` from plain values read with a feed's token (every fetch asks, so
    it must not load the owner): the same rule, ``User.can_see_team`` for teams."""
    if scope == "user":
        return target_id == owner_id
    if scope == "team":
        return bool(roles & {"finance", "admin"}) or member_of_target
    return True


def _check_scope(scope: Any, target_id: int | None, owner: User) -> int:
    """The target id to use. :raises ValidationError: unknown scope or missing id."""
    if scope not in FEED_SCOPES:
        raise ValidationError(_("The feed could not be created."), {
            "scope": [_("Must be one of: %(choices)s.", choices=", ".join(FEED_SCOPES))]})
    if target_id is None and scope == "user":
        return owner.id
    if target_id is None:
        raise ValidationError(_("The feed could not be created."),
                              {"id": [_("This field is required.")]})
    return target_id


def create_feed(owner: User, scope: str, target_id: int | None = None,
                now: datetime | None = None) -> tuple[CalendarFeed, str]:
    """Create a feed for ``owner``; returns it and its secret (shown once, never stored).

    :raises ValidationError: unknown scope, missing id, too many active feeds.
    :raises Forbidden: when ``owner`` may not subscribe to this target.
    :raises NotFound: when the target does not exist.
    """
    target_id = _check_scope(scope, target_id, owner)
    if scope == "user" and target_id != owner.id:  # refused before looking: reveals nothing
        raise Forbidden(_("You can subscribe to your own bookings only."))
    load_target(scope, target_id)
    if not may_subscribe(owner, scope, target_id):
        raise Forbidden(_("Only the team's members, finance and administrators can "
                          "subscribe to its bookings."))
    if len(active_feeds(owner)) >= MAX_ACTIVE_FEEDS:
        raise ValidationError(_("The feed could not be created."), {"scope": [
            _("You have %(n)d active calendar links; revoke some first.", n=MAX_ACTIVE_FEEDS)]})
    secret = new_feed_secret()
    feed = CalendarFeed(owner=owner, scope=scope, target_id=target_id,
                        token_hash=hash_token(secret), hint=secret[:HINT_LENGTH],
                        created_at=now or now_utc())
    db.session.add(feed)
    db.session.flush()
    audit.record(owner, "feed.create", feed, after={"scope": scope, "target_id": target_id})
    return feed, secret


def _feed_of(actor: User, feed_id: int, allow_admin: bool) -> CalendarFeed:
    """An active feed of ``actor`` (admins: anyone's, where allowed).

    :raises NotFound: unknown, revoked, or someone else's.
    """
    feed = db.session.get(CalendarFeed, feed_id) if 0 < feed_id <= 2**31 - 1 else None
    if (feed is None or feed.revoked_at is not None
            or (feed.owner_id != actor.id and not (allow_admin and actor.is_admin))):
        raise NotFound(_("No such calendar feed."))
    return feed


def revoke_feed(actor: User, feed_id: int, now: datetime | None = None) -> CalendarFeed:
    """Revoke a feed: its URL answers 404 from now on. The owner, or an admin (a leaked
    link must be stoppable).

    :raises NotFound: unknown, already revoked, or someone else's.
    """
    feed = _feed_of(actor, feed_id, allow_admin=True)
    feed.revoked_at = now or now_utc()
    audit.record(actor, "feed.revoke", feed, after={"revoked": True})
    return feed


def regenerate_feed(actor: User, feed_id: int,
                    now: datetime | None = None) -> tuple[CalendarFeed, str]:
    """Replace a feed's URL: revoke it and create one with the same scope and target. Only
    its owner (the new secret is shown to whoever asks).

    :raises NotFound: unknown, revoked, or someone else's.
    :raises Forbidden: when the owner may no longer subscribe to the target.
    """
    old = _feed_of(actor, feed_id, allow_admin=False)
    revoke_feed(actor, old.id, now)
    return create_feed(actor, old.scope, old.target_id, now)


def active_feeds(user: User, pairs: Iterable[tuple[str, int]] | None = None) -> list[CalendarFeed]:
    """``user``'s unrevoked feeds, oldest first; only those on ``pairs`` (scope, target id)
    when given."""
    stmt = sa.select(CalendarFeed).where(CalendarFeed.owner_id == user.id,
                                         CalendarFeed.revoked_at.is_(None))
    if pairs is not None:
        wanted = [sa.and_(CalendarFeed.scope == s, CalendarFeed.target_id == t) for s, t in pairs]
        if not wanted:
            return []
        stmt = stmt.where(sa.or_(*wanted))
    return list(db.session.scalars(stmt.order_by(CalendarFeed.created_at, CalendarFeed.id)))


def targets_of(feeds: Iterable[CalendarFeed]) -> dict[tuple[str, int], Any]:
    """The objects the feeds show, one query per scope: {(scope, id): object}."""
    wanted: dict[str, set[int]] = {}
    for feed in feeds:
        wanted.setdefault(feed.scope, set()).add(feed.target_id)
    found: dict[tuple[str, int], Any] = {}
    for scope, ids in wanted.items():
        model = TARGET_MODELS[scope]
        for obj in db.session.scalars(sa.select(model).where(model.id.in_(ids))):
            found[(scope, obj.id)] = obj
    return found


def target_name(scope: str, target: Any, locale: str | None) -> str:
    """What the feed shows, in words: "My bookings", a team, instrument or facility name."""
    if target is None:
        return _("(deleted)")
    if scope == "user":
        return _("My bookings")
    if scope == "facility":
        return target.display_name(locale)
    return target.name
