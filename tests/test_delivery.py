"""At-least-once delivery: duplicated and reordered events change nothing twice."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from conftest import study_definition

from functions.core.events import study_created
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings


class ChaosDelivery:
    """Delivers pending events in random order, each one to three times, through the real dispatcher."""

    def __init__(self, runner: Embedded, seed: int) -> None:
        self.runner = runner
        self.rng = random.Random(seed)
        self.pending: list = []
        self.lock = threading.Lock()
        runner.broker.publish = self.publish  # the executor reports trial ends here

    def publish(self, event) -> None:
        with self.lock:
            self.pending.extend([event] * self.rng.randint(1, 3))

    def run(self, name: str, deadline: float = 60.0) -> None:
        self.publish(study_created(name, self.runner.store.get_study(name).uid))
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            with self.lock:
                event = self.pending.pop(self.rng.randrange(len(self.pending))) if self.pending else None
            if event is not None:
                for emitted in self.runner.dispatcher.deliver(event):
                    self.publish(emitted)
            elif self.runner.store.get_study(name).terminal and self.runner.executor.running(name) == 0:
                return
            else:
                time.sleep(0.01)
        raise AssertionError("the study did not end")


def _outcome(runner: Embedded) -> list[tuple]:
    return [(t.number, t.state, t.params, t.values, t.attempt) for t in runner.store.trials("demo")]


def _run(tmp_path: Path, seed: int | None) -> tuple[list[tuple], Embedded]:
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    definition = study_definition(maxTrials=6, parallelism=2)
    runner.submit(parse_study(definition), definition, tmp_path)
    if seed is None:
        runner.run("demo")
    else:
        ChaosDelivery(runner, seed).run("demo")
    return _outcome(runner), runner


@pytest.mark.parametrize("seed", range(6))
def test_duplicated_and_shuffled_delivery_matches_exactly_once(tmp_path: Path, seed: int):
    expected, once = _run(tmp_path / "once", None)
    once.close()
    outcome, chaos = _run(tmp_path / "chaos", seed)
    try:
        assert outcome == expected
        assert chaos.store.get_study("demo").status == "completed"
        logs = sorted(p.name for p in (chaos.settings.logs / "demo").glob("*.log"))
        assert logs == [f"{n}.1.log" for n in range(6)], "every trial launched exactly once"
        import optuna

        study = optuna.load_study(study_name="demo", storage=chaos.store.optuna_storage())
        assert len(study.trials) == 6
        assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6
    finally:
        chaos.close()


def test_a_redelivered_event_re_emits_what_it_emitted_the_first_time(embedded, tmp_path: Path):
    definition = study_definition(maxTrials=3, parallelism=2)
    embedded.submit(parse_study(definition), definition, tmp_path)
    event = study_created("demo", embedded.store.get_study("demo").uid)
    first = embedded.dispatcher.deliver(event)
    again = embedded.dispatcher.deliver(event)
    assert [e.id for e in first] == [e.id for e in again]
    assert len(first) == 2
    assert len(embedded.store.trials("demo")) == 2


def test_an_attempt_launched_by_a_delivery_whose_record_was_lost_still_ends_its_trial(embedded, tmp_path: Path):
    from functions.handlers.base import trial_launch

    definition = study_definition(maxTrials=2, parallelism=2)
    record = embedded.submit(parse_study(definition), definition, tmp_path)
    suggested = embedded.dispatcher.deliver(study_created("demo", record.uid))
    first = embedded.store.get_trial("demo", 0)
    embedded.executor.launch(trial_launch(record, first))  # launched, but spawn's transaction never committed
    for event in suggested:
        embedded.broker.publish(event)
    embedded.broker.run(until=lambda: embedded.store.get_study("demo").terminal and not embedded.executor.running())
    assert [t.state for t in embedded.store.trials("demo")] == ["COMPLETE", "COMPLETE"]
    assert sorted(p.name for p in (embedded.settings.logs / "demo").glob("*.log")) == ["0.1.log", "1.1.log"]
