"""The event vocabulary and the one routing table every broker is built from.

Events are plain values here; the CloudEvents SDK appears only at the HTTP edge. Event ids are
deterministic where the event stands for a fact (a trial's attempt finished), so a redelivered
fact carries the id it had the first time. Every event names its study and the study's ``uid``,
which tells a study from an earlier one of the same name: ids never collide across the two,
and handlers ignore events of a study that no longer exists.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from functions.core.strict_json import NON_FINITE, json_value
from functions.core.trace_context import TRACEPARENT, TRACESTATE, TraceContext, read
from functions.core.trial_kinds import KINDS

SOURCE = "/katuna"
STUDY_CREATED = "dev.katuna.study.created"
TRIAL_SUGGESTED = "dev.katuna.trial.suggested"
TRIAL_FINISHED = "dev.katuna.trial.finished"
TRIAL_PROGRESS = "dev.katuna.trial.progress"
STUDY_COMPLETED = "dev.katuna.study.completed"
POOL_CHECK = "dev.knative.sources.ping"
"""The tick: a Knative PingSource's event in the cluster (once a minute, data ``{}``), the
watcher's in queue mode while node pools wait. ``provision`` checks pending node-pool
operations on it; ``reconcile`` repairs what lost events left behind."""
APISERVER_EVENTS = tuple(f"dev.knative.apiserver.resource.{change}" for change in ("add", "update", "delete"))
"""What a Knative ApiServerSource in Resource mode sends: katuna's trial Jobs, and the study
resources (``katuna.dev/v1`` Study and Experiment) users apply."""

ADVISORY = frozenset({TRIAL_PROGRESS})
"""Events whose loss costs a study nothing it cannot do without: a progress report is read again
from the trial's log, and the trial's end is judged without it. A dead letter of one fails no
study, so no sender can end a study with a report it had no right to send."""

NO_REPLY = frozenset({TRIAL_SUGGESTED, TRIAL_PROGRESS, *APISERVER_EVENTS})
"""Events whose handling never answers with a reply (``KATUNA_EVENTS=reply``): what it emits
goes to ``K_SINK``, as events beyond one do. A ``trial.suggested`` emits only after its launch
was refused for what the trial's parameters made (the next trial's ``trial.suggested``, or a
look-ahead's ``study.created``), and a study whose launches keep being refused would otherwise
answer reply with reply, one chain through the broker, which Knative's broker cuts at its
255th reply (the ``knativebrokerttl`` its ingress counts down); an event posted to ``K_SINK``
starts a chain of its own. The broker answers its sender only once every Trigger's delivery,
and the delivery of each reply, has ended: a trial's progress report (its reporter gives up
after :data:`functions.reporter.POST_TIMEOUT`, cancelling the chain) and an ApiServerSource's
event (its adapter sends the next only after) would wait for the whole chain of a pruned
trial's or an ended Job's successors; answered without a reply, each waits for one handling."""

ROUTES: Mapping[str, tuple[str, ...]] = {
    STUDY_CREATED: ("provision", "suggest"),
    TRIAL_SUGGESTED: ("spawn", "writeback"),
    TRIAL_FINISHED: ("collect",),
    TRIAL_PROGRESS: ("prune",),
    STUDY_COMPLETED: ("stop", "provision", "writeback"),
    POOL_CHECK: ("provision", "reconcile"),
    **{apiserver_event: ("jobwatch", "resource") for apiserver_event in APISERVER_EVENTS},
}
"""Event type to the handlers (modules of ``functions.handlers``) that receive it."""

OBJECTS: Mapping[str, str] = {"jobwatch": "batch/v1", "resource": "katuna.dev/v1"}
"""The ``apiVersion`` of the objects a handler of ApiServerSource events takes; its Triggers
filter on the ``apiversion`` attribute the source sets, and the dispatcher on the object's."""

OVERLAY_OBJECTS: Mapping[str, tuple[str, ...]] = {
    "resource": ("kubeflow.org/v1beta1", "kubeflow.org/v1alpha1"),
    "jobwatch": tuple(sorted({version for kind in KINDS.values() for version in kind.api_versions} - {"batch/v1"})),
}
"""The ``apiVersion`` of the objects a handler takes besides :data:`OBJECTS` where a component's
ApiServerSource sends them, with Triggers of the component's own: ``knative/katib-api`` sends
Katib's Experiment and StudyJob to ``resource``; each of ``knative/trial-kinds/`` sends its
operator's trial workloads (a PyTorchJob, a JobSet, ...) to ``jobwatch``, which handles their
changes as a Job's."""

