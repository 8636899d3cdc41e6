"""``trial.suggested``: launch the trial's attempt, once."""

from __future__ import annotations

from functions.core.events import Event
from functions.core.records import RUNNING
from functions.handlers.base import Deps, trial_launch


def handle(event: Event, deps: Deps) -> list[Event]:
    store = deps.store
    study, number, attempt = event.data["study"], event.data["trial"], event.data["attempt"]
    record = store.get_study(study)
    trial = store.get_trial(study, number)
    if record.terminal or not record.owns(event.data) or trial is None or trial.finished or trial.attempt != attempt:
        return []
    launch = trial_launch(record, trial)
    if deps.executor.exists(launch):
        return []
    store.update_trial(study, number, state=RUNNING, started_at=deps.clock())
    deps.executor.launch(launch)
    return []
