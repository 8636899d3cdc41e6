"""Events for the Knative broker wait in the database's queue until the broker takes them: a
study submitted while the broker is away is stored at once, and its start is posted by the
service that runs once the broker is back, even after a restart; an event the broker refuses
for good is dropped after one post. A queue write that fails for now (the database held past its
busy timeout) is made as soon as the database is free, without a traceback."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from http_helpers import BROKER_PATH, Service, Sink, free_port
from waiting import eventually
from write_lock import WriteLock

from functions import sink_senders
from functions.adapters import cloudevents_http, cloudevents_sink
from functions.adapters.sqlite_queue import SqliteQueue
from functions.core.errors import TemporaryError
from functions.core.events import Event
from functions.sink_senders import SinkSenders

ROOT = Path(__file__).resolve().parents[1]


def submit(service: Service, name: str) -> int:
    definition = study_definition(name=name, parallelism=1, maxTrials=1)
    return service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})[0]


def waiting(service: Service) -> float:
    """The events not yet taken by the broker, as ``/metrics`` counts them."""
    for line in service.request("GET", "/metrics")[2].decode().splitlines():
        if line.startswith("katuna_queue_depth "):
            return float(line.split()[1])
    raise AssertionError("no katuna_queue_depth in /metrics")


def settled(service: Service, count: float, timeout: float = 30.0) -> None:
    eventually(lambda: waiting(service) == count, f"{count} events waiting", timeout)


@contextmanager
def sending(queue: SqliteQueue, broker: Sink, **options) -> Iterator[SinkSenders]:
    """One sender posting ``queue``'s events to ``broker``, started; stopped, and the broker
    closed, as the block ends."""
    senders = SinkSenders(queue, cloudevents_sink.Sink(broker.url), senders=1, **options)
    senders.start()
    try:
        yield senders
    finally:
        senders.stop()
        broker.close()


@pytest.mark.slow
def test_the_stand_in_broker_takes_events_at_its_address_only_as_a_brokers_ingress_does():
    """Knative's Broker ingress answers 404 to a post beside its ``/<namespace>/<broker>``
    path, so a sender that lost the path of ``K_SINK`` would be caught here too."""
    broker = Sink()
    try:
        base = broker.url.removesuffix(BROKER_PATH)
        answers = [_posted(url) for url in (base + "/", base + "/katuna/other", broker.url, broker.url + "/")]
    finally:
        broker.close()
    assert answers == [404, 404, 202, 202]
    assert broker.misdirected == ["/", "/katuna/other"] and len(broker.received) == 2


def _posted(url: str) -> int:
    """The answer's status to an event posted to ``url``."""
    headers, body = cloudevents_http.to_http(Event(type="dev.katuna.study.created", data={}))
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers, method="POST")) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.timeout(120)
def test_a_start_posted_while_the_broker_is_away_reaches_it_after_a_restart(tmp_path: Path):
    port = free_port()
    env = {"KATUNA_EVENTS": "reply", "K_SINK": f"http://127.0.0.1:{port}{BROKER_PATH}"}
    service = Service(tmp_path, workers=1, **env)
    try:
        assert submit(service, "while-away") == 201, "stored at once, with no broker to take its start"
        assert waiting(service) == 1.0
    finally:
        service.close()
    broker = Sink(port=port)
    service = Service(tmp_path, workers=1, **env)
    try:
        [(headers, body)] = broker.wait(1)
        assert headers["ce-type"] == "dev.katuna.study.created" and json.loads(body)["study"] == "while-away"
        settled(service, 0.0)
    finally:
        service.close()
        broker.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_event_whose_post_a_stopping_service_cut_is_posted_by_the_next_one_at_once(tmp_path: Path):
    """A new revision replaces the pods while a post waits on the channel: the stopping service
    gives the event back, where its lease would keep it from the new pods for 47 minutes."""
    posts, answer_first = Counter[str](), threading.Event()

    def hold_the_first() -> None:
        posts["seen"] += 1
        if posts["seen"] == 1:
            answer_first.wait(60)

    broker = Sink(answering=hold_the_first)
    env = {"KATUNA_EVENTS": "reply", "K_SINK": broker.url}
    try:
        service = Service(tmp_path, workers=1, **env)
        try:
            assert submit(service, "cut-short") == 201
            [(cut, _)] = broker.wait(1)
        finally:
            service.close()
        service = Service(tmp_path, workers=1, **env)
        try:
            received = broker.wait(2)
            assert len(received) == 2, "the cut post's event is still taken by the service that stopped"
            again, body = received[1]
            assert again["ce-id"] == cut["ce-id"] and json.loads(body)["study"] == "cut-short"
            settled(service, 0.0)
        finally:
            service.close()
    finally:
        answer_first.set()
        broker.close()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_an_event_the_broker_refuses_for_good_is_dropped_after_one_post(tmp_path: Path):
    broker = Sink(status=400)
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", K_SINK=broker.url)
    try:
        assert submit(service, "refused") == 201
        broker.wait(1)
        settled(service, 0.0)
        time.sleep(1.5)
        assert len(broker.received) == 1, "not posted again: the broker will never take it"
        assert "dropped dev.katuna.study.created" in (tmp_path / "serve.log").read_text()
    finally:
        service.close()
        broker.close()