_NAMESPACE = uuid.UUID("7f1d7a52-3b8e-4c55-9a43-5b3f3e2a9c10")


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Event:
    """A CloudEvents 1.0 event: ``type`` in reverse-DNS form, JSON ``data``; ``trace``, the
    W3C Trace Context it carries (:mod:`functions.core.trace_context`), which tells no event from
    another: the same fact delivered in two traces is one event."""

    type: str
    data: Mapping[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    source: str = SOURCE
    subject: str | None = None
    time: str = field(default_factory=_now)
    trace: TraceContext | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The event as the queue, the handlings' records and the dead letters keep it, its
        trace context as the extension attributes name it."""
        return {"id": self.id, "type": self.type, "source": self.source, "subject": self.subject, "time": self.time,
                "data": dict(self.data), **(self.trace.attributes() if self.trace else {})}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Event:
        return cls(type=raw["type"], data=raw["data"], id=raw["id"], source=raw["source"],
                   subject=raw.get("subject"), time=raw["time"], trace=read(raw.get(TRACEPARENT), raw.get(TRACESTATE)))

    def caused_by(self, cause: Event) -> Event:
        """This event as one ``cause`` led to: in the cause's trace, where it has none of its own."""
        return self if self.trace is not None or cause.trace is None else replace(self, trace=cause.trace)


def delivery_key(event: Event) -> str:
    """What tells ``event`` from every other event, as CloudEvents identifies one: its ``source``
    and ``id`` together, since two producers may number their events alike (each from 1). A
    handling is recorded under it, so a redelivery is handled once and another producer's event
    of the same id is handled as the event it is. katuna's own events (:data:`SOURCE`) are keyed
    by their id alone, as their records always were."""
    return event.id if event.source == SOURCE else json.dumps([event.source, event.id])


def derived_id(*parts: object) -> str:
    """A stable event id from the facts that make an event unique."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts)))


def run_field(restarts: int) -> dict[str, int]:
    """The data field that says which run of a study a ``study.created`` or ``study.completed``
    is of: the study's ``restarts`` when it was sent, left out for the first run (an event sent
    before katuna said so is taken as the first run's). A dead letter of an earlier run's event
    fails nothing (:func:`of_this_run`)."""
    return {"restarts": restarts} if restarts else {}


def study_created(study: str, uid: str, restarts: int = 0) -> Event:
    """Start or resume the study's run ``restarts``: a fresh id each time, since every delivery
    reconciles."""
    return Event(STUDY_CREATED, {"study": study, "uid": uid, **run_field(restarts)}, subject=study)


def trial_suggested(study: str, uid: str, number: int, attempt: int) -> Event:
    return Event(
        TRIAL_SUGGESTED,
        {"study": study, "uid": uid, "trial": number, "attempt": attempt},
        id=derived_id("suggested", uid, number, attempt),
        subject=f"{study}/{number}",
    )


def trial_finished(
    study: str, uid: str, number: int, attempt: int, outcome: str, exit_code: int | None = None, message: str = "",
    image_id: str | None = None, disruptions: int | None = None, cause: str | None = None, running: bool = False,
    pod: str | None = None, peak_memory: int | None = None, refused: bool = False, output_bytes: int | None = None,
) -> Event:
    """A trial attempt ended. ``outcome``: exited, timeout, error (could not start), preempted,
    interrupted (killed as the katuna process running it stopped: run again, uncounted);
    ``image_id`` is the image the cluster ran, with its digest, where it reports one;
    ``disruptions``, the pods its Job lost, when the executor ends a running attempt for losing
    more than the trial may (:mod:`functions.core.disruptions`): its Job still runs; ``cause``,
    of an attempt that could not start, what every attempt of its image would meet
    (:mod:`functions.core.start_failures`); ``running``, when the executor ends an attempt whose
    workload still runs beside its ended container (a sidecar holds its pod running); ``pod``, of
    such an end, the uid of the pod so held. That end lasts only while its pod runs (a deleted
    pod's Job starts the trial again in another), so it is a fact of that pod, with an id of its
    own: one found stale and handled as nothing never makes the attempt's later end (its Job's,
    or another pod's held end) a duplicate of it. ``peak_memory`` is the most resident memory
    the attempt's process held, in bytes, where its executor measured it. ``refused``, of an
    attempt that could not start, says katuna refused to start it for what an earlier trial left
    (its ``message`` the refusal: a parent's checkpoint folder it does not copy). ``output_bytes``
    is the size of the output the attempt's metrics are read from, where its executor knows it
    (a local attempt's log): a small one is read in the handling's own transaction
    (:func:`functions.handlers.collect.prepare`)."""
    data: dict[str, Any] = {"study": study, "uid": uid, "trial": number, "attempt": attempt, "outcome": outcome,
                            "exitCode": exit_code, "message": message}
    if image_id:
        data["imageID"] = image_id
    if disruptions is not None:
        data["disruptions"] = disruptions
    if cause:
        data["cause"] = cause
    if running:
        data["running"] = True
    if pod:
        data["pod"] = pod
    if peak_memory is not None:
        data["peakMemory"] = peak_memory
    if refused:
        data["refused"] = True
    if output_bytes is not None:
        data["outputBytes"] = output_bytes
    return Event(
        TRIAL_FINISHED,
        data,
        id=derived_id("finished", uid, number, attempt, *([pod] if pod else [])),
        subject=f"{study}/{number}",
    )


def trial_progress(study: str, uid: str, number: int, attempt: int, step: int, value: float, token: str,
                   cursor: Mapping[str, Any] | None = None, counted: bool = False) -> Event:
    """An intermediate value of the objective, at a step, while the attempt runs (NaN or an
    infinity as :func:`json_value` writes it), with the attempt's ``token``
    (:mod:`functions.core.report_token`); ``cursor``, where it was read from the attempt's log,
    says how far that log has been read (:mod:`functions.core.log_cursor`). A report read from
    a log is named by its pod too, as one posted by ``functions.reporter`` on a cluster is (its
    ``pod`` field and id): a pod the Job made in place of a disrupted one runs the trial again
    from its start, in the same attempt, and its reports at the steps the lost run reached are
    new facts, not that run's delivered again. A step ``counted`` (the report's line named no
    step: it is the count of reports so far) says so (``counted: true``): the pruner judges a
    counted step's place in the trial's curve whatever order the reports come in."""
    data: dict[str, Any] = {"study": study, "uid": uid, "trial": number, "attempt": attempt, "step": step,
                            "value": json_value(value), "token": token}
    if counted:
        data["counted"] = True
    run: tuple[object, ...] = ()
    if cursor is not None:
        data["cursor"] = dict(cursor)
        run = (cursor.get("pod"),)
    return Event(
        TRIAL_PROGRESS,
        data,
        id=derived_id("progress", uid, number, attempt, *run, step),
        subject=f"{study}/{number}",
    )


def progress_value(data: Mapping[str, Any]) -> float:
    """The intermediate value a checked ``trial.progress`` carries (:func:`json_value` undone)."""
    value = data["value"]
    return NON_FINITE[value] if isinstance(value, str) else float(value)


def study_completed(study: str, uid: str, status: str, reason: str, restarts: int = 0) -> Event:
    """The study ended. A study reopened after it ended (``restarts`` times) ends again as
    another fact: the count is in the data and the id, so the end of an earlier run is never
    taken for this one's, nor this one's for a redelivery of it."""
    return Event(
        STUDY_COMPLETED,
        {"study": study, "uid": uid, "status": status, "reason": reason, **run_field(restarts)},
        id=derived_id("completed", uid, *([restarts] if restarts else [])),
        subject=study,
    )


def of_this_run(data: Mapping[str, Any], restarts: int) -> bool:
    """Whether a ``study.created`` or ``study.completed`` is about the study's current run (one
    that was never reopened has ``restarts`` 0, as the events of its only run):
    :func:`run_field`."""
    return data.get("restarts", 0) == restarts


def pool_check() -> Event:
    """Check pending node-pool operations again (a fresh id: every tick is a new question)."""
    return Event(POOL_CHECK, {})


def study_stalled(study: str, uid: str, state: object, restarts: int = 0) -> Event:
    """Resume the run ``restarts`` of a study that nothing moves on: a ``study.created`` whose
    id follows from the study's ``state`` (its trial counts and active attempts), so every tick
    that finds the same stall sends the same event, and a redelivery of it sends again what its
    handling emitted. A restarted run's stall is another (the run is in the id, as in
    :func:`study_completed`'s), however like an earlier run's its state."""
    return Event(STUDY_CREATED, {"study": study, "uid": uid, **run_field(restarts)},
                 id=derived_id("stalled", uid, state, *([restarts] if restarts else [])), subject=study)


def resource_changed(change: str, obj: Mapping[str, Any]) -> Event:
    """The ApiServerSource event of a study resource's ``change`` (``add``, ``update`` or
    ``delete``) whose own event was lost: the object's kind, apiVersion and identity (the
    ``resource`` function reads the rest from the API); its id follows from the resource's uid,
    generation and the change, so ticks that find the same change send the same event."""
    metadata = obj.get("metadata") or {}
    identity = {key: metadata[key] for key in ("name", "namespace", "uid", "generation") if key in metadata}
    return Event(
        f"dev.knative.apiserver.resource.{change}",
        {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": identity},
        id=derived_id("resource", change, identity.get("uid"), identity.get("generation")),
        subject=f"{obj['kind']}/{identity.get('namespace')}/{identity.get('name')}",
    )

