"""``flask --app labbook scheduler``: --list, --run, and a clear refusal of a malformed
LABBOOK_SCHEDULER_INTERVALS."""
from __future__ import annotations

import pytest

from labbook.extensions import db
from labbook.scheduler import registry
from labbook.scheduler.models import JobStatus
from labbook.scheduler.registry import JobSpec


@pytest.fixture
def fake_jobs(monkeypatch):
    monkeypatch.setattr(registry, "JOBS", (
        JobSpec("deliver_outbox", "tests.scheduler.fake_tasks:count_three", 30),
        JobSpec("waitlists", "tests.scheduler.fake_tasks:explode", 60),
    ))


def test_list_prints_the_job_table_with_overrides(app, runner):
    app.config["LABBOOK_SCHEDULER_INTERVALS"] = "booking_reminders=1"
    try:
        result = runner.invoke(args=["scheduler", "--list"])
    finally:
        app.config["LABBOOK_SCHEDULER_INTERVALS"] = ""
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(registry.JOBS)
    assert lines[0].split() == ["booking_reminders", "every", "1", "s",
                                "labbook.bookings.tasks:send_reminders"]


def test_malformed_intervals_stop_the_command_with_a_clear_error(app, runner):
    app.config["LABBOOK_SCHEDULER_INTERVALS"] = "booking_reminders=often"
    try:
        result = runner.invoke(args=["scheduler"])
    finally:
        app.config["LABBOOK_SCHEDULER_INTERVALS"] = ""
    assert result.exit_code == 1
    assert "booking_reminders='often' is not a positive number of seconds" in result.output


def test_run_once_runs_the_job_and_records_it(app, runner, fake_jobs):
    result = runner.invoke(args=["scheduler", "--run", "deliver_outbox"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "deliver_outbox: 3"
    db.session.expire_all()
    assert db.session.get(JobStatus, "deliver_outbox").runs == 1


def test_run_once_reports_a_failure_with_status_1(app, runner, fake_jobs):
    result = runner.invoke(args=["scheduler", "--run", "waitlists"])
    assert result.exit_code == 1
    assert "waitlists failed: RuntimeError" in result.output
    assert "hunter2" not in result.output


def test_run_once_refuses_an_unknown_job(app, runner):
    result = runner.invoke(args=["scheduler", "--run", "nope"])
    assert result.exit_code == 2 and "nope" in result.output
