"""Task functions for the scheduler's own tests (the real ones live in the features'
``tasks.py``): they follow the agreed interface ``name(now=None) -> int``."""
from __future__ import annotations

from datetime import datetime

calls: list[datetime | None] = []


def count_three(now: datetime | None = None) -> int:
    calls.append(now)
    return 3


def explode(now: datetime | None = None) -> int:
    raise RuntimeError(
        "cannot reach postgresql+psycopg://labbook:hunter2@db.example.org/labbook "
        "[SQL: UPDATE users SET email=%(email)s] [parameters: {'email': 'someone@example.org'}]"
    )
