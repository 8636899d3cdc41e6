"""The embedded broker: an event's follow-ups go first, retries wait apart, bare handlers stay bare;
nothing one event or tick does stops it, and a study whose events keep failing fails.

The broker, both queues and the dispatcher are the real ones; the handlers are small test
handlers on a real store, routed by the dispatcher's injectable table.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import study_definition
from write_lock import WriteLock

from functions.adapters import owners
from functions.adapters.broker import LocalBroker, MemoryQueue
from functions.adapters.sqlite_queue import MAX_TAKEN_BACK, SqliteQueue
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import StudyNotFound, TemporaryError
from functions.core.events import Event
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.failures import MAX_FAILURES


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "k.db")
    yield s
    s.close()


def chain_dispatcher(store: SqliteStore, seen: list[str], fail_once: set[str] = frozenset(),
                     handled: Callable[[], None] = lambda: None) -> Dispatcher:
    """``start`` emits ``next``, which emits ``last``; ``other`` emits nothing. ``handled`` is
    called after each handler."""
    failed: set[str] = set()

    def handler(emits: str | None):
        def handle(event: Event, deps: Deps) -> list[Event]:
            name = event.data["name"]
            if name in fail_once and name not in failed:
                failed.add(name)
                raise TemporaryError("not yet")
            seen.append(name)
            handled()
            return [Event(f"test.{emits}", {"name": f"{name}>{emits}"})] if emits else []
        return handle

    handlers = {"start": handler("next"), "next": handler("last"), "last": handler(None), "other": handler(None)}
    routes = {f"test.{name}": (name,) for name in handlers}
    return Dispatcher(Deps(store, executor=None, clock=time.time), handlers=handlers, routes=routes)


@pytest.mark.parametrize("queue", ["memory", "sqlite"])
def test_an_events_follow_ups_are_delivered_before_the_events_already_waiting(store, tmp_path: Path, queue):
    seen: list[str] = []
    events = MemoryQueue() if queue == "memory" else SqliteQueue(tmp_path / "k.db")
    broker = LocalBroker(chain_dispatcher(store, seen), events)
    for name, kind in (("a", "start"), ("x", "other"), ("b", "start"), ("y", "other")):
        broker.publish(Event(f"test.{kind}", {"name": name}))
    broker.run(until=lambda: True, interval=0.01)
    assert seen == ["a", "a>next", "a>next>last", "x", "b", "b>next", "b>next>last", "y"]


def failing_first(store, seen: list[str], backoff: float) -> LocalBroker:
    """A broker holding an event whose first delivery fails (``a``), then another (``x``)."""
    broker = LocalBroker(chain_dispatcher(store, seen, fail_once={"a"}), MemoryQueue(), backoff=backoff)
    broker.publish(Event("test.start", {"name": "a"}))
    broker.publish(Event("test.other", {"name": "x"}))
    return broker


def test_a_retried_event_waits_until_due_without_holding_back_the_others(store):
    """An event that failed is delivered again once its back-off is past, not before: with an
    hour's back-off the other event is delivered and the retry still waits in the queue; with a
    short one the retry comes after the other event, its follow-ups after it."""
    seen: list[str] = []
    waiting = failing_first(store, seen, backoff=3600.0)
    waiting.run(until=lambda: "x" in seen, interval=0.01, drain=False)
    assert seen == ["x"] and not waiting.events.empty(), "the retry waits for its back-off"

    seen.clear()
    failing_first(store, seen, backoff=0.2).run(until=lambda: True, interval=0.01)
    assert seen == ["x", "a", "a>next", "a>next>last"]


def test_an_unrecorded_handler_runs_outside_a_transaction_and_leaves_no_record(store):
    inside: dict[str, bool] = {}

    def handler(name: str):
        def handle(event: Event, deps: Deps) -> list[Event]:
            inside[name] = deps.store.db.conn.in_transaction
            return []
        return handle

    dispatcher = Dispatcher(Deps(store, executor=None, clock=time.time),
                            handlers={"kept": handler("kept"), "bare": handler("bare")},
                            routes={"test.event": ("kept", "bare")}, unrecorded=frozenset({"bare"}))
    event = Event("test.event", {})
    dispatcher.deliver(event)
    assert inside == {"kept": True, "bare": False}
    assert store.processed(event.id, "kept") == [] and store.processed(event.id, "bare") is None


def test_a_published_event_is_handled_on_the_publishing_thread_unless_another_thread_is_handling(store):
    seen: list[str] = []
    broker = LocalBroker(chain_dispatcher(store, seen))
    broker.publish_and_handle(Event("test.start", {"name": "a"}))
    assert seen == ["a", "a>next", "a>next>last"], "handled at once, follow-ups included"

    release, ticking = threading.Event(), threading.Event()

    def tick() -> None:
        ticking.set()
        release.wait()

    running = threading.Thread(target=broker.run, kwargs={"until": release.is_set, "tick": tick, "interval": 0.01})
    running.start()
    assert ticking.wait(30), "the broker's thread ticks"
    broker.publish_and_handle(Event("test.other", {"name": "x"}))
    assert seen == ["a", "a>next", "a>next>last"], "left to the thread that is handling (waiting in its tick)"
    release.set()
    running.join(timeout=30)
    assert seen[-1] == "x"

    broker.close()
    broker.publish_and_handle(Event("test.other", {"name": "y"}))
    assert "y" not in seen, "a closed broker handles nothing more"


class HeldAfterTaking(MemoryQueue):
    """A queue whose first event taken by the broker's own thread is held there, taken, until
    ``go``: where a taker with an event in hand meets a trial's thread handling its end."""

    def __init__(self, runner: list[threading.Thread]) -> None:
        super().__init__()
        self.runner, self.taken, self.go = runner, threading.Event(), threading.Event()

    def take(self, timeout: float):
        delivery = super().take(timeout)
        if delivery is not None and threading.current_thread() in self.runner and not self.taken.is_set():
            self.taken.set()
            self.go.wait(timeout=10)
        return delivery