@pytest.mark.parametrize(("status", "posts"), [(202, 1), (503, 2)], ids=["sent", "put-back"])
def test_a_queue_write_failing_while_the_database_is_held_is_made_once_it_is_free(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int, posts: int):
    """Another writer holds the database past the busy timeout as the broker answers a post: the
    sender logs a line, no traceback, and makes the event's queue write (done once sent, or put
    back for a later post) as soon as the lock is gone, instead of leaving the event taken, out
    of every sender's reach, for its lease."""
    lock = WriteLock(tmp_path / "queue.db")
    held = threading.Event()

    def hold_the_queue_once() -> None:
        if not held.is_set():
            held.set()
            lock.hold()
            threading.Timer(0.5, lock.release).start()

    queue = SqliteQueue(tmp_path / "queue.db", busy_timeout=0.05)
    queue.put(Event("test.sent", {"name": "a"}))
    broker = Sink(status=status, answering=hold_the_queue_once)
    caplog.set_level(logging.WARNING, logger="katuna")
    with sending(queue, broker):
        assert len(broker.wait(posts)) == posts, "put back and posted again once the database was free"
        if status == 202:
            eventually(lambda: queue.depth() == 0, "the event sent left the queue")
    queue.close()
    lock.close()
    assert "the event queue cannot be written yet" in caplog.text
    assert [r.getMessage() for r in caplog.records if r.exc_info] == [], "a temporary failure is one line"


def test_a_post_the_broker_refuses_leaves_no_connection_to_it_open():
    """Before, the error a refusal (here 503) raised kept the connection its unread answer came
    on, until a garbage collection freed the error: a socket for every post refused, as long as
    anything held the error (a logged traceback, a cycle through its frames)."""
    broker = Sink(status=503)
    try:
        with pytest.raises(TemporaryError, match="503") as refused:
            cloudevents_sink.Sink(broker.url).send(Event("test.sent", {"name": "a"}), timeout=30)
        assert refused.value.__cause__ is not None, "the error is still held"
        assert _connections_to(urllib.parse.urlsplit(broker.url).port) == []
    finally:
        broker.close()


def _connections_to(port: int | None) -> list[str]:
    """The inodes of this process's TCP sockets whose far end is loopback port ``port``, whatever
    their state (one the server closed is still open here)."""
    mine = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            mine.add(os.readlink(fd))
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and f"socket:[{fields[9]}]" in mine:
            found.append(fields[9])
    return found


def test_taking_an_event_while_the_database_is_held_fails_in_a_line_and_is_tried_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """A sender's take that finds the database held past the busy timeout logs one line, no
    traceback, and takes the event once the lock is gone."""
    queue = SqliteQueue(tmp_path / "queue.db", busy_timeout=0.05)
    queue.put(Event("test.sent", {"name": "a"}))
    lock = WriteLock(tmp_path / "queue.db")
    lock.hold()
    broker = Sink()
    caplog.set_level(logging.WARNING, logger="katuna")
    with sending(queue, broker):
        eventually(lambda: "failed for now" in caplog.text, "the failed take logged")
        lock.release()
        assert len(broker.wait(1)) == 1
        eventually(lambda: queue.depth() == 0, "the event sent left the queue")
    queue.close()
    lock.close()
    assert f"the database {tmp_path / 'queue.db'} is busy" in caplog.text
    assert [r.getMessage() for r in caplog.records if r.exc_info] == [], "a temporary failure is one line"


def test_a_take_given_up_as_katuna_stops_is_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """As the service stops while another process holds the database, a sender's take gives its
    wait up: said at debug level only, as the same take given up by the busy timeout warns."""
    queue = SqliteQueue(tmp_path / "queue.db", stopped=lambda: True)
    queue.put(Event("test.sent", {"name": "a"}))
    lock = WriteLock(tmp_path / "queue.db")
    lock.hold()
    broker = Sink()
    caplog.set_level(logging.DEBUG, logger="katuna")
    try:
        with sending(queue, broker):
            eventually(lambda: "failed for now" in caplog.text, "the given-up take logged")
    finally:
        lock.close()
        queue.close()
    said = {r.levelno for r in caplog.records if "failed for now" in r.getMessage()}
    assert said == {logging.DEBUG} and "katuna is stopping" in caplog.text, said


