"""The scheduler process: elect a leader, and let only the leader run APScheduler.

Every process started with ``flask --app labbook scheduler`` is a *candidate*. It tries
to take the leadership (election.py) every ``LABBOOK_SCHEDULER_ELECTION_SECONDS``. The
leader builds a ``BlockingScheduler`` whose jobs live in the app's database (table
``apscheduler_jobs``) and runs it in the main thread; a watchdog thread checks the lock
every period, refreshes the leader row's heartbeat, and shuts the scheduler down the
moment the lock is lost (or SIGTERM/SIGINT arrive): two processes never schedule at once
for longer than one election period, and the jobs are idempotent for that window anyway.

APScheduler stores each job as a reference to ``run_job`` with the job id as its only
argument; ``run_job`` pushes an app context, resolves the task from the registry, calls it
with an explicit ``now``, records the outcome in ``scheduler_job_status`` and never lets an
exception escape into the scheduler.
"""
from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask, current_app, has_app_context

from labbook.db import now_utc
from labbook.extensions import db
from labbook.scheduler import services
from labbook.scheduler.election import Election, election_for, holder_name
from labbook.scheduler.registry import JobSpec, TaskUnavailable, get_job, resolve

log = logging.getLogger("labbook.scheduler")
JOB_FUNCTION = "labbook.scheduler.runner:run_job"
_app: Flask | None = None


def bind_app(app: Flask) -> None:
    """Tell ``run_job`` which app to run jobs in (the scheduler process has one)."""
    global _app
    _app = app


# -- running one job ---------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    ok: bool
    result: Any = None
    error: str | None = None


def run_job(job_id: str) -> Any:
    """APScheduler's job function: run ``job_id``'s task once in an app context.

    Never raises: a failing (or missing) task is logged and recorded in its status row,
    and the scheduler goes on. Returns the task's result, or None when it failed.
    """
    app = _app or (current_app._get_current_object() if has_app_context() else None)
    if app is None:
        log.error("job %s: no application bound (call runner.bind_app first)", job_id)
        return None
    return execute(app, job_id).result


def execute(app: Flask, job_id: str) -> Outcome:
    """Run ``job_id`` in a fresh app context of ``app`` and record the outcome."""
    with app.app_context():
        started = now_utc()
        _bookkeep(services.record_start, job_id, started)
        try:
            task = resolve(get_job(job_id).target)
            result = task(now=started)
        except Exception as error:  # noqa: BLE001 - a job must never kill the scheduler
            db.session.rollback()
            hidden = _secrets(app)
            log.error("job %s failed\n%s", job_id, services.describe_traceback(error, hidden))
            message = services.describe_error(error, hidden)
            _bookkeep(services.record_failure, job_id, now_utc(), message)
            return Outcome(False, error=message)
        _bookkeep(services.record_success, job_id, now_utc(), result)
        log.log(logging.INFO if result else logging.DEBUG, "job %s done: %s", job_id, result)
        return Outcome(True, result)


def _bookkeep(function: Callable[..., Any], *args: Any) -> None:
    """Run a bookkeeping service in its own short transaction; failures are only logged
    (a database hiccup must not turn a done job into a crash)."""
    try:
        function(*args)
        db.session.commit()
    except Exception as error:  # noqa: BLE001
        db.session.rollback()
        log.error("scheduler bookkeeping failed: %s", services.describe_error(error))


def _secrets(app: Flask) -> list[str | None]:
    url = sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    return [app.config.get("SECRET_KEY"), app.config.get("LABBOOK_SMTP_PASSWORD"), url.password]


# -- the process -------------------------------------------------------------------------
def first_run(previous: datetime | None, now: datetime, seconds: float) -> datetime:
    """When a job first runs under a new leader: keep the schedule the last leader left
    in the store, but run at once what is overdue (catch-up after downtime) and never
    later than one interval from now (the interval may have been shortened)."""
    if previous is None or previous < now:
        return now
    return min(previous, now + timedelta(seconds=seconds))


def build_scheduler(app: Flask, workers: int) -> BlockingScheduler:
    """A BlockingScheduler with its job store in the app's database (its own engine: the
    store disposes it on shutdown)."""
    with app.app_context():
        url = db.engine.url
    jobstore = SQLAlchemyJobStore(engine=sa.create_engine(url, pool_pre_ping=True))
    return BlockingScheduler(
        jobstores={"default": jobstore},
        executors={"default": ThreadPoolExecutor(max_workers=max(workers, 1))},
        job_defaults={
            "coalesce": True, "max_instances": 1,
            "misfire_grace_time": app.config["LABBOOK_SCHEDULER_MISFIRE_GRACE_SECONDS"],
        },
        timezone=timezone.utc,
    )