def test_events_are_delivered_in_order_when_a_trials_thread_handles_its_end_as_the_brokers_takes_one(store):
    """A trial's progress, then its end: the broker's thread has taken a step when the trial's
    thread publishes the end and would handle what waits itself. The step must come first (the
    pruner judges steps in order); before, the end's thread handled the later events, and the
    step taken came last."""
    seen: list[str] = []
    runner: list[threading.Thread] = []
    events = HeldAfterTaking(runner)
    broker = LocalBroker(chain_dispatcher(store, seen), events)
    runner.append(threading.Thread(target=broker.run, kwargs={"until": lambda: "end" in seen, "interval": 0.01}))
    runner[0].start()
    broker.publish(Event("test.other", {"name": "step"}))
    assert events.taken.wait(timeout=10)
    broker.publish(Event("test.other", {"name": "later step"}))
    broker.publish_and_handle(Event("test.other", {"name": "end"}))
    events.go.set()
    runner[0].join(timeout=10)
    assert seen == ["step", "later step", "end"]


@pytest.mark.parametrize("queue", ["memory", "sqlite"])
def test_the_brokers_thread_sees_at_once_that_another_thread_finished_the_work(store, tmp_path: Path, queue):
    seen: list[str] = []
    events = MemoryQueue() if queue == "memory" else SqliteQueue(tmp_path / "k.db")
    broker = LocalBroker(chain_dispatcher(store, seen), events)
    running = threading.Thread(target=broker.run, kwargs={"until": lambda: "a>next>last" in seen, "interval": 30})
    running.start()
    broker.publish(Event("test.other", {"name": "x"}))
    while "x" not in seen:
        time.sleep(0.01)
    time.sleep(0.1)  # past its first tick, now waiting up to 30 s for the next event
    broker.publish_and_handle(Event("test.start", {"name": "a"}))
    running.join(timeout=15)
    assert not running.is_alive(), "woken when the chain was handled elsewhere, not at its next tick"


