"""Stopping the workloads of trials that ended early, once the verdict that ends them is stored.

A handler that ends running trials (pruned, stopped with their study, failed past their
timeout) stores the verdict and marks their workloads to stop, in its transaction; they are
stopped once it has committed (:meth:`~functions.core.store_port.Store.after_commit`), and the marks
cleared. Stopping first, inside the transaction, lost the verdict whenever the process died, or
the commit failed, between the two: the trial stayed running in the store with its Job gone, and
the next look at it (the Job's delete event, a tick) took it for a run lost to preemption and
ran it again; a stop delivered once (``POST /studies/NAME/stop``) was forgotten, its study
running on. Now the store is the truth: a process that dies after the commit, or a stop the
cluster refuses, leaves the marks, and the tick (:func:`finish_marked`) stops those workloads
again, as a stop is safe to repeat (a Job gone already is success), until nothing runs on for a
trial the store says has ended.

Just before a workload is stopped, the last lines of its attempt's log are kept in the store
where the stop loses the log (a cluster trial's pods go with their Job:
:mod:`functions.core.kept_tails`), so the log of a trial katuna ended can still be read; and a
trial its study's end stopped keeps the metrics and observations its output held by then, as a
pruned trial does, parsed in that same one read of its log (:class:`~functions.handlers.stopped_output.StoppedOutput`),
outside any transaction, and kept in the one that claims its stop, once.

Once a study resource is deleted and its trials' stops are done, what Katib deletes with its
Experiment goes too (:func:`drop_kept`): the workloads ``retain`` kept, and the checkpoints of
population-based training on the cluster's claim; a resource made again under the name retires
its old study the same way (:func:`retire`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial

from functions.core import pbt
from functions.core.errors import KatunaError
from functions.core.launch import trial_launch
from functions.core.log_context import about
from functions.core.ports import Place
from functions.core.records import ACTIVE_STATES, StudyRecord, TrialRecord
from functions.core.resources import Origin, origin_of
from functions.core.store_port import stored_study
from functions.core.study_brief import StudyBrief, brief_of
from functions.handlers.deps import Deps
from functions.handlers.output import record_parsed
from functions.handlers.parsed import ParsedOutput
from functions.handlers.stopped_output import StoppedOutput, stopped_output
from functions.handlers.tail_reads import Tails, read_in_rounds

log = logging.getLogger("katuna.stopping")

MAX_MARKED = 1_000
"""Marked trials one tick takes (a stop of their workloads per study), the rest at the next
(:func:`finish_marked`)."""


def stop_once_stored(record: StudyRecord, trials: Sequence[TrialRecord], deps: Deps) -> None:
    """Mark the workloads of ``trials``, which the caller's transaction ends, to stop, and stop
    them once it commits: a failure then is logged and left to the tick."""
    if not trials:
        return
    numbers = [trial.number for trial in trials]
    deps.store.mark_stopping(record.name, numbers)
    deps.store.after_commit(partial(_stop_logged, deps, record.name, record.uid, numbers))


def stop_marked(deps: Deps, study: str, uid: str, numbers: Sequence[int]) -> None:
    """Stop the workloads of the trials ``numbers`` of the study (that very study: ``uid``)
    that have ended and are still marked, and clear their marks, in a transaction per round of
    reads (:func:`~functions.handlers.tail_reads.read_in_rounds`; one, unless a log is slow to
    read): a stop that fails raises and leaves the marks of that round and the later ones. The
    last lines of their logs are read first, outside the transaction (reads of the cluster,
    which would hold the database's write lock), and kept in it for the trials it stops (a trial
    is marked with its verdict, so each marked one has ended when it is read). The stop that
    commits a verdict and the tick may both come for a mark; the one that claims it stops the
    workloads, the other finds it gone."""
    record = stored_study(deps.store, study, uid)
    if record is None:
        return
    ended = [trial for trial in (deps.store.get_trial(study, number) for number in numbers)
             if trial is not None and trial.finished]
    launches = [trial_launch(record, trial) for trial in ended]
    outputs = _outputs(record, ended, deps)
    unread = sorted(set(numbers) - {launch.number for launch in launches})
    for read, tails in read_in_rounds(deps.executor, launches, record.spec.trial_template.retain, outputs):
        parsed = {number: outputs[number].parsed() for number in read if number in outputs}
        _stop_read(deps, study, uid, [*unread, *read], tails, parsed)
        unread = []
    if unread:
        _stop_read(deps, study, uid, unread, {})


def _outputs(record: StudyRecord, trials: Sequence[TrialRecord], deps: Deps) -> dict[int, StoppedOutput]:
    """The parses of the outputs of the ``trials`` their study's end stopped, by number
    (:func:`~functions.handlers.stopped_output.stopped_output`), made before their logs are read."""
    outputs = {trial.number: stopped_output(record, trial, deps) for trial in trials}
    return {number: output for number, output in outputs.items() if output is not None}


def _keep_output(record: StudyRecord, trial: TrialRecord, deps: Deps, parsed: ParsedOutput | None) -> None:
    """Store what the stopped trial's output held as it was stopped (its observations, and its
    metrics reduced by their strategies, as a finished trial's are), in the transaction that
    claims its stop: once, however often the stop comes. Its state, reason and values stay as
    its study's end stored them, and the sampler, told the trial was pruned, is told nothing more."""
    if parsed is None or not trial.stopped_at_end:
        return
    output = record_parsed(record, trial, deps, parsed)
    if output is not None and output.metrics:
        deps.store.update_trial(record.name, trial.number, metrics=output.metrics)


