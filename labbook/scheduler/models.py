"""Scheduler bookkeeping.

* ``apscheduler_jobs`` is APScheduler's own SQLAlchemy job store table, declared here with
  the very shape APScheduler 3.x creates so that migrations create it and autogenerate
  stays quiet about it.
* ``SchedulerLeader``: the one row naming the process that currently schedules (the
  election itself is a PostgreSQL session advisory lock or, on SQLite, a file lock; this
  row is only what the admin page shows), with its heartbeat.
* ``JobStatus``: per job, the last run, its outcome and counts, for the admin page.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from labbook.extensions import db

apscheduler_jobs = sa.Table(
    "apscheduler_jobs",
    db.metadata,
    sa.Column("id", sa.Unicode(191), primary_key=True),
    sa.Column("next_run_time", sa.Float(25), index=True),
    sa.Column("job_state", sa.LargeBinary, nullable=False),
)


class SchedulerLeader(db.Model):
    __tablename__ = "scheduler_leader"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(sa.String(200))
    since: Mapped[datetime]
    heartbeat_at: Mapped[datetime]


class JobStatus(db.Model):
    __tablename__ = "scheduler_job_status"

    job_id: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(2000))
    last_result: Mapped[str | None] = mapped_column(sa.String(500))
    runs: Mapped[int] = mapped_column(default=0, server_default="0")
    failures: Mapped[int] = mapped_column(default=0, server_default="0")