class CountedWakes(MemoryQueue):
    """A queue that counts the wakes of the thread waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1
        super().wake()


def test_a_thread_that_handled_what_waited_wakes_the_brokers_thread_only_where_it_may_be_done(store):
    """The broker is told whether its thread may find its work done once an event is handled;
    that thread is not woken only to find that it is not, but it is where events were left to it."""
    seen: list[str] = []
    events = CountedWakes()
    broker = LocalBroker(chain_dispatcher(store, seen), events, done_soon=lambda event: event.data["name"] == "b")
    broker.publish_and_handle(Event("test.start", {"name": "a"}))
    assert seen == ["a", "a>next", "a>next>last"] and events.wakes == 0
    broker.publish_and_handle(Event("test.other", {"name": "b"}))
    assert seen[-1] == "b" and events.wakes == 1
    broker.close()
    broker.publish_and_handle(Event("test.other", {"name": "left"}))
    assert "left" not in seen and events.wakes == 2, "an event left in the queue wakes it"


def test_stopping_the_queue_releases_every_thread_waiting_on_it_and_each_later_take(tmp_path: Path):
    """A stopping service's taker threads (the broker's, or the four senders to ``K_SINK``) see
    their stop flag at once: a wake would reach only one of them, the others waiting out a minute."""
    events = SqliteQueue(tmp_path / "k.db")
    taken: list[object] = []
    takers = [threading.Thread(target=lambda: taken.append(events.take(timeout=60))) for _ in range(4)]
    for taker in takers:
        taker.start()
    events.stop_waiting()
    for taker in takers:
        taker.join(timeout=10)
    assert not any(taker.is_alive() for taker in takers) and taken == [None] * 4
    events.put(Event("test.other", {"name": "x"}))
    assert events.take(timeout=60) is None and events.depth() == 1, "the event stays queued for the next process"
    events.close()


def test_a_damaged_queued_row_is_dropped_and_the_events_behind_it_are_delivered(store, tmp_path: Path):
    seen: list[str] = []
    events = SqliteQueue(tmp_path / "k.db")
    store.db.execute("INSERT INTO event_queue (event_id, body, due) VALUES ('bad', '{not json', 0)")
    broker = LocalBroker(chain_dispatcher(store, seen), events)
    broker.publish(Event("test.other", {"name": "x"}))
    assert not events.pending("demo")
    broker.run(until=lambda: True, interval=0.01)
    assert seen == ["x"]
    assert events.empty()
    events.close()


def test_a_failing_tick_does_not_stop_the_broker(store):
    seen: list[str] = []
    ticks: list[int] = []
    broker = LocalBroker(chain_dispatcher(store, seen), MemoryQueue())

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 1:
            raise RuntimeError("a watcher bug")
        if len(ticks) == 2:  # a third tick may come while its event is delivered: it adds none
            broker.publish(Event("test.other", {"name": f"after tick {len(ticks)}"}))

    broker.run(until=lambda: len(ticks) >= 2, tick=tick, interval=0.01)
    assert seen == ["after tick 2"]


def test_a_tick_given_up_as_katuna_stops_is_no_warning(store, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """The watcher's puts, given up as the service stops while another process holds the
    database, fail the tick each time it runs until the broker stops: said at debug level only."""
    queue = SqliteQueue(tmp_path / "k.db", stopped=lambda: True)
    broker = LocalBroker(chain_dispatcher(store, []), queue)
    ticks: list[int] = []
    lock = WriteLock(tmp_path / "k.db")
    lock.hold()

    def tick() -> None:
        ticks.append(1)
        queue.put(Event("test.other", {"name": "from a tick"}))

    caplog.set_level(logging.DEBUG, logger="katuna")
    try:
        broker.run(until=lambda: len(ticks) >= 2, tick=tick, interval=0.01, drain=False)
    finally:
        lock.close()
        queue.close()
    given_up = [r for r in caplog.records if "a tick failed" in r.getMessage()]
    assert len(given_up) == 2 and {r.levelno for r in given_up} == {logging.DEBUG}, given_up


def test_a_slow_tick_leaves_time_for_the_events_it_queued(store, tmp_path: Path):
    """A tick that takes longer than the interval (many studies to reconcile) is not run again
    after every single event: the events each tick queues are handled before they pile up."""
    seen: list[str] = []
    broker = LocalBroker(chain_dispatcher(store, seen), SqliteQueue(tmp_path / "k.db"))
    published: list[str] = []

    def tick() -> None:
        time.sleep(0.25)
        for _ in range(3):
            published.append(f"event {len(published)}")
            broker.publish(Event("test.other", {"name": published[-1]}))

    broker.run(until=lambda: len(published) >= 18, tick=tick, interval=0.01, drain=False)
    assert len(published) - len(seen) <= 6, f"{len(published) - len(seen)} events left behind by 6 ticks"


def _study(store: SqliteStore) -> str:
    spec = parse_study(study_definition("demo"))
    store.add_study(StudyRecord(spec, {}, ".", "uid-1"))
    return "uid-1"


def failing_dispatcher(store: SqliteStore, error: Exception) -> Dispatcher:
    def handle(event: Event, deps: Deps) -> list[Event]:
        raise error

    return Dispatcher(Deps(store, executor=None, clock=time.time), handlers={"h": handle}, routes={"test.h": ("h",)})


def test_a_handler_that_keeps_failing_fails_its_study_after_a_bounded_count(store):
    uid = _study(store)
    dispatcher = failing_dispatcher(store, ValueError("the sampler broke"))
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(ValueError):
            dispatcher.deliver(Event("test.h", {"study": "demo", "uid": uid}))
        assert not store.get_study("demo").terminal
    ended = dispatcher.deliver(Event("test.h", {"study": "demo", "uid": uid}))
    assert [(e.type, e.data["status"]) for e in ended] == [("dev.katuna.study.completed", "failed")]
    record = store.get_study("demo")
    assert record.status == "failed" and "ValueError: the sampler broke" in record.reason


def test_temporary_errors_and_other_studies_failures_count_nothing(store):
    uid = _study(store)
    busy = failing_dispatcher(store, TemporaryError("the database is busy"))
    for _ in range(10):
        with pytest.raises(TemporaryError):
            busy.deliver(Event("test.h", {"study": "demo", "uid": uid}))
    broken = failing_dispatcher(store, ValueError("boom"))
    for _ in range(10):
        with pytest.raises(ValueError):
            broken.deliver(Event("test.h", {"study": "demo", "uid": "an-earlier-study"}))
    assert store.db.execute("SELECT failures FROM studies").fetchone()[0] == 0
    assert store.get_study("demo").status == "running"


def test_each_queue_write_made_while_the_database_is_held_is_a_temporary_error(tmp_path: Path):
    """A lock held past the busy timeout is katuna's temporary error (503 with Retry-After for the
    service), never SQLite's own; the queue is unchanged and works once the lock is released."""
    events = SqliteQueue(tmp_path / "k.db", busy_timeout=0.05)
    events.put(Event("test.other", {"name": "x"}))
    delivery = events.take(timeout=0)
    events.put(Event("test.other", {"name": "y"}))
    lock = WriteLock(tmp_path / "k.db")
    lock.hold()
    try:
        for write in (lambda: events.put(Event("test.other", {"name": "z"})), lambda: events.take(timeout=0),
                      lambda: events.done(delivery), lambda: events.retry(delivery, 0)):
            with pytest.raises(TemporaryError, match=f"the database {tmp_path / 'k.db'} is busy") as raised:
                write()
            assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    finally:
        lock.release()
        lock.close()
    assert events.depth() == 2
    events.done(delivery)
    assert events.take(timeout=0).event.data == {"name": "y"}
    events.close()