def _stop_read(deps: Deps, study: str, uid: str, numbers: Sequence[int], tails: Tails,
               outputs: Mapping[int, ParsedOutput | None] | None = None) -> None:
    """In one transaction, claim the marks of the trials ``numbers``, keep the ``tails`` read of
    those that ended, and what the ``outputs`` parsed of those their study's end stopped
    (:func:`_keep_output`), and stop their workloads."""
    store = deps.store
    with store.transaction():
        record = stored_study(store, study, uid)
        if record is None:
            return
        claimed = store.claim_stopping(study, numbers)
        trials = [store.get_trial(study, number) for number in claimed]
        ended = [trial for trial in trials if trial is not None and trial.finished]
        if ended:
            launches = [trial_launch(record, trial) for trial in ended]
            for trial, launch in zip(ended, launches):
                tail = tails.get((launch.number, launch.attempt))
                if tail is not None:
                    store.keep_tail(launch.study, launch.number, launch.attempt, tail)
                _keep_output(record, trial, deps, (outputs or {}).get(trial.number))
            deps.executor.stop_trials(launches, keep=record.spec.trial_template.retain)


def finish_marked(deps: Deps) -> None:
    """The tick's part: stop the workloads still marked (their stop failed, or its process died
    after the verdict was stored), study by study, :data:`MAX_MARKED` at most, those never
    taken first, then those taken least recently: each taken is recorded as such first, so
    marks whose stops keep failing (a namespace the API server refuses) go behind the others
    and starve none of them. A stop that fails again is logged (an unforeseen error with its
    traceback, and the next study's stop goes on), and tried again in its turn."""
    marks = deps.store.stopping_trials(MAX_MARKED)
    if not marks:
        return
    deps.store.take_stopping(marks, deps.clock())
    marked: dict[str, list[int]] = {}
    for study, number in marks:
        marked.setdefault(study, []).append(number)
    for study, numbers in marked.items():
        try:
            record = stored_study(deps.store, study)
            if record is not None:
                _stop_logged(deps, study, record.uid, numbers)
        except Exception:  # an unforeseen error of one study's stop ends no tick: the others wait on it
            log.exception("stopping the workloads of trials %s of study %s; the tick tries again",
                          ", ".join(map(str, numbers)), study, extra=about(study))


def stop_study_marked(deps: Deps, study: str) -> None:
    """Stop every workload of the study still marked now, :data:`MAX_MARKED` at a time until
    none is left, raising when a stop fails: before the study's rows, and their marks with them,
    are deleted, so no Job runs on that no mark names (a study whose stops the cluster refused
    for a while may have more marks than one round takes). A round that clears none of its
    marks ends the rounds."""
    record = stored_study(deps.store, study)
    if record is None:
        return
    numbers = [number for _, number in deps.store.stopping_trials(MAX_MARKED, study)]
    while numbers:
        stop_marked(deps, study, record.uid, numbers)
        left = [number for _, number in deps.store.stopping_trials(MAX_MARKED, study)]
        numbers = [] if left == numbers else left


def kept_behind(study: StudyRecord | StudyBrief, origin: Origin, deps: Deps) -> bool:
    """Whether the ended study, whose resource is gone, has what Katib deletes with its deleted
    Experiment still to delete (:func:`drop_kept`): workloads that ``retain`` kept (its ended
    trials', and those its end suspended), or checkpoints on the cluster's claim
    (population-based training, where Katib's are on its suggestion's volume, owned by the
    Experiment); and its trials' stops done (none running, none marked), so that each stopped
    trial's last lines were kept first and no trial's pod is made again to write a checkpoint.
    Asked of a brief (the tick asks it of every ended study), its spec is never read."""
    brief = study if isinstance(study, StudyBrief) else brief_of(study)
    if not brief.terminal or not _left(brief, origin, deps):
        return False
    return deps.store.count_trials(brief.name).active == 0 and not deps.store.stopping_trials(1, brief.name)


def may_keep(record: StudyRecord, deps: Deps) -> bool:
    """Whether the study of a resource has anything :func:`drop_kept` would delete once it is
    deleted: workloads ``retain`` keeps, or population-based training's checkpoints on the
    claim, not yet dropped. A study with neither has nothing for :func:`drop_once_stopped` to do."""
    origin = origin_of(record)
    return origin is not None and _left(brief_of(record), origin, deps)


def _left(brief: StudyBrief, origin: Origin, deps: Deps) -> bool:
    return _workloads_left(brief, origin) or _checkpoints_left(brief, origin, deps)


def _workloads_left(brief: StudyBrief, origin: Origin) -> bool:
    return brief.retain and not origin.dropped


