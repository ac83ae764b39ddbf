"""The scene of the booking benchmarks (bench_bookings.py, bookings_http.py): instruments
with one advanced-qualified booker and an API token, and the next free slot per instrument."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Flask

from labbook.auth.services import create_token
from labbook.extensions import db
from tests import factories

SLOT = timedelta(minutes=15)
COLUMNS = ("kind", "instrument_id", "start_at", "end_at", "block_end", "state", "sequence",
           "created_at", "updated_at", "user_id", "team_id", "account_id", "purpose",
           "assisted", "buffer_minutes", "late_cancel")


@dataclass
class Scene:
    """Committed ids: instruments with one advanced-qualified booker and its token."""

    instrument_ids: list[int]
    user_id: int
    team_id: int
    account_id: int
    token: str
    next_start: dict[int, datetime] = field(default_factory=dict)

    def take(self, instrument_id: int) -> tuple[datetime, datetime]:
        """The next free 15-minute slot on the instrument (tomorrow onwards, in order)."""
        start = self.next_start.get(instrument_id) or tomorrow()
        self.next_start[instrument_id] = start + SLOT
        return start, start + SLOT

    def body(self, instrument_id: int) -> dict[str, Any]:
        start, end = self.take(instrument_id)
        return {"instrument_id": instrument_id, "start": start.isoformat(),
                "end": end.isoformat(), "purpose": "bench", "account_id": self.account_id}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def tomorrow() -> datetime:
    now = datetime.now(timezone.utc)
    return datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)


def make_scene(app: Flask, instruments: int) -> Scene:
    with app.app_context():
        facility = factories.make_facility()
        rows = [factories.make_instrument(facility) for _ in range(instruments)]
        user = factories.make_booker(rows[0], level="advanced")
        for instrument in rows[1:]:
            factories.make_qualification(user, instrument, level="advanced")
        account = user.memberships[0].team.default_account
        _, token = create_token(user, "bench")
        db.session.commit()
        return Scene([i.id for i in rows], user.id, account.team_id, account.id, token)