def test_an_event_whose_queue_writes_fail_is_delivered_again_once_the_database_is_free(store, tmp_path: Path):
    """The queue's database is held past the busy timeout while a handled event's follow-up is
    queued: the broker keeps the event, puts it back as soon as the lock is gone and delivers it
    again, instead of leaving it taken (out of every taker's reach until its lease runs out)."""
    lock = WriteLock(tmp_path / "queue.db")
    seen: list[str] = []

    def hold_the_queue() -> None:
        if seen == ["a"]:
            lock.hold()
            threading.Timer(0.5, lock.release).start()

    events = SqliteQueue(tmp_path / "queue.db", busy_timeout=0.05)
    broker = LocalBroker(chain_dispatcher(store, seen, handled=hold_the_queue), events, backoff=0.01)
    broker.publish(Event("test.start", {"name": "a"}))
    deadline = time.monotonic() + 60
    broker.run(until=lambda: "a>next>last" in seen or time.monotonic() > deadline, interval=0.01)
    assert seen == ["a", "a>next", "a>next>last"], "delivered again (its follow-up kept), then the follow-ups"
    assert events.empty()
    events.close()
    lock.close()


def test_a_late_event_of_a_deleted_or_replaced_study_is_done_and_a_missing_trial_of_a_live_one_is_not(store):
    """A handler that finds the event's study gone (deleted by another process, or replaced by one
    of the same name) drops the event, as the service answers it: no failure counted against the
    new study, no dead letter. One that finds no trial in the event's own study still fails."""
    uid = _study(store)
    missing = failing_dispatcher(store, StudyNotFound("no trial 7 in study 'demo'"))
    for data in ({"study": "demo", "uid": "an-earlier-study"}, {"study": "gone", "uid": "uid-0"}):
        assert missing.deliver(Event("test.h", data)) == []
    assert store.db.execute("SELECT failures FROM studies").fetchone()[0] == 0
    with pytest.raises(StudyNotFound, match="no trial 7"):
        missing.deliver(Event("test.h", {"study": "demo", "uid": uid}))


