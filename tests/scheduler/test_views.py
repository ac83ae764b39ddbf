"""GET /admin/scheduler: leader (active, stale, none), the job table with last and next
runs in the centre's zone, a broken interval setting shown, and admins only."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from labbook.extensions import db
from labbook.scheduler import services
from labbook.scheduler.models import JobStatus, apscheduler_jobs

URL = "/admin/scheduler"


@pytest.fixture
def admin(login_as):
    return login_as("admin")


def _page(client) -> str:
    response = client.get(URL)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _row(html: str, job_id: str) -> str:
    start = html.index(f'<tr id="job-{job_id}">')
    return html[start:html.index("</tr>", start)]


def test_status_shows_the_leader_and_each_job(app, client, admin):
    now = datetime.now(timezone.utc)
    services.record_leader("sched-host:4242", now - timedelta(hours=1), now)
    db.session.add(JobStatus(
        job_id="deliver_outbox", last_started_at=datetime(2030, 1, 7, 2, 0, 0, tzinfo=timezone.utc),
        last_finished_at=datetime(2030, 1, 7, 2, 0, 1, tzinfo=timezone.utc),
        last_success_at=datetime(2030, 1, 7, 2, 0, 1, tzinfo=timezone.utc),
        last_result="12", runs=40, failures=2))
    db.session.add(JobStatus(
        job_id="waitlists", last_started_at=datetime(2030, 1, 7, 2, 5, tzinfo=timezone.utc),
        last_finished_at=datetime(2030, 1, 7, 2, 6, tzinfo=timezone.utc),
        last_error="RuntimeError: <boom>", runs=3, failures=3))
    db.session.execute(sa.insert(apscheduler_jobs).values(
        id="deliver_outbox", job_state=b"x",
        next_run_time=datetime(2030, 1, 7, 2, 0, 31, tzinfo=timezone.utc).timestamp()))
    db.session.commit()
    html = _page(client)
    assert "sched-host:4242" in html and 'id="leader-ok"' in html
    outbox = _row(html, "deliver_outbox")
    # UTC 02:00 is 10:00 in the centre's zone (Asia/Shanghai)
    assert "2030-01-07 10:00:00 CST" in outbox              # last started
    assert "2030-01-07 10:00:31 CST" in outbox              # next run, from the job store
    assert "every\u00a030\u00a0s" in outbox and "12 handled" in outbox
    assert "<td>40</td>" in outbox and "<td>2</td>" in outbox
    failing = _row(html, "waitlists")
    assert "RuntimeError: &lt;boom&gt;" in failing and "Failed" in failing
    assert "not scheduled" in failing
    reminders = _row(html, "booking_reminders")
    assert "Never run" in reminders and "every\u00a05\u00a0min" in reminders
    assert "every\u00a01\u00a0h" in _row(html, "qualification_expiry")
    assert 'href="/admin/outbox"' in html


def test_status_says_when_there_is_no_leader(app, client, admin):
    html = _page(client)
    assert 'id="no-leader"' in html and "leader-holder" not in html


def test_status_flags_a_stale_leader(app, client, admin):
    old = datetime.now(timezone.utc) - timedelta(minutes=10)
    services.record_leader("gone:1", old, old)
    db.session.commit()
    html = _page(client)
    assert 'id="stale-leader"' in html and "gone:1" in html
    assert 'id="leader-ok"' not in html


def test_stale_threshold_is_a_few_election_periods():
    assert services.stale_after(5) == timedelta(seconds=15)
    assert services.stale_after(60) == timedelta(seconds=180)
    assert services.stale_after(0.5) == timedelta(seconds=15)


def test_status_shows_a_broken_interval_setting(app, client, admin):
    app.config["LABBOOK_SCHEDULER_INTERVALS"] = "waitlists=never"
    try:
        html = _page(client)
    finally:
        app.config["LABBOOK_SCHEDULER_INTERVALS"] = ""
    assert 'id="config-error"' in html and "waitlists=&#39;never&#39;" in html
    assert "every\u00a01\u00a0min" in _row(html, "waitlists")          # the default is shown


def test_status_shows_a_running_job(app, client, admin):
    db.session.add(JobStatus(job_id="no_shows",
                             last_started_at=datetime.now(timezone.utc), runs=0, failures=0))
    db.session.commit()
    assert "Running" in _row(_page(client), "no_shows")


@pytest.mark.parametrize("role", ["researcher", "team_lead", "facility_manager", "finance"])
def test_status_is_for_admins_only(app, client, login_as, role):
    login_as(role)
    assert client.get(URL).status_code == 403


def test_status_needs_a_login(app, client):
    response = client.get(URL)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
