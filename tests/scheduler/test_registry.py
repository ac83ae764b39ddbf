"""The job table: defaults, LABBOOK_SCHEDULER_INTERVALS overrides and their errors, and
lazy resolution of task functions."""
from __future__ import annotations

import pytest

from labbook.scheduler.registry import (
    JOB_IDS,
    IntervalError,
    TaskUnavailable,
    get_job,
    job_table,
    parse_intervals,
    resolve,
)


def test_job_table_defaults_match_the_agreed_interface():
    table = {job.id: (job.target, job.seconds) for job in job_table({})}
    assert table == {
        "booking_reminders": ("labbook.bookings.tasks:send_reminders", 300),
        "no_shows": ("labbook.bookings.tasks:mark_no_shows", 300),
        "auto_check_out": ("labbook.bookings.tasks:auto_check_out", 300),
        "expire_pending": ("labbook.bookings.tasks:expire_pending", 300),
        "approval_reminders": ("labbook.bookings.tasks:remind_approvers", 900),
        "waitlists": ("labbook.bookings.tasks:process_waitlists", 60),
        "qualification_expiry": ("labbook.bookings.tasks:qualification_expiry", 3600),
        "deliver_outbox": ("labbook.notifications.tasks:deliver_outbox", 30),
        "maintenance": ("labbook.care.tasks:materialise_maintenance", 3600),
        "instrument_status": ("labbook.care.tasks:sync_instrument_statuses", 300),
        "monthly_statements": ("labbook.billing.tasks:draft_statements", 3600),
    }


def test_parse_intervals_reads_pairs_with_spaces_and_fractions():
    assert parse_intervals(" booking_reminders = 1 , deliver_outbox=0.5,") == {
        "booking_reminders": 1.0, "deliver_outbox": 0.5,
    }


@pytest.mark.parametrize("raw", [None, "", " , "])
def test_parse_intervals_empty_means_no_override(raw):
    assert parse_intervals(raw) == {}


def test_job_table_applies_overrides_only_to_named_jobs():
    table = {job.id: job.seconds for job in job_table(
        {"LABBOOK_SCHEDULER_INTERVALS": "waitlists=5"})}
    assert table["waitlists"] == 5
    assert table["deliver_outbox"] == 30


@pytest.mark.parametrize("raw, expected", [
    ("booking_reminders", "is not 'job_id=seconds'"),
    ("=5", "is not 'job_id=seconds'"),
    ("reminders=5", "unknown job 'reminders'"),
    ("waitlists=5,waitlists=6", "'waitlists' is given twice"),
    ("waitlists=soon", "waitlists='soon' is not a positive number of seconds"),
    ("waitlists=0", "is not a positive number of seconds"),
    ("waitlists=-3", "is not a positive number of seconds"),
    ("waitlists=nan", "is not a positive number of seconds"),
    ("waitlists=inf", "is not a positive number of seconds"),
])
def test_parse_intervals_bad_values_give_a_clear_error(raw, expected):
    with pytest.raises(IntervalError) as info:
        parse_intervals(raw)
    assert expected in str(info.value)
    assert str(info.value).startswith("LABBOOK_SCHEDULER_INTERVALS: ")


def test_unknown_job_error_lists_the_known_ids():
    with pytest.raises(IntervalError) as info:
        job_table({"LABBOOK_SCHEDULER_INTERVALS": "nope=1"})
    assert all(job_id in str(info.value) for job_id in JOB_IDS)


def test_resolve_imports_the_function_lazily():
    function = resolve("tests.scheduler.fake_tasks:count_three")
    assert function(now=None) == 3


@pytest.mark.parametrize("target, cause", [
    ("tests.scheduler.no_such_module:run", "ModuleNotFoundError"),
    ("tests.scheduler.fake_tasks:no_such_function", "has no no_such_function"),
    ("tests.scheduler.fake_tasks:calls", "has no calls"),
])
def test_resolve_reports_a_missing_task(target, cause):
    with pytest.raises(TaskUnavailable) as info:
        resolve(target)
    assert target in str(info.value) and cause in str(info.value)


def test_get_job_unknown_id():
    assert get_job("deliver_outbox").seconds == 30
    with pytest.raises(KeyError):
        get_job("nope")
