"""The job table: which timed jobs exist, the task function each runs and how often.

A job names its task by ``"module:function"`` and is resolved only when it runs (and once
when a scheduler becomes leader, to report tasks that cannot be imported): the features'
``tasks.py`` modules are imported lazily, so a missing or broken one disables that job
alone, never the scheduler.

Intervals default to the values below; ``LABBOOK_SCHEDULER_INTERVALS``
(``"job_id=seconds,job_id=seconds"``) overrides some of them, e.g. in tests or on a
small site that wants reminders checked every minute.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class JobSpec:
    """One timed job: its id (also the APScheduler job id), its task and its interval."""

    id: str
    target: str  # "package.module:function"
    seconds: float

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]


JOBS: tuple[JobSpec, ...] = (
    JobSpec("booking_reminders", "labbook.bookings.tasks:send_reminders", 300),
    JobSpec("no_shows", "labbook.bookings.tasks:mark_no_shows", 300),
    JobSpec("auto_check_out", "labbook.bookings.tasks:auto_check_out", 300),
    JobSpec("expire_pending", "labbook.bookings.tasks:expire_pending", 300),
    JobSpec("approval_reminders", "labbook.bookings.tasks:remind_approvers", 900),
    JobSpec("waitlists", "labbook.bookings.tasks:process_waitlists", 60),
    JobSpec("qualification_expiry", "labbook.bookings.tasks:qualification_expiry", 3600),
    JobSpec("deliver_outbox", "labbook.notifications.tasks:deliver_outbox", 30),
    JobSpec("maintenance", "labbook.care.tasks:materialise_maintenance", 3600),
    JobSpec("instrument_status", "labbook.care.tasks:sync_instrument_statuses", 300),
    JobSpec("monthly_statements", "labbook.billing.tasks:draft_statements", 3600),
)
JOB_IDS = tuple(job.id for job in JOBS)


class IntervalError(ValueError):
    """``LABBOOK_SCHEDULER_INTERVALS`` cannot be understood; the message says why."""


class TaskUnavailable(LookupError):
    """A job's task function cannot be imported (module missing or broken)."""


def parse_intervals(raw: str | None) -> dict[str, float]:
    """Parse ``"job_id=seconds,job_id=seconds"`` (spaces allowed, empty means none).

    :raises IntervalError: for an entry without ``=``, an unknown job id, a job given twice,
        or a value that is not a positive number of seconds.
    """
    result: dict[str, float] = {}
    for entry in (raw or "").split(","):
        if not entry.strip():
            continue
        job_id, sep, value = (part.strip() for part in entry.partition("="))
        if not sep or not job_id:
            raise IntervalError(
                f"LABBOOK_SCHEDULER_INTERVALS: {entry.strip()!r} is not 'job_id=seconds'"
            )
        if job_id not in JOB_IDS:
            raise IntervalError(
                f"LABBOOK_SCHEDULER_INTERVALS: unknown job {job_id!r} "
                f"(known: {', '.join(JOB_IDS)})"
            )
        if job_id in result:
            raise IntervalError(f"LABBOOK_SCHEDULER_INTERVALS: {job_id!r} is given twice")
        result[job_id] = _seconds(job_id, value)
    return result


def _seconds(job_id: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise IntervalError(
            f"LABBOOK_SCHEDULER_INTERVALS: {job_id}={value!r} is not a positive number of seconds"
        )
    return seconds


def job_table(config: Mapping[str, Any]) -> tuple[JobSpec, ...]:
    """The jobs with the intervals in effect under ``config`` (the app's config).

    :raises IntervalError: when ``LABBOOK_SCHEDULER_INTERVALS`` is malformed.
    """
    overrides = parse_intervals(config.get("LABBOOK_SCHEDULER_INTERVALS"))
    return tuple(
        replace(job, seconds=overrides[job.id]) if job.id in overrides else job for job in JOBS
    )


def get_job(job_id: str) -> JobSpec:
    """:raises KeyError: for an id that is not in the job table."""
    for job in JOBS:
        if job.id == job_id:
            return job
    raise KeyError(job_id)


def resolve(target: str) -> Callable[..., Any]:
    """Import ``"module:function"`` and return the function.

    :raises TaskUnavailable: when the module cannot be imported or lacks the function; the
        message names the target and the cause.
    """
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any import failure disables this job only
        raise TaskUnavailable(
            f"task {target} is not available: {type(error).__name__}: {error}"
        ) from error
    function = getattr(module, attribute, None)
    if not callable(function):
        raise TaskUnavailable(f"task {target} is not available: {module_name} has no {attribute}")
    return function