def _checkpoints_left(brief: StudyBrief, origin: Origin, deps: Deps) -> bool:
    return deps.checkpoint_drops is not None and brief.algorithm == pbt.NAME and not origin.checkpoints_dropped


def drop_kept(record: StudyRecord, origin: Origin, deps: Deps) -> None:
    """Delete what the ended study whose resource is gone left on the cluster, and record each
    in its origin: the workloads ``retain`` kept, with their pods (the garbage collector deletes
    a deleted Katib Experiment's Trials, and the workloads they own with them, whatever its
    ``retain``), and its checkpoints on the claim (:func:`drop_checkpoints`). A failure raises,
    for the event to come again (each part is safe to repeat), and leaves the origin as it was."""
    brief = brief_of(record)
    if _workloads_left(brief, origin):
        drop_workloads(record, deps)
        origin = replace(origin, dropped=True)
    if _checkpoints_left(brief, origin, deps):
        drop_checkpoints(record, deps)
        origin = replace(origin, checkpoints_dropped=True)
    deps.store.update_study(record.name, origin=origin.to_dict())


def drop_checkpoints(record: StudyRecord, deps: Deps) -> bool:
    """Ask for the Job deleting the study's checkpoints from the claim
    (:mod:`functions.core.checkpoint_drop`; named from its uid, so asking again is the same Job,
    or that Job run again where it failed); whether it was asked: for a study of
    population-based training whose trials ran as Jobs, one trial at least. The Job is made as
    the study's lowest-numbered trial left would run: its first may be numbered past a warm
    start's known results, or have been discarded unlaunched while later ones wrote checkpoints.
    Nothing where the service runs no trial Jobs."""
    if deps.checkpoint_drops is None:
        return False
    first = list(deps.store.trials_after(record.name, None, 1))
    return bool(first) and deps.checkpoint_drops(trial_launch(record, first[0]))


def drop_once_stopped(deps: Deps, study: str, uid: str) -> None:
    """After the stops of the study that ended because its resource was deleted: delete what it
    left (:func:`drop_kept`), in a transaction; a failure is logged, and the tick's delete event
    of the resource comes for it again."""
    try:
        with deps.store.transaction():
            record = stored_study(deps.store, study, uid)
            origin = origin_of(record)
            if record is not None and origin is not None and kept_behind(record, origin, deps):
                drop_kept(record, origin, deps)
    except KatunaError as exc:
        log.warning("deleting what study %s kept on the cluster, its resource deleted: %s; the tick tries again",
                    study, exc)


def drop_workloads(record: StudyRecord, deps: Deps) -> None:
    """Delete every workload of the study that its template ``retain``ed
    (:meth:`~functions.core.ports.Executor.drop_kept`)."""
    place = Place(record.spec.trial_cluster.namespace, record.spec.trial_template.trial_spec)
    deps.executor.drop_kept(record.name, record.uid, place)


def _stop_logged(deps: Deps, study: str, uid: str, numbers: Sequence[int]) -> None:
    """:func:`stop_marked`, its failure logged: the marks stay, for the tick."""
    try:
        stop_marked(deps, study, uid, numbers)
    except KatunaError as exc:
        log.warning("stopping the workloads of trials %s of study %s: %s; the tick tries again",
                    ", ".join(map(str, numbers)), study, exc, extra=about(study))


def retire(deps: Deps, stored: StudyRecord, origin: Origin) -> None:
    """Forget the study of a resource that was deleted and made again under the same name
    (its trials stopped, and the ended ones whose workloads are still marked to stop, every
    one, :data:`MAX_MARKED` at a time, each round's marks cleared once stopped; the
    workloads ``retain`` kept deleted, as the garbage
    collector deletes a deleted Experiment's, and its checkpoints on the claim asked to be,
    which nothing would name once the study is gone): the new resource is a new study."""
    deps.executor.stop_trials([trial_launch(stored, trial) for trial in deps.store.trials(stored.name, ACTIVE_STATES)])
    while marks := deps.store.stopping_trials(MAX_MARKED, stored.name):
        trials = [deps.store.get_trial(stored.name, number) for _, number in marks]
        deps.executor.stop_trials([trial_launch(stored, trial) for trial in trials if trial is not None])
        deps.store.claim_stopping(stored.name, [number for _, number in marks])
    brief = brief_of(stored)
    if _workloads_left(brief, origin):
        drop_workloads(stored, deps)
    if _checkpoints_left(brief, origin, deps):
        _drop_checkpoints_logged(deps, stored)
    deps.store.delete_study(stored.name)


def _drop_checkpoints_logged(deps: Deps, stored: StudyRecord) -> None:
    """Ask for the retired study's checkpoints on the claim to be deleted; a refusal is logged,
    naming the folder left, and keeps no new resource from starting its study."""
    try:
        drop_checkpoints(stored, deps)
    except KatunaError as exc:
        log.warning("the checkpoints of study %s (uid %s), whose resource was made again, stay on the claim in "
                    "its folder %s: %s", stored.name, stored.uid, stored.uid, exc)
