"""Mail in tests: what the delivery job does before it sends (compose the notifications
marked for mail into outbox messages), callable on its own."""

from __future__ import annotations

from datetime import datetime

from labbook.db import now_utc
from labbook.notifications.compose import compose_pending


def compose(now: datetime | None = None) -> int:
    """Compose every notification marked for mail (commits, as the job does); how many
    outbox messages were written."""
    return compose_pending(now or now_utc(), 1000)
