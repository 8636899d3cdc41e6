"""``trial.finished``: read the attempt's metrics, store them, tell the sampler, then go on.

Going on means: run a preempted attempt again (or one whose output was lost before it was
read), end the study when a stop rule fires, or suggest the trials that fill the freed slots. A finished event for a trial that already ended, or for
an attempt that was superseded, changes nothing; nor does an end a sidecar held that holds no more
(:func:`_holds`). A cluster trial's log that the kubelet rotated while
it ran has lost its first lines, but for the observations kept as its running log was read
(:mod:`functions.core.log_keep`): the trial's reason says when some are lost (:mod:`functions.core.log_rotation`).
An accepted end stops the attempt's process or Job if it still runs, and deletes, once its result is stored, its
Job, or a workload whose operator left its pods running at its end (:func:`_lingering`); a trial past its timeout, or whose Job lost more pods to disruptions
than the trial may lose (both of which an executor may report while it still runs), is stopped
once its output is read and its verdict stored (:mod:`functions.handlers.stopping`). Each pod so lost is a run lost, as a preempted attempt is one:
``trialTemplate.maxAttempts`` bounds them together (:mod:`functions.core.disruptions`).

The output is read and parsed before the handling's transaction (:func:`prepare`, which the
dispatcher runs), so that a large one holds no write lock; the handling takes that parse while
the state it was parsed against holds (:mod:`functions.handlers.parsed`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from functions.core import start_failures, unreported
from functions.core.admission import without_note
from functions.core.disruptions import INTERRUPTIONS, runs_lost
from functions.core.errors import OutputLost
from functions.core.events import Event, trial_suggested
from functions.core.katib_trials import is_katib_experiment
from functions.core.launch import TrialLaunch, trial_launch
from functions.core.log_rotation import rotated
from functions.core.records import (
    COMPLETE,
    FAIL,
    PRUNED,
    STOPPED_AT_END,
    WAITING,
    StudyRecord,
    TrialRecord,
    Unreported,
    stale_attempt,
)
from functions.core.spec import MetricsCollector
from functions.handlers.asking import tell
from functions.handlers.checkpoint_prunes import prune_after
from functions.handlers.deps import Deps, study_here
from functions.handlers.output import Output, parse_output, record_output
from functions.handlers.parsed import ParsedOutput
from functions.handlers.prune import record_curve
from functions.handlers.starting import go_on
from functions.handlers.stopping import stop_once_stored

IMAGE_ID_CHARS = 512
"""An image reference with its digest is well under this; anything longer is cut."""

SMALL_OUTPUT = 64 << 10
"""Bytes of output, at most, that the handling of an attempt's end reads in its own transaction
without a parse before it (:func:`prepare`): read there, such an output holds the write lock for
a fraction of a millisecond, less than the reads of the study and the trial that a parse before
the transaction costs again."""


def prepare(event: Event, deps: Deps) -> ParsedOutput | None:
    """The attempt's output parsed before the handling's transaction, where the handling would
    read it (the end accepted, the attempt not to run again), so that a large output does not
    hold the database's write lock (:mod:`functions.handlers.parsed`); None elsewhere (a held
    end that holds no more among them: nothing is read for it), and for an output its executor
    says is small (:data:`SMALL_OUTPUT`), which the handling reads itself. A workload still
    running is stopped first, as the handling stops it before it reads."""
    data = event.data
    if isinstance(data.get("outputBytes"), int) and data["outputBytes"] <= SMALL_OUTPUT:
        return None
    record = study_here(deps, data["study"])
    trial = _current(record, deps.store.get_trial(record.name, data["trial"]), data)
    if trial is None:
        return None
    launch = trial_launch(record, trial)
    if _lost_run(record, trial, data) or not _holds(deps, launch, data):
        return None
    if not _ended_running(data):
        _stop_if_running(deps, launch)
    return parse_output(record, trial, deps, log_start=deps.logs is not None, launch=launch)


def _current(record: StudyRecord, trial: TrialRecord | None, data: Mapping[str, Any]) -> TrialRecord | None:
    """The trial, when the end is its current attempt's and it has not ended
    (:func:`~functions.core.records.stale_attempt`): else the end changes nothing."""
    if not record.owns(data) or stale_attempt(trial, data["trial"], data["attempt"]) is not None:
        return None
    return trial


def handle(event: Event, deps: Deps) -> list[Event]:
    store = deps.store
    data = event.data
    record = study_here(deps, data["study"])
    trial = _current(record, store.get_trial(record.name, data["trial"]), data)
    if trial is None:
        return []
    launch = trial_launch(record, trial)
    if not _holds(deps, launch, data):
        return []
    running = _ended_running(data)
    if not running:
        _stop_if_running(deps, launch)
        running = _lingering(record, deps, launch)
    if _lost_run(record, trial, data):
        return _not_counted(record, trial, deps, running, f"{data['outcome']}: {data['message']}")
    rotation = None
    try:
        output = record_output(record, trial, deps, log_start=deps.logs is not None, launch=launch)
        metrics, tail = output.metrics, output.tail
        rotation = _rotation(record, trial, deps, output)
    except OutputLost as lost:
        if data["outcome"] == "exited" and not data.get("exitCode") \
                and trial.attempt < record.spec.trial_template.max_attempts:
            return _not_counted(record, trial, deps, running, f"lost: {lost}")
        metrics, tail = {}, [str(lost)]
    state, values, reason, mark = _verdict(record, data, metrics, tail)
    reason = "\n".join(part for part in (rotation, reason) if part)
    outcome: dict[str, Any] = {"state": state, "values": values, "metrics": metrics, "reason": _history(trial.reason, reason),
               "unreported": unreported.after_rotation(mark) if rotation else mark,
               "exit_code": data.get("exitCode"), "finished_at": deps.clock(),
               "image_digest": _image_digest(data), "peak_memory": data.get("peakMemory")}
    store.update_trial(record.name, trial.number, **outcome)
    if running:
        stop_once_stored(record, [trial], deps)
    if state == COMPLETE and record.spec.early_stopping is not None:
        record_curve(record, trial, deps)
    tell(record, deps, trial.number, state, values)
    prune_after(record, deps, trial)
    return go_on(record, deps, replace(trial, **outcome))


def _rotation(record: StudyRecord, trial: TrialRecord, deps: Deps, output: Output) -> str | None:
    """What the trial's reason says of the kubelet's rotation of its log, which lost the
    observations printed before it (:mod:`functions.core.log_rotation`), where trials run on a
    cluster: from how far katuna read the running log (a study with early stopping), where the
    log the API serves began as the output was read, and what it held (its bytes, and its
    reports of the objective)."""
    if deps.logs is None:
        return None
    read = deps.store.log_read(record.name, trial.number)
    cursor = read.cursor if record.spec.early_stopping else None
    return rotated(output.start, cursor, output.size, output.reports, deps.clock(), read.kept_of(trial.attempt))


def _lost_run(record: StudyRecord, trial: TrialRecord, data: Mapping[str, Any]) -> bool:
    """Whether the attempt's end is a run lost, not the trial's, that would send it to run
    again: interrupted (by katuna's own process stopping: not counted against
    ``trialTemplate.maxAttempts``, up to :data:`~functions.core.disruptions.INTERRUPTIONS`
    attempts beyond it), or preempted with runs left. Once the study has ended it runs no more,
    and ends as the study's end stops it (:func:`_stopped_at_end`)."""
    if data["outcome"] == "interrupted":
        return trial.attempt < record.spec.trial_template.max_attempts + INTERRUPTIONS
    return data["outcome"] == "preempted" and _runs_left(record, trial, data)