class Runner:
    """One scheduler process: candidate until elected, leader until stopped or deposed."""

    def __init__(
        self, app: Flask, election: Election, jobs: Iterable[JobSpec], *, period: float,
        holder: str | None = None,
    ) -> None:
        self.app = app
        self.election = election
        self.jobs = tuple(jobs)
        self.period = period
        self.holder = holder or holder_name()
        self.stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    @classmethod
    def for_app(cls, app: Flask, jobs: Iterable[JobSpec]) -> Runner:
        """:raises ValueError: when the database cannot host an election."""
        with app.app_context():
            url = db.engine.url
        election = election_for(url, app.config["LABBOOK_SCHEDULER_LOCK_FILE"])
        return cls(app, election, jobs, period=app.config["LABBOOK_SCHEDULER_ELECTION_SECONDS"])

    def run(self) -> None:
        """Campaign and lead until ``stop`` is set; then release the leadership."""
        bind_app(self.app)
        log.info("scheduler %s: candidate, election every %ss", self.holder, self.period)
        try:
            while not self.stop.is_set():
                if self.election.try_acquire():
                    self.lead()
                    if not self.stop.is_set():
                        log.warning("scheduler %s: back to candidate", self.holder)
                self.stop.wait(self.period)
        finally:
            self.election.release()
            self._write(services.clear_leader, self.holder)
            log.info("scheduler %s: stopped", self.holder)

    def lead(self) -> None:
        """Schedule until the lock is lost or ``stop`` is set (blocks meanwhile)."""
        since = now_utc()
        log.info("scheduler %s: elected leader", self.holder)
        self._write(services.record_leader, self.holder, since, since)
        scheduler = build_scheduler(self.app, len(self.jobs))
        scheduler.add_listener(lambda _event: self._start_watchdog(scheduler),
                               EVENT_SCHEDULER_STARTED)
        try:
            self.schedule(scheduler, since)
            scheduler.start()
        except Exception as error:  # noqa: BLE001 - e.g. the database is down: retry later
            log.error("scheduler %s: could not start: %s", self.holder,
                      services.describe_error(error, _secrets(self.app)))
        finally:
            self._stop_scheduler(scheduler, wait=False)
            if self._watchdog is not None:
                self._watchdog.join()
                self._watchdog = None

    def schedule(self, scheduler: BlockingScheduler, now: datetime) -> list[str]:
        """Add every job whose task can be imported (replacing the stored copy, keeping
        its next run time); report the others. Returns the ids scheduled."""
        with self.app.app_context():
            previous = services.stored_next_runs()
        scheduled, missing = [], []
        for job in self.jobs:
            try:
                resolve(job.target)
            except TaskUnavailable as error:
                log.error("job %s is not scheduled: %s", job.id, error)
                self._write(services.record_unavailable, job.id, f"not scheduled: {error}")
                missing.append(job.id)
                continue
            scheduler.add_job(
                JOB_FUNCTION, trigger=IntervalTrigger(seconds=job.seconds), args=[job.id],
                id=job.id, name=job.id, replace_existing=True,
                next_run_time=first_run(previous.get(job.id), now, job.seconds),
            )
            scheduled.append(job.id)
        leftovers = [job_id for job_id in previous if job_id not in scheduled]
        self._write(services.unschedule, missing + leftovers)
        log.info("scheduler %s: scheduling %s", self.holder, ", ".join(
            f"{job.id} every {job.seconds:g} s" for job in self.jobs if job.id in scheduled
        ) or "nothing")
        return scheduled

    def _start_watchdog(self, scheduler: BlockingScheduler) -> None:
        self._watchdog = threading.Thread(
            target=self._watch, args=(scheduler,), name="scheduler-watchdog", daemon=True
        )
        self._watchdog.start()

    def _watch(self, scheduler: BlockingScheduler) -> None:
        """Every period: still the leader? Then heartbeat; if not, stop scheduling now.
        Ends too when the scheduler stopped by itself."""
        while not self.stop.wait(self.period) and scheduler.running:
            if not self.election.still_held():
                log.error("scheduler %s: lost the leadership, stop scheduling", self.holder)
                break
            self._write(self._heartbeat)
        self._stop_scheduler(scheduler, wait=True)

    def _heartbeat(self) -> None:
        now = now_utc()
        if not services.heartbeat(self.holder, now):
            services.record_leader(self.holder, now, now)  # the row was removed or changed

    @staticmethod
    def _stop_scheduler(scheduler: BlockingScheduler, wait: bool) -> None:
        try:
            scheduler.shutdown(wait=wait)
        except SchedulerNotRunningError:
            pass

    def _write(self, function: Callable[..., Any], *args: Any) -> None:
        with self.app.app_context():
            _bookkeep(function, *args)


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT ask for a clean stop (the leader finishes running jobs, then
    releases the lock). The handler only sets the event: no logging, no locks."""
    def _handler(signum: int, _frame: Any) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _handler)
