"""The no-double-booking guarantee under real concurrency (issue 3; SPEC section 4).

32 threads, each with its own app context, session and database connection, ask for the
same or overlapping time on one instrument at the same instant (a ``Barrier`` releases
them together) and commit. Exactly one may win; every other must get ``BookingConflict``,
never another exception. A second variant races HTTP clients against two separate server
processes on loopback. Every test ends by checking, in Python, every slot holder of its
instrument: no two blocked intervals (booking plus buffer, outages) overlap.

Both backends, on a fresh and really committed database (fixture ``committed``). On SQLite
the racers queue on ``BEGIN IMMEDIATE``; on PostgreSQL on the instrument's advisory lock,
with the exclusion constraint behind it.
"""
from __future__ import annotations

import http.client
import itertools
import json
import random
import select
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from labbook.auth.models import User
from labbook.bookings import services, slots
from labbook.bookings.errors import BookingConflict
from labbook.bookings.models import ACTIVE_STATES, Outage, Reservation
from labbook.db import RETRY_SQLSTATES as RETRY, now_utc
from labbook.extensions import db
from labbook.instruments.models import Instrument
from tests.bookings.conftest import Committed, Scene, build_scene

UTC = timezone.utc
THREADS = 32
ROUNDS = 2
BUFFER = 15
MIN = timedelta(minutes=1)
DAY = timedelta(days=1)
# Monday 2030-01-07 10:00 Asia/Shanghai; "now" is a week earlier. Each test has its days.
BASE = datetime(2030, 1, 7, 2, 0, tzinfo=UTC)
NOW = BASE - timedelta(days=7)
FAR = datetime(9000, 1, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]

Span = tuple[datetime, datetime]


def identical(t: datetime) -> list[Span]:
    return [(t, t + 60 * MIN)] * THREADS


def staggered(t: datetime) -> list[Span]:
    """Different starts and ends that all contain [t+225 min, t+255 min)."""
    return [(t + (i % 16) * 15 * MIN, t + (255 + 15 * (i % 5)) * MIN) for i in range(THREADS)]


def adjacent(t: datetime) -> list[Span]:
    """Back-to-back hours: they touch, and only the buffer makes them clash."""
    return [(t, t + 60 * MIN) if i % 2 else (t + 60 * MIN, t + 120 * MIN) for i in range(THREADS)]


LAYOUTS: dict[str, Callable[[datetime], list[Span]]] = {
    "identical": identical, "staggered": staggered, "adjacent_within_buffer": adjacent,
}


@dataclass
class Job:
    """One racer: ``act`` runs in its own session after the start signal and says whether
    it won; ``block`` is the blocked interval it asks for."""

    act: Callable[[], bool]
    block: Span


def run_unit(act: Callable[[], bool], attempts: int = 4) -> bool:
    """Run ``act`` and commit, as the API and the views do (``run_with_retry``): a
    transaction that PostgreSQL aborts as a deadlock victim (40P01) or whose insert the
    exclusion constraint refused (23P01) runs again; both are possible only against a
    writer that skipped the instrument lock, i.e. the raw outage inserts below. On the
    next run the booking's check sees that row and refuses with ``BookingConflict``."""
    for attempt in range(1, attempts + 1):
        try:
            result = act()
            db.session.commit()
            return result
        except sa.exc.DBAPIError as error:
            db.session.rollback()
            if getattr(error.orig, "sqlstate", None) not in RETRY or attempt == attempts:
                raise
    raise AssertionError("unreachable")