def _holds(deps: Deps, launch: TrialLaunch, data: Mapping[str, Any]) -> bool:
    """Whether the end stands. A held end (``running``: the trial's container exited while a
    sidecar holds its pod running) is not final, as a Job's end is: its pod may have been
    deleted since (``kubectl delete pod``, a drain) and the Job's replacement started the trial
    again, whose output is not that end's, and whose Job must not be deleted under it. So it is
    taken only while the executor, asked again, still reports it: held, in the same pod, with
    the same exit code. Otherwise it changes nothing; the attempt's own end comes later, from
    the watcher or the tick (the replacement's held end has an id of its own). Any other end
    stands."""
    if data.get("running") is not True:
        return True
    now = deps.executor.poll(launch)
    return now is not None and now.data.get("running") is True \
        and (now.data.get("pod"), now.data.get("exitCode")) == (data.get("pod"), data.get("exitCode"))


def _not_counted(record: StudyRecord, trial: TrialRecord, deps: Deps, running: bool, what: str) -> list[Event]:
    """The end of an attempt whose run does not count (:func:`_lost_run`, or its output lost):
    its workload is stopped first if it still ``running`` (a Job that lost pods to disruptions,
    or whose sidecar holds its pod: nothing of it runs on beside the next attempt), then the trial runs
    again (:func:`_run_again`), or, once the study has ended, ends as the study's end stops it
    (:func:`_stopped_at_end`)."""
    if running:
        deps.executor.stop(trial_launch(record, trial))
    if record.terminal:
        return _stopped_at_end(record, trial, deps)
    return _run_again(record, trial, deps, what)


