"""run_job (the function APScheduler stores) and the runner's pieces, in-process: status
rows for success and failure, exceptions swallowed, errors stored without secrets, jobs
scheduled only when their task exists, and the watchdog stopping a deposed leader."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from labbook.extensions import db
from labbook.scheduler import registry, runner, services
from labbook.scheduler.models import JobStatus, SchedulerLeader, apscheduler_jobs
from labbook.scheduler.registry import JobSpec
from tests.scheduler import fake_tasks

OK = JobSpec("deliver_outbox", "tests.scheduler.fake_tasks:count_three", 30)
BOOM = JobSpec("waitlists", "tests.scheduler.fake_tasks:explode", 60)
MISSING = JobSpec("no_shows", "tests.scheduler.not_written_yet:mark_no_shows", 300)


@pytest.fixture
def fake_jobs(monkeypatch):
    monkeypatch.setattr(registry, "JOBS", (OK, BOOM, MISSING))
    fake_tasks.calls.clear()


def _status(job_id: str) -> JobStatus | None:
    db.session.expire_all()
    return db.session.get(JobStatus, job_id)


def test_run_job_records_success_and_passes_now(app, fake_jobs):
    before = datetime.now(timezone.utc)
    assert runner.run_job("deliver_outbox") == 3
    status = _status("deliver_outbox")
    assert status.runs == 1 and status.failures == 0
    assert status.last_result == "3" and status.last_error is None
    assert before <= status.last_started_at <= status.last_finished_at
    assert status.last_success_at == status.last_finished_at
    assert fake_tasks.calls == [status.last_started_at]


def test_run_job_swallows_the_failure_and_records_it_without_secrets(app, fake_jobs, caplog):
    assert runner.run_job("waitlists") is None
    status = _status("waitlists")
    assert status.runs == 1 and status.failures == 1
    assert status.last_success_at is None
    assert status.last_error.startswith(
        "RuntimeError: cannot reach postgresql+psycopg://labbook:***@")
    for secret in ("hunter2", "someone@example.org", "UPDATE users"):
        assert secret not in status.last_error
        assert secret not in caplog.text
    assert "job waitlists failed" in caplog.text and "fake_tasks.py" in caplog.text


def test_run_job_success_after_failure_clears_the_error_and_keeps_counts(
    app, fake_jobs, monkeypatch
):
    runner.run_job("waitlists")
    monkeypatch.setattr(registry, "JOBS", (OK, JobSpec("waitlists", OK.target, 60)))
    runner.run_job("waitlists")
    status = _status("waitlists")
    assert (status.runs, status.failures, status.last_error) == (2, 1, None)


def test_run_job_missing_task_is_a_recorded_failure(app, fake_jobs):
    assert runner.run_job("no_shows") is None
    status = _status("no_shows")
    assert status.failures == 1
    assert "tests.scheduler.not_written_yet" in status.last_error


def test_run_job_keeps_the_secret_key_out_of_the_error(app, fake_jobs, monkeypatch):
    def leak(now=None):
        raise ValueError(f"key was {app.config['SECRET_KEY']}")

    monkeypatch.setattr(fake_tasks, "explode", leak)
    runner.run_job("waitlists")
    assert _status("waitlists").last_error == "ValueError: key was ***"


def test_run_job_without_an_app_logs_and_returns_none(monkeypatch, caplog):
    monkeypatch.setattr(runner, "_app", None)
    assert runner.run_job("deliver_outbox") is None
    assert "no application bound" in caplog.text


@pytest.mark.parametrize("previous, expected", [
    (None, 0),                  # never scheduled: run at once
    (-3600, 0),                 # overdue (scheduler was down): catch up at once
    (10, 10),                   # keep the schedule the last leader left
    (1000, 60),                 # interval shortened since: no later than one interval
])
def test_first_run(previous, expected):
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    before = None if previous is None else now + timedelta(seconds=previous)
    assert runner.first_run(before, now, 60) == now + timedelta(seconds=expected)


class FakeScheduler:
    def __init__(self) -> None:
        self.added: list[dict] = []
        self.shutdowns: list[bool] = []
        self.running = True

    def add_job(self, func, **kwargs):  # type: ignore[no-untyped-def]
        self.added.append({"func": func, **kwargs})

    def shutdown(self, wait=True):  # type: ignore[no-untyped-def]
        self.shutdowns.append(wait)
        self.running = False


def _store(job_id: str, next_run: datetime) -> None:
    db.session.execute(sa.insert(apscheduler_jobs).values(
        id=job_id, next_run_time=next_run.timestamp(), job_state=b"x"))


def test_schedule_adds_existing_tasks_and_reports_missing_ones(app, fake_jobs, caplog):
    now = datetime.now(timezone.utc)
    _store("deliver_outbox", now + timedelta(seconds=20))
    _store("no_shows", now)        # its task has gone: must leave the store
    _store("retired_job", now)     # not in the table any more
    db.session.commit()
    scheduler = FakeScheduler()
    run = runner.Runner(app, election=None, jobs=(OK, MISSING), period=1, holder="h:1")
    assert run.schedule(scheduler, now) == ["deliver_outbox"]
    [job] = scheduler.added
    assert job["func"] == "labbook.scheduler.runner:run_job" and job["args"] == ["deliver_outbox"]
    assert job["id"] == "deliver_outbox" and job["replace_existing"] is True
    assert job["trigger"].interval == timedelta(seconds=30)
    assert abs(job["next_run_time"] - (now + timedelta(seconds=20))) < timedelta(milliseconds=1)
    db.session.expire_all()
    assert set(services.stored_next_runs()) == {"deliver_outbox"}
    assert "not_written_yet" in _status("no_shows").last_error
    assert "job no_shows is not scheduled" in caplog.text


class FakeElection:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers

    def still_held(self) -> bool:
        return self.answers.pop(0) if self.answers else False


def test_watchdog_heartbeats_then_stops_a_deposed_leader(app):
    since = datetime.now(timezone.utc) - timedelta(minutes=5)
    services.record_leader("h:1", since, since)
    db.session.commit()
    run = runner.Runner(app, FakeElection([True, False]), jobs=(), period=0.01, holder="h:1")
    scheduler = FakeScheduler()
    watchdog = threading.Thread(target=run._watch, args=(scheduler,))
    watchdog.start()
    watchdog.join(timeout=30)
    assert not watchdog.is_alive()
    assert scheduler.shutdowns == [True]
    db.session.expire_all()
    row = db.session.get(SchedulerLeader, 1)
    assert row.holder == "h:1" and row.since == since and row.heartbeat_at > since


def test_watchdog_ends_when_the_scheduler_stopped_by_itself(app):
    run = runner.Runner(app, FakeElection([True] * 1000), jobs=(), period=0.01, holder="h:1")
    scheduler = FakeScheduler()
    scheduler.running = False
    run._watch(scheduler)
    assert scheduler.shutdowns == [True]                    # harmless on a stopped one


def test_watchdog_stops_the_scheduler_on_request(app):
    run = runner.Runner(app, FakeElection([True] * 1000), jobs=(), period=30, holder="h:1")
    run.stop.set()
    scheduler = FakeScheduler()
    run._watch(scheduler)
    assert scheduler.shutdowns == [True]


class ScriptedElection:
    """try_acquire() answers from a script; the runner is stopped when it runs out."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.runner: runner.Runner | None = None
        self.released = 0

    def try_acquire(self) -> bool:
        if len(self.answers) == 1:
            self.runner.stop.set()
        return self.answers.pop(0)

    def still_held(self) -> bool:
        return False

    def release(self) -> None:
        self.released += 1