def race(committed: Committed, jobs: list[Job]) -> list[bool]:
    """Run the jobs in threads released together; each commits. Returns who won.

    A racer that loses must lose with ``BookingConflict``; any other exception fails."""
    barrier = threading.Barrier(len(jobs), timeout=60)
    won: list[bool | str] = ["did not finish"] * len(jobs)

    def contender(index: int, job: Job) -> None:
        with committed.app.app_context():
            try:
                if committed.backend == "postgresql":
                    # Hold a connection before the signal. (Not on SQLite: opening the
                    # transaction there takes the write lock, and the others would never
                    # reach the barrier.)
                    db.session.connection()
                barrier.wait()
                won[index] = run_unit(job.act)
            except BookingConflict:
                db.session.rollback()
                won[index] = False
            except Exception:  # noqa: BLE001 - reported below as the failure
                db.session.rollback()
                won[index] = traceback.format_exc()

    threads = [threading.Thread(target=contender, args=item) for item in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    errors = [w for w in won if not isinstance(w, bool)]
    assert not errors, f"{len(errors)} racer(s) failed otherwise; first:\n{errors[0]}"
    return [bool(w) for w in won]


def book(scene: Scene, index: int, span: Span) -> Job:
    def act() -> bool:
        user = db.session.get(User, scene.booker_ids[index % len(scene.booker_ids)])
        instrument = db.session.get(Instrument, scene.instrument_id)
        services.create_booking(user, instrument, *span, purpose=f"race {index}", now=NOW)
        return True

    return Job(act, (span[0], span[1] + BUFFER * MIN))


def schedule_outage(instrument_id: int, start: datetime, end: datetime) -> bool:
    """Write an outage the way the services write slot holders: take the instrument lock,
    check for overlaps, insert (turning the constraint's refusal into a loss, as
    ``outages.hold_window`` does). Returns False when the time is taken."""
    slots.lock_instrument(instrument_id)
    if slots.overlapping(instrument_id, start, end):
        return False
    # Like the services: a writer that skipped the lock may still beat us to the insert.
    return insert_outage_raw(instrument_id, start, end)


def insert_outage_raw(instrument_id: int, start: datetime, end: datetime) -> bool:
    """Insert an outage behind the services' back (no lock, no check): only PostgreSQL's
    exclusion constraint stands in the way (23P01; or 40P01 when two such writers deadlock
    on each other's index entries, which the constraint resolves by aborting one)."""
    try:
        with db.session.begin_nested():
            db.session.add(_outage(instrument_id, start, end))
            db.session.flush()
    except sa.exc.DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) in ("23P01", "40P01"):
            return False
        raise
    return True


def _outage(instrument_id: int, start: datetime, end: datetime) -> Outage:
    return Outage(instrument_id=instrument_id, start_at=start, end_at=end, block_end=end,
                  state="scheduled", outage_kind="repair", title="race")


def outage_job(scene: Scene, span: Span, writer: Callable[[int, datetime, datetime], bool]) -> Job:
    return Job(lambda: writer(scene.instrument_id, *span), span)