def _stopped_at_end(record: StudyRecord, trial: TrialRecord, deps: Deps) -> list[Event]:
    """The end of a trial whose run was lost after its study ended: pruned as the study's end
    stops it (:mod:`functions.handlers.stop`), whichever of the two is handled first."""
    deps.store.update_trial(record.name, trial.number, state=PRUNED, finished_at=deps.clock(),
                            reason=f"{STOPPED_AT_END} ({record.reason})")
    tell(record, deps, trial.number, PRUNED)
    return []


def _run_again(record: StudyRecord, trial: TrialRecord, deps: Deps, what: str) -> list[Event]:
    """The attempt's run did not count (interrupted, preempted, or its output lost): the same
    parameters run again as the next attempt, never counted as a failure."""
    deps.store.update_trial(record.name, trial.number, attempt=trial.attempt + 1, state=WAITING,
                            suggested_at=deps.clock(), reason=_history(trial.reason, f"attempt {trial.attempt} {what}"))
    return [trial_suggested(record.name, record.uid, trial.number, trial.attempt + 1)]


def _runs_left(record: StudyRecord, trial: TrialRecord, data: Mapping[str, Any]) -> bool:
    """Whether a preempted trial has runs left: it lost fewer runs than ``trialTemplate.maxAttempts`` (each earlier attempt, and this one's pods lost, when its
    executor counted them)."""
    return runs_lost(trial.attempt, data.get("disruptions", 1)) < record.spec.trial_template.max_attempts


def _ended_running(data: Mapping[str, Any]) -> bool:
    """Whether the executor reported the end while the attempt's workload may still be there:
    past its timeout, unable to start (a Job whose pod waits for an image that cannot be pulled),
    having lost more pods to disruptions than the trial may lose, or its container exited while
    a sidecar holds its pod running. It is stopped once its output is read (before it runs again)."""
    return data["outcome"] in ("timeout", "error") or "disruptions" in data or data.get("running") is True


def _stop_if_running(deps: Deps, launch: TrialLaunch) -> None:
    """An accepted end is the attempt's end: if its process or Job still runs (the end was
    reported early, or forged), stop it, so nothing runs on under a trial marked finished. An
    executor that learns ends by asking answers ``poll`` for an attempt that ended."""
    if deps.executor.poll(launch) is None:
        deps.executor.stop(launch)


def _lingering(record: StudyRecord, deps: Deps, launch: TrialLaunch) -> bool:
    """Whether the ended attempt's workload is a Job (which its TTL would keep, with its pods, an
    hour after its result is stored), still runs pods its end left (a PyTorchJob's, whose
    ``cleanPodPolicy`` is ``None`` by default), or is of a kind no TTL deletes (a TrainJob, a
    PipelineRun), to be deleted once its result is stored, as Katib deletes an ended trial's
    workload; a template that ``retain``s it keeps it as it is."""
    return not record.spec.trial_template.retain and deps.executor.lingers(launch)


def _image_digest(data: Mapping[str, Any]) -> str | None:
    """The image the cluster ran, as its executor reported it (a string, bounded), else None."""
    image = data.get("imageID")
    return image[:IMAGE_ID_CHARS] if isinstance(image, str) and image else None