def test_candidate_keeps_polling_then_leads_then_releases_on_stop(app, monkeypatch):
    since = datetime.now(timezone.utc)
    services.record_leader("h:1", since, since)
    db.session.commit()
    election = ScriptedElection([False, False, True])
    run = runner.Runner(app, election, jobs=(), period=0.001, holder="h:1")
    election.runner = run
    led = []
    monkeypatch.setattr(run, "lead", lambda: led.append(True))
    run.run()
    assert led == [True] and election.answers == []
    assert election.released == 1
    db.session.expire_all()
    assert db.session.get(SchedulerLeader, 1) is None       # clean stop clears the row


def test_stop_leaves_another_leaders_row_alone(app):
    since = datetime.now(timezone.utc)
    services.record_leader("other:2", since, since)
    db.session.commit()
    election = ScriptedElection([False])
    run = runner.Runner(app, election, jobs=(), period=0.001, holder="h:1")
    election.runner = run
    run.run()
    db.session.expire_all()
    assert db.session.get(SchedulerLeader, 1).holder == "other:2"


def test_sigterm_and_sigint_ask_for_a_clean_stop():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for sig in saved:
            stop = threading.Event()
            runner.install_signal_handlers(stop)
            os.kill(os.getpid(), sig)
            assert stop.wait(timeout=10)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_create_app_starts_no_scheduler(tmp_path):
    """A web worker builds the app and serves: no APScheduler is even imported, and no
    thread is started (the issue's trap: one scheduler per worker)."""
    code = (
        "import sys, threading\n"
        "from labbook import create_app\n"
        "app = create_app()\n"
        "app.test_client().get('/login')\n"
        "print(sorted(m for m in sys.modules if m.startswith('apscheduler')),"
        " threading.active_count())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env.update(LABBOOK_DATABASE_URL=f"sqlite:///{tmp_path / 'web.sqlite3'}",
               LABBOOK_SECRET_KEY="web-test")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] 1"