def test_a_queue_write_failing_for_good_is_logged_with_its_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """An error that is no storage failure (here a trigger another connection made refuses the
    sender's write) is not katuna's temporary error: it is logged with its traceback, to be
    looked into."""
    queue = SqliteQueue(tmp_path / "queue.db")
    queue.put(Event("test.sent", {"name": "a"}))

    def refuse_writes() -> None:
        with closing(sqlite3.connect(tmp_path / "queue.db", isolation_level=None)) as other:
            other.execute("CREATE TRIGGER refused BEFORE DELETE ON event_queue BEGIN SELECT RAISE(ABORT, "
                          "'no deletes here'); END")

    broker = Sink(answering=refuse_writes)
    caplog.set_level(logging.WARNING, logger="katuna")
    with sending(queue, broker):
        broker.wait(1)
        failed = eventually(lambda: [r for r in caplog.records if r.exc_info], "a failure logged with its traceback")
    assert "no deletes here" in str(failed[0].exc_info[1])
    assert "cannot be written yet" not in caplog.text
    queue.close()


def test_a_post_waits_as_long_as_the_channel_may_wait_on_the_widest_fan_out_deployed():
    """The deployed Triggers (``knative/triggers.yaml``) decide how many deliveries a fan-out of
    one event type waits on, each up to the channel's wait: a sender hanging up sooner cancels
    them half made."""
    triggers = [doc for doc in yaml.safe_load_all((ROOT / "knative" / "triggers.yaml").read_text()) if doc]
    per_type = Counter(f["exact"]["type"] for t in triggers for f in t["spec"].get("filters", []) if "exact" in f)
    assert max(per_type.values()) >= 3
    assert sink_senders.FANOUT_WAIT * max(per_type.values()) <= sink_senders.SEND_TIMEOUT
    assert sink_senders.LEASE_SECONDS > sink_senders.SEND_TIMEOUT


class WallClock:
    """A wall clock the test moves: each reading is counted, so the test can tell that the
    senders have looked at the queue since it last moved the clock."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return self.now


def _queued(db: Path) -> tuple[int, str | None, float] | None:
    """The one queued event's posts so far, its taker and when it is due; None once it left."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT attempts, taken_by, due FROM event_queue").fetchone()


def _put_back(db: Path, post: int) -> tuple[int, str | None, float] | None:
    """The queued event once its ``post``-th post is put back; a later post, or its drop, fails the test."""
    row = _queued(db)
    assert row is not None and row[0] <= post, f"posted again before its wait after post {post}: {row}"
    return row if row[0] == post and row[1] is None else None


@pytest.mark.timeout(120)
def test_a_sink_failing_for_now_is_posted_to_at_each_wait_of_the_schedule_then_the_event_is_dropped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """The broker away for minutes: each post waits its turn in the queue, the waits doubling
    from 1 s to 256 s (not taken again at once past the queue's clock-step guard), and the event
    is dropped after the tenth post, about 8.5 minutes after the first."""
    clock = WallClock(1_000_000.0)
    db = tmp_path / "queue.db"
    queue = sink_senders.event_queue(db, clock=clock)
    posted_at: list[float] = []
    broker = Sink(status=503, answering=lambda: posted_at.append(clock.now))
    queue.put(Event("test.sent", {"name": "a"}))
    drops: list[str] = []
    caplog.set_level(logging.WARNING, logger="katuna")
    with sending(queue, broker, on_drop=drops.append):
        for post in range(1, sink_senders.MAX_SENDS):
            row = eventually(lambda post=post: _put_back(db, post), f"post {post} put back")
            looked = clock.readings
            eventually(lambda looked=looked: clock.readings >= looked + 3, "the sender looked at the queue again")
            assert _queued(db)[:2] == (post, None), f"post {post + 1} was taken before its wait"
            clock.now = row[2]
        eventually(lambda: _queued(db) is None, "the event dropped after its last post")
    queue.close()
    waits = [later - earlier for earlier, later in zip(posted_at, posted_at[1:])]
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert sum(waits) == 511, "about 8.5 minutes, as docs/knative.md says"
    assert len(broker.received) == sink_senders.MAX_SENDS
    assert f"after {sink_senders.MAX_SENDS} posts" in caplog.text
    assert drops == ["exhausted"], "counted in katuna_events_dropped_total"
