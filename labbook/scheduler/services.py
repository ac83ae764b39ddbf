"""Scheduler bookkeeping: the leader row, per-job status, and what the admin page shows.

Like every service these functions flush but never commit: the runner (and ``run_job``)
owns its short transactions.
"""
from __future__ import annotations

import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from labbook.extensions import db
from labbook.scheduler.models import JobStatus, SchedulerLeader, apscheduler_jobs
from labbook.scheduler.registry import JobSpec

LEADER_ID = 1
# The page calls a leader stale when it has not written a heartbeat for this many
# election periods (the leader writes one every period), and never sooner than the floor.
STALE_PERIODS = 3
STALE_FLOOR_SECONDS = 15
ERROR_MAX = 2000
RESULT_MAX = 500
_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]*@", re.IGNORECASE)
_SQL_DETAILS = re.compile(r"\s*\[(SQL|parameters):.*", re.DOTALL)


def _insert(table: Any) -> Any:
    """An INSERT that supports ``on_conflict_do_update`` on the session's backend."""
    dialect = db.session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


# -- the leader row ----------------------------------------------------------------------
def record_leader(holder: str, since: datetime, now: datetime) -> None:
    """Name ``holder`` as the leader since ``since`` (overwrites the previous leader)."""
    stmt = _insert(SchedulerLeader.__table__).values(
        id=LEADER_ID, holder=holder, since=since, heartbeat_at=now
    )
    db.session.execute(stmt.on_conflict_do_update(
        index_elements=["id"], set_={"holder": holder, "since": since, "heartbeat_at": now}
    ))


def heartbeat(holder: str, now: datetime) -> bool:
    """Refresh the heartbeat if ``holder`` is still the named leader; False otherwise."""
    result = db.session.execute(
        sa.update(SchedulerLeader)
        .where(SchedulerLeader.id == LEADER_ID, SchedulerLeader.holder == holder)
        .values(heartbeat_at=now)
    )
    return bool(result.rowcount)


def clear_leader(holder: str) -> None:
    """Remove the leader row if it still names ``holder`` (clean shutdown)."""
    db.session.execute(
        sa.delete(SchedulerLeader).where(
            SchedulerLeader.id == LEADER_ID, SchedulerLeader.holder == holder
        )
    )


# -- job status --------------------------------------------------------------------------
def record_start(job_id: str, now: datetime) -> None:
    stmt = _insert(JobStatus.__table__).values(
        job_id=job_id, last_started_at=now, runs=0, failures=0
    )
    db.session.execute(stmt.on_conflict_do_update(
        index_elements=["job_id"], set_={"last_started_at": now}
    ))


def record_success(job_id: str, now: datetime, result: Any) -> None:
    text = None if result is None else str(result)[:RESULT_MAX]
    db.session.execute(
        sa.update(JobStatus).where(JobStatus.job_id == job_id).values(
            last_finished_at=now, last_success_at=now, last_error=None, last_result=text,
            runs=JobStatus.runs + 1,
        )
    )


def record_failure(job_id: str, now: datetime, message: str) -> None:
    db.session.execute(
        sa.update(JobStatus).where(JobStatus.job_id == job_id).values(
            last_finished_at=now, last_error=message[:ERROR_MAX],
            runs=JobStatus.runs + 1, failures=JobStatus.failures + 1,
        )
    )


def record_unavailable(job_id: str, message: str) -> None:
    """A job that is not scheduled because its task cannot be imported."""
    stmt = _insert(JobStatus.__table__).values(
        job_id=job_id, last_error=message[:ERROR_MAX], runs=0, failures=0
    )
    db.session.execute(stmt.on_conflict_do_update(
        index_elements=["job_id"], set_={"last_error": message[:ERROR_MAX]}
    ))


def describe_error(error: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """``Type: message`` fit to store and show: no SQL statement or bound parameters
    (they may carry personal data), no password in a URL, none of ``secrets``."""
    text = f"{type(error).__name__}: {error}"
    text = _SQL_DETAILS.sub("", text)
    text = _URL_CREDENTIALS.sub(r"\1:***@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text.strip()[:ERROR_MAX]


def describe_traceback(error: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """The traceback's frames (code locations only) followed by ``describe_error``."""
    frames = "".join(traceback.format_tb(error.__traceback__))
    return f"Traceback (most recent call last):\n{frames}{describe_error(error, secrets)}"


# -- what the admin page shows -----------------------------------------------------------
@dataclass(frozen=True)
class LeaderView:
    holder: str
    since: datetime
    heartbeat_at: datetime
    stale: bool


@dataclass(frozen=True)
class JobView:
    id: str
    seconds: float
    status: JobStatus | None
    next_run_at: datetime | None
    scheduled: bool

    @property
    def state(self) -> str:
        """never | running | ok | failed | unavailable."""
        status = self.status
        if status is None or (status.last_started_at is None and not status.last_error):
            return "never"
        if status.last_started_at is None:
            return "unavailable"
        if status.last_finished_at is None or status.last_finished_at < status.last_started_at:
            return "running"
        return "failed" if status.last_error else "ok"


def stale_after(election_seconds: float) -> timedelta:
    return timedelta(seconds=max(STALE_PERIODS * election_seconds, STALE_FLOOR_SECONDS))


def leader_view(now: datetime, election_seconds: float) -> LeaderView | None:
    row = db.session.get(SchedulerLeader, LEADER_ID)
    if row is None:
        return None
    stale = now - row.heartbeat_at > stale_after(election_seconds)
    return LeaderView(row.holder, row.since, row.heartbeat_at, stale)


def job_views(jobs: Iterable[JobSpec]) -> list[JobView]:
    """Each job with its status row and its next run (from APScheduler's job store)."""
    statuses = {row.job_id: row for row in db.session.scalars(sa.select(JobStatus))}
    stored = stored_next_runs()
    return [
        JobView(id=job.id, seconds=job.seconds, status=statuses.get(job.id),
                next_run_at=stored.get(job.id), scheduled=job.id in stored)
        for job in jobs
    ]


def stored_next_runs() -> dict[str, datetime | None]:
    """Next run per job id as APScheduler left it in its store (None: paused)."""
    rows = db.session.execute(
        sa.select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time)
    ).all()
    return {
        job_id: None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)
        for job_id, ts in rows
    }


def unschedule(job_ids: Iterable[str]) -> None:
    """Drop jobs from APScheduler's store (before the scheduler starts): a job whose task
    is missing, or one the job table no longer has."""
    ids = list(job_ids)
    if ids:
        db.session.execute(sa.delete(apscheduler_jobs).where(apscheduler_jobs.c.id.in_(ids)))