def _history(earlier: str, latest: str) -> str:
    """A trial's reason: the latest first, then what happened to its earlier attempts (not why
    the attempt that ended waited to be admitted)."""
    return "\n".join(part for part in (latest, without_note(earlier)) if part)


def _expected(collector: MetricsCollector, missing: list[str]) -> str:
    """What the study's collector would have read the missing objectives from, so a reason
    says what to print, where a misspelt name or a wrong separator is the usual cause."""
    if collector.kind == "tfevent":
        return f"expected scalars tagged {', '.join(missing)} in the event files under {collector.path}"
    where = f"in the file {collector.path}" if collector.kind == "file" else "on its output"
    if collector.format == "json":
        form = ", ".join(f'"{m}": <number>' for m in missing)
        return f"expected JSON lines with {form} {where}"
    if collector.filters:
        return f"expected {', '.join(missing)} in lines its metric filters match, {where}"
    return f"expected lines like {', '.join(f'{m}=<number>' for m in missing)} {where}"


def _unreported(record: StudyRecord, missing: list[str], tail: list[str]) -> tuple[str, Unreported]:
    """What the reason of a trial that never reported the ``missing`` objectives says its last
    lines of output report instead, where the default rule reads that output (an objective
    printed as ``name: value``, which the rule passes over, and the metrics it read, with the
    field that names the objective: a misspelt name, ``los`` for ``loss``, shows at once, beside
    what the trial printed), and the mark stored beside the verdict that says so
    (:func:`functions.core.unreported.unreported`)."""
    collector = record.spec.metrics_collector
    default = collector.kind == "stdout" and collector.format == "text" and not collector.filters
    return unreported.unreported(missing, tail if default else None, record.spec, is_katib_experiment(record.definition))


def _verdict(record: StudyRecord, data: Mapping[str, Any], metrics: dict[str, float],
             tail: list[str]) -> tuple[str, list[float] | None, str, Unreported | None]:
    """The trial's final state, objective values and reason, and the mark of one that never
    reported its objective (:class:`~functions.core.records.Unreported`)."""
    last = "\n".join(tail) or "(no output)"
    failed = _failed_run(record, data, last)
    if failed is not None:
        return FAIL, None, failed, None
    objectives = [o.metric for o in record.spec.objectives]
    missing = [m for m in objectives if m not in metrics]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        instead, mark = _unreported(record, missing, tail)
        return FAIL, None, (f"{unreported.PREFIX}{names} never reported "
                            f"({_expected(record.spec.metrics_collector, missing)}{instead}); "
                            f"last lines:\n{last}"), mark
    values = [metrics[m] for m in objectives]
    bad = [f"{m}={v}" for m, v in zip(objectives, values) if not math.isfinite(v)]
    if bad:
        return FAIL, None, f"objective is not a finite number: {', '.join(bad)} was reported; last lines:\n{last}", None
    return COMPLETE, values, "", None


def _failed_run(record: StudyRecord, data: Mapping[str, Any], last: str) -> str | None:
    """Why the attempt's run failed, whatever it reported (an error, its timeout, preemptions,
    interruptions, or an exit code), its ``last`` lines quoted; None for a run that exited well."""
    outcome, code = data["outcome"], data.get("exitCode")
    if outcome == "error":
        return start_failures.reason(data["message"], data.get("cause"), data.get("refused") is True)
    if outcome == "timeout":
        return f"timed out: {data['message']}; last lines:\n{last}"
    if outcome == "preempted" and "disruptions" in data:
        return f"preempted: {data['message']}"
    if outcome == "preempted":
        return f"preempted in all {data['attempt']} attempts: {data['message']}; last lines:\n{last}"
    if outcome == "interrupted":
        return (f"interrupted in attempt {data['attempt']}: {data['message']}; at most "
                f"{record.spec.trial_template.max_attempts + INTERRUPTIONS} attempts run (trialTemplate."
                f"maxAttempts and {INTERRUPTIONS} more for interruptions)")
    if code:
        detail = f" ({data['message']})" if data.get("message") else ""
        return f"exited with code {code}{detail}; last lines:\n{last}"
    return None