def meets(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def holders(committed: Committed, instrument_id: int, since: datetime = BASE - DAY,
            until: datetime = FAR) -> list[Span]:
    """Blocked intervals of every slot holder of the instrument starting in the window."""
    def query() -> list[Span]:
        rows = db.session.execute(sa.select(Reservation.start_at, Reservation.block_end).where(
            Reservation.instrument_id == instrument_id, Reservation.state.in_(ACTIVE_STATES),
            Reservation.start_at >= since, Reservation.start_at < until))
        return [(start, block_end or FAR) for start, block_end in rows]

    return committed.run(query)


def assert_no_overlap(committed: Committed, instrument_id: int) -> None:
    spans = holders(committed, instrument_id, datetime(1970, 1, 1, tzinfo=UTC))
    clashes = [(a, b) for a, b in itertools.combinations(spans, 2) if meets(a, b)]
    assert not clashes, f"{len(clashes)} overlapping pair(s) of slot holders: {clashes[:3]}"


@pytest.fixture(scope="module")
def scene(committed: Committed) -> Scene:
    return build_scene(committed, THREADS, buffer_minutes=BUFFER)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_create_booking_race_has_exactly_one_winner(committed, scene, layout):
    first = BASE + 2 * list(LAYOUTS).index(layout) * DAY
    for day in (first + n * DAY for n in range(ROUNDS)):
        spans = LAYOUTS[layout](day)
        won = race(committed, [book(scene, i, span) for i, span in enumerate(spans)])
        assert won.count(True) == 1, f"{won.count(True)} winners"
        assert len(holders(committed, scene.instrument_id, day, day + DAY)) == 1
    assert_no_overlap(committed, scene.instrument_id)


def test_create_booking_race_losers_all_clash_with_a_winner(committed, scene):
    """A random layout: several may win, but only disjointly, and nobody loses a time that
    was free (every loser clashes with a winner)."""
    for day in (BASE + (6 + n) * DAY for n in range(ROUNDS)):
        rng = random.Random(day.toordinal())
        spans = [(s, s + rng.randrange(2, 9) * 15 * MIN)
                 for s in (day + rng.randrange(0, 24) * 15 * MIN for _ in range(THREADS))]
        jobs = [book(scene, i, span) for i, span in enumerate(spans)]
        won = race(committed, jobs)
        winners = [job.block for job, w in zip(jobs, won) if w]
        assert winners and all(
            any(meets(job.block, w) for w in winners) for job, w in zip(jobs, won) if not w)
        assert sorted(holders(committed, scene.instrument_id, day, day + DAY)) == sorted(winners)
    assert_no_overlap(committed, scene.instrument_id)


def test_outage_racing_bookings_has_exactly_one_winner(committed, scene):
    """Outage writers race 28 booking threads for overlapping time. Two writers go through
    lock-and-check like the services; on PostgreSQL two more insert raw, so the exclusion
    constraint alone must stop them, and a booking that collides with a raw insert must
    still come back as ``BookingConflict`` (after a rerun when the constraint refused its
    insert or PostgreSQL picked it as a deadlock victim, see ``run_unit``). SQLite has no
    constraint: there every writer must check under ``BEGIN IMMEDIATE``, so all four
    check."""
    raw = insert_outage_raw if committed.backend == "postgresql" else schedule_outage
    for day in (BASE + (8 + n) * DAY for n in range(ROUNDS)):
        outage = (day + 210 * MIN, day + 300 * MIN)
        jobs = [book(scene, i, span) for i, span in enumerate(staggered(day)[:THREADS - 4])]
        jobs += [outage_job(scene, outage, writer)
                 for writer in (schedule_outage, raw, schedule_outage, raw)]
        won = race(committed, jobs)
        assert won.count(True) == 1, f"{won.count(True)} winners"
        assert len(holders(committed, scene.instrument_id, day, day + DAY)) == 1
    assert_no_overlap(committed, scene.instrument_id)


# -- two app processes serving HTTP on loopback ---------------------------------------------

SERVER = """
import logging, sys
from config import TestConfig
from labbook import create_app
from werkzeug.serving import make_server

class Config(TestConfig):
    SQLALCHEMY_DATABASE_URI = sys.argv[1]
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_size": 20, "max_overflow": 0, "pool_timeout": 60}

logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = make_server("127.0.0.1", 0, create_app(Config), threaded=True)
print(server.port, flush=True)
server.serve_forever()
"""


def _read_port(process: subprocess.Popen, log: Path, limit: float = 60.0) -> int:
    """The port the server printed once it listens (a bounded wait, not a sleep)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if line.strip().isdigit():
                return int(line)
            if not line:
                break  # end of output: the process died
    raise AssertionError(f"server did not start:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def servers(committed: Committed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list]:
    """Two separate server processes on the shared database; their ports."""
    logs = [tmp_path_factory.mktemp("server") / "stderr.log" for _ in range(2)]
    processes = []
    try:
        for log in logs:
            with log.open("w") as stderr:
                processes.append(subprocess.Popen(
                    [sys.executable, "-c", SERVER, committed.url], cwd=ROOT,
                    stdout=subprocess.PIPE, stderr=stderr, text=True))
        yield [_read_port(process, log) for process, log in zip(processes, logs)]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()


def http_race(ports: list[int], scene: Scene, spans: list[Span]) -> list[tuple[int, object]]:
    """POST every span at once, alternating between the servers: (status, JSON body)."""
    barrier = threading.Barrier(len(spans), timeout=60)
    answers: list[tuple[int, object]] = [(0, "did not finish")] * len(spans)

    def client(index: int, span: Span) -> None:
        body = json.dumps({
            "instrument_id": scene.instrument_id, "start": span[0].isoformat(),
            "end": span[1].isoformat(), "purpose": f"race {index}",
            "account_id": scene.account_ids[index]})
        headers = {"Authorization": f"Bearer {scene.tokens[index]}",
                   "Content-Type": "application/json"}
        connection = http.client.HTTPConnection("127.0.0.1", ports[index % 2], timeout=60)
        try:
            barrier.wait()
            connection.request("POST", "/api/v1/bookings", body, headers)
            response = connection.getresponse()
            text = response.read().decode()
            try:
                answers[index] = (response.status, json.loads(text))
            except ValueError:
                answers[index] = (response.status, text[:500])
        except Exception:  # noqa: BLE001 - reported by the caller
            answers[index] = (0, traceback.format_exc())
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=item) for item in enumerate(spans)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def test_post_booking_race_between_two_processes_has_exactly_one_winner(committed, servers):
    scene = build_scene(committed, THREADS, tokens=True, buffer_minutes=BUFFER)
    # The API uses the wall clock, so the times are days from now, on whole hours.
    first = (now_utc() + 2 * DAY).replace(minute=0, second=0, microsecond=0)
    for n, layout in enumerate(LAYOUTS.values()):
        day = first + n * DAY
        answers = http_race(servers, scene, layout(day))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [201] + [409] * (THREADS - 1), answers
        for status, body in answers:
            assert isinstance(body, dict), body
            if status == 201:
                assert body["state"] == "confirmed" and body["id"]
            else:
                assert body["error"]["code"] == "conflict" and body["error"]["conflicts"]
        assert len(holders(committed, scene.instrument_id, day, day + DAY)) == 1
    assert_no_overlap(committed, scene.instrument_id)
