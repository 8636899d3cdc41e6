"""``trial.suggested``: launch the trial's attempt, once.

The trial is marked running even when its attempt exists already (launched by a delivery whose
record was lost), so the attempt's end is never ignored; it is marked after the launch, in the
same transaction, so the launch waits for nothing else. With look-ahead
(:mod:`functions.handlers.ahead`) a trial is launched only into a free slot; one held back waits,
prepared, until a trial's end starts it. A trial whose parameters make a workload katuna
refuses fails at its launch, and the study goes on as after any trial's end.
"""

from __future__ import annotations

from functions.core.events import Event
from functions.core.launch import trial_launch
from functions.core.records import RUNNING
from functions.handlers.base import Deps, go_on, start


def handle(event: Event, deps: Deps) -> list[Event]:
    store = deps.store
    study, number, attempt = event.data["study"], event.data["trial"], event.data["attempt"]
    record = store.get_study(study)
    trial = store.get_trial(study, number)
    if record.terminal or not record.owns(event.data) or trial is None or trial.finished or trial.attempt != attempt:
        return []
    if deps.lookahead and trial.state != RUNNING and store.count_trials(study).running >= record.spec.parallelism \
            and not deps.executor.exists(trial_launch(record, trial)):
        return []
    failed = start(record, trial, deps)
    return [] if failed is None else go_on(record, deps, failed)
