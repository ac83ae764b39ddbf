"""A small billing scene for the page tests: one instrument with a rate, a team with an
account and a completed two-hour session in October 2026 (a month that has ended)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from flask.testing import FlaskClient

from labbook.extensions import db
from tests import factories

TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@dataclass
class Scene:
    facility: Any
    instrument: Any
    team: Any
    account: Any
    booking: Any
    lead: Any


def make_scene() -> Scene:
    facility = factories.make_facility()
    instrument = factories.make_instrument(facility)
    factories.make_rate(instrument, "120.00")
    team = factories.make_team()
    account = factories.make_account(team, is_default=True)
    lead = factories.make_user(roles=("team_lead",))
    factories.add_member(team, lead, is_lead=True)
    start = datetime(2026, 10, 12, 2, 0, tzinfo=timezone.utc)
    booking = factories.make_booking(instrument, lead, account=account, start=start,
                                     end=start.replace(hour=4), state="completed",
                                     checked_in_at=start, checked_out_at=start.replace(hour=4))
    db.session.commit()
    return Scene(facility, instrument, team, account, booking, lead)


def token(client: FlaskClient, path: str) -> str:
    """The CSRF token of a page the user may open."""
    html = client.get(path).get_data(as_text=True)
    match = TOKEN.search(html)
    assert match, f"no csrf token on {path}"
    return match.group(1)