def test_events_queued_before_the_clock_was_set_back_are_due_and_their_leases_over(tmp_path: Path):
    """An NTP step an hour back: the event queued before it, and the one a taker held then, are
    taken at once, not an hour later; one retried since waits its own delay."""
    now = [time.time()]
    first, second = (SqliteQueue(tmp_path / "k.db", clock=lambda: now[0]) for _ in range(2))
    try:
        first.put(Event("dev.katuna.study.created", {"study": "a"}, id="queued"))
        first.put(Event("dev.katuna.study.created", {"study": "b"}, id="held"))
        held = second.take(0.5)
        assert held is not None and held.event.id == "queued"
        now[0] -= 3600
        taken = [first.take(0.5), first.take(0.5)]
        assert [d.event.id for d in taken if d is not None] == ["queued", "held"]
        first.retry(taken[0], 5.0)
        assert first.take(0.2) is None, "retried after the step, it waits its delay"
    finally:
        first.close()
        second.close()


def test_a_retry_past_the_queues_longest_delay_is_refused(tmp_path: Path):
    """The queue would take such an event for one stamped before a clock step, and at once: a
    taker whose back-off outgrows the queue's bound fails loudly instead of skipping its waits."""
    queue = SqliteQueue(tmp_path / "k.db", longest_delay=30.0)
    try:
        queue.put(Event("dev.katuna.study.created", {"study": "a"}))
        delivery = queue.take(0.5)
        with pytest.raises(ValueError, match="past this queue's longest delay of 30 s"):
            queue.retry(delivery, 31.0)
        queue.retry(delivery, 30.0)
        assert queue.take(0.1) is None
    finally:
        queue.close()


TAKE_AND_DIE = """
import os, sys
from functions.adapters.owners import pid_space, taker, taker_ended
from functions.adapters.sqlite_queue import SqliteQueue
name = taker() if sys.argv[2] == "here" else taker().replace(pid_space(), "another-pod", 1)
sys.exit(0 if SqliteQueue(sys.argv[1], taker=name, ended=taker_ended).take(5) is not None else 3)
"""


def _taken_by_a_process_that_dies(db: Path, where: str = "here") -> None:
    """The queue's next event, taken by another process, which ends without settling it."""
    assert subprocess.run([sys.executable, "-c", TAKE_AND_DIE, str(db), where], timeout=60).returncode == 0


@pytest.mark.parametrize(("where", "deaths", "taken_back"), [
    ("here", 1, True), ("here", MAX_TAKEN_BACK, False), ("another-pod", 1, False)],
    ids=["killed-here", "killing-its-takers", "in-another-pid-space"])
def test_an_event_whose_taker_was_killed_on_this_machine_is_taken_back_at_once(
        tmp_path: Path, where: str, deaths: int, taken_back: bool):
    """A killed worker's event is taken back by the next take, where its study would wait out
    the lease; not once its takers died as often as an unexpected failure is retried (it may be
    what kills them), nor when its taker's pids are another container's, which this cannot judge."""
    db = tmp_path / "q.db"
    queue = SqliteQueue(db, taker=owners.taker(), ended=owners.taker_ended)
    try:
        queue.put(Event("dev.katuna.study.created", {"study": "a"}, id="held"))
        for _ in range(deaths):
            _taken_by_a_process_that_dies(db, where)
        delivery = queue.take(0.2)
        assert (delivery is not None) == taken_back
        if delivery is not None:
            assert (delivery.event.id, delivery.attempt) == ("held", deaths + 1)
    finally:
        queue.close()
