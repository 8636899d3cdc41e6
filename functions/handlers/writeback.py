"""``trial.suggested``, ``study.completed``: the status of a study that came from a Kubernetes
resource follows it there.

Both events are emitted after the state they follow was stored (a trial ended and the next was
asked for; the study ended), so even a Trigger delivering in parallel with the other handlers
reads fresh counts. The status is computed from the store alone and written whole: a duplicate
or late event writes the same status again, or a fresher one. Studies submitted over HTTP have
no resource and cost one read; where no study resources are watched (``katuna run``), none.
"""

from __future__ import annotations

from functions.core.errors import StudyNotFound
from functions.core.events import Event
from functions.core.katib_trials import trial_resource, trial_status
from functions.core.records import StudyRecord
from functions.core.resources import Origin, study_status
from functions.handlers.base import Deps


def handle(event: Event, deps: Deps) -> list[Event]:
    if deps.resources is None:
        return []
    try:
        record = deps.store.get_study(event.data["study"])
    except StudyNotFound:
        return []
    if record.owns(event.data):
        report(record, deps)
    return []


def report(record: StudyRecord, deps: Deps) -> None:
    """Write the study's status to its resource, if it has one (and it is still there)."""
    if record.origin is None or deps.resources is None:
        return
    origin = Origin.from_dict(record.origin)
    best = deps.store.best_trials(record.name, 1)
    status = study_status(record, deps.store.count_trials(record.name), best[0] if best else None, origin)
    if deps.resources.write_status(origin.ref, origin.uid, status) and origin.ref.kind == "Experiment" \
            and origin.ref.katib:
        trials = deps.store.trials(record.name)
        deps.resources.put_trials(origin.ref, [{**trial_resource(record, origin, t), "status": trial_status(t)}
                                               for t in trials])
