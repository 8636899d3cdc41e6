"""Restarting a finished study whose trial budget was raised: a Katib Experiment as Katib
restarts one, a native study alike; and the budget Katib's webhook refuses for any edited
Experiment.

Katib restarts an Experiment that succeeded by reaching ``maxTrialCount`` when its
``resumePolicy`` is ``LongRunning`` or ``FromVolume`` and ``maxTrialCount`` is raised above
its trials; ``parallelTrialCount`` and ``maxFailedTrialCount`` may change with it, nothing else
may. Any other finished Experiment (``resumePolicy: Never``, ended by its goal or by failures)
stays finished. katuna keeps the sampler's whole state in its store, so both policies restart
alike: the stored trials stay, trial numbers go on, and the sampler sees every earlier trial.
A study katuna ended by ``maxTrialCount`` with no trial succeeded (Katib calls that a success
too) restarts as well. Katib's webhook also refuses any spec edit of a running Experiment whose
``maxTrialCount`` is not above the trials it has made (:func:`too_few_trials`).

A native study that ended by reaching ``maxTrials`` restarts the same way when it is submitted
again with ``maxTrials`` raised above its trials (``parallelism`` and ``maxFailedTrials`` may
change with it, nothing else), as an Optuna study takes more trials when ``optimize`` is called
again: it needs no ``resumePolicy``, as katuna keeps every study's whole state.

:mod:`functions.core.katib` and :mod:`functions.core.katib_metadata` (and YAML with them) are imported
only where an ended study is asked about, not by every handler that imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from functions.core import katib_defaults
from functions.core.counted import counted
from functions.core.records import COMPLETED, FAILED, STUDY_RUNNING, StudyRecord
from functions.core.resources import Origin
from functions.core.spec import Study

RESUME_POLICIES = ("LongRunning", "FromVolume")
EDITABLE = ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")
"""The spec fields an edit that restarts an Experiment may change (Katib's webhook's)."""
NATIVE_EDITABLE = ("maxTrials", "parallelism", "maxFailedTrials")
"""The fields of a native study that a submission restarting it may change."""
MAX_TRIALS_REACHED = "max trials reached"
"""How katuna's stop rule says a study reached its ``maxTrials`` (:mod:`functions.core.stop`)."""


def is_experiment(definition: Mapping[str, Any]) -> bool:
    """Whether a stored definition is a Katib Experiment."""
    from functions.core import katib

    return katib.is_experiment(definition)


def restartable(record: StudyRecord) -> bool:
    """Whether the finished study restarts once its trial budget is raised: it ended by
    reaching it, and a Katib Experiment has a ``resumePolicy`` under which Katib restarts it."""
    if record.status not in (COMPLETED, FAILED) or not record.reason.startswith(MAX_TRIALS_REACHED):
        return False
    if not is_experiment(record.definition):
        return is_native(record.definition)
    spec = record.definition.get("spec")
    return isinstance(spec, Mapping) and spec.get("resumePolicy") in RESUME_POLICIES


def restart_refusal(record: StudyRecord) -> str | None:
    """Why the study cannot restart from its definition with the trial budget raised, as the
    dashboard's Restart would submit it (None: it can): one it did not end by reaching, one that
    follows a Kubernetes resource (edited in the cluster), or one whose node pool was given back."""
    if not restartable(record):
        state = f"it is {record.status}" if record.status == STUDY_RUNNING else f"it ended {record.status}"
        return f"{refusals(record, record.definition, 0)[0]}; {state}{f' ({record.reason})' if record.reason else ''}"
    if record.origin is not None:
        ref = Origin.from_dict(record.origin).ref
        return f"it follows the {ref.kind} {ref.name} in namespace {ref.namespace}: edit that resource in the cluster"
    if record.spec.node_pool is not None:
        return "a study with a node pool does not restart: its pool was given back when it ended"
    return None


def resource_refusal(record: StudyRecord) -> str | None:
    """Why the ended study, submitted again over the HTTP API or the CLI with its budget raised,
    does not restart: it came from a cluster resource, which restarts it when edited there
    (its status and Trials are that resource's); a resource deleted since leaves the study as
    it ended, not to be brought back from elsewhere without a word. None for any other study."""
    if record.origin is None:
        return None
    ref = Origin.from_dict(record.origin).ref
    budget = "spec.maxTrialCount" if ref.katib else "spec.maxTrials"
    return (f"study {record.name!r} came from the {ref.kind} {ref.name!r} in namespace {ref.namespace!r} "
            f"({ref.api_version}) and restarts only through it: raise its {budget} there, with kubectl edit "
            f"{ref.plural}.{ref.group} {ref.name} -n {ref.namespace}; if that {ref.kind} was deleted, apply it "
            f"again, which starts a new study in this one's place, or delete this study with DELETE "
            f"/studies/{record.name} of the service that watches the cluster (katuna delete refuses a study of "
            f"a resource) and submit it again")


def as_begun(stored: Study, edited: Study) -> Study:
    """The study an edit of its budget (running) or a restart runs on: the ``stored`` spec, the
    conversion of the katuna that stored it, with the budget ``edited`` gives it (``maxTrials``,
    ``parallelism``, ``maxFailedTrials``, and the node pool, whose default size follows the
    parallelism). The edit changes nothing else in the document, so what else this katuna's
    conversion differs in is a default changed since it was stored (Katib's ``tpe``, stored before
    katuna ran it as independent TPE), or one that follows the budget (``tpe``'s random start, as
    many trials as hyperopt's first request, which was made once): the study goes on searching as
    it began, not with another model mid-run."""
    return replace(stored, parallelism=edited.parallelism, max_trials=edited.max_trials,
                   max_failed_trials=edited.max_failed_trials, node_pool=edited.node_pool)


def is_native(definition: Mapping[str, Any]) -> bool:
    """Whether a definition is katuna's own format (a Katib document names its ``kind``)."""
    return "kind" not in definition


def asks_restart(record: StudyRecord, edited: Mapping[str, Any]) -> bool:
    """Whether submitting ``edited`` over the finished study asks to restart it: an Experiment
    over an Experiment (whose refusal Katib users expect to read), a native study with its
    ``maxTrials`` raised over a native study; any other change is a conflict, plainly."""
    if is_experiment(record.definition) or is_experiment(edited):
        return is_experiment(record.definition) and is_experiment(edited)
    if not (is_native(record.definition) and is_native(edited)):
        return False
    raised = edited.get("maxTrials")
    return isinstance(raised, int) and (record.spec.max_trials is None or raised > record.spec.max_trials)


def refusals(record: StudyRecord, edited: Mapping[str, Any], trials: int) -> list[str]:
    """Why the finished study ``record`` cannot restart as the definition ``edited`` (none when
    it can); ``trials`` is how many trials it has."""
    experiment = is_experiment(record.definition)
    if not restartable(record):
        if experiment:
            return ["only a Katib Experiment with spec.resumePolicy LongRunning or FromVolume that ended by reaching "
                    "spec.maxTrialCount restarts, as in Katib"]
        if not is_native(record.definition):
            return ["a StudyJob does not restart (Katib's v1alpha1 never restarted one)"]
        return ["only a study that ended by reaching maxTrials restarts (with maxTrials raised)"]
    editable = [f"spec.{f}" for f in EDITABLE] if experiment else list(NATIVE_EDITABLE)
    changed = _changed(record.definition, edited) if experiment else _native_changed(record.definition, edited)
    found = [f"{path} cannot change (only {', '.join(editable)} can)" for path in changed]
    if record.spec.node_pool is not None:
        found.append(f"{'an Experiment' if experiment else 'a study'} with a node pool does not restart: its pool "
                     "was given back when it ended")
    too_low = too_few_trials(edited, trials, " to restart it") if experiment else _too_few_native(edited, trials)
    if too_low is not None:
        found.append(too_low)
    return found


def budget_hint(record: StudyRecord, edited: Mapping[str, Any], trials: int) -> str | None:
    """How the native study ``record``, ended by reaching its ``maxTrials``, goes on with the
    ``edited`` definition that changes only what a restart may (its ``parallelism``, say) but
    does not raise ``maxTrials`` above its ``trials``: by raising it, which restarts it with the
    other changes. None where a raised budget would not restart it (another field changed, a
    study of a resource or with a node pool, one that ended otherwise), whose conflict says
    the rest."""
    if not (restartable(record) and is_native(record.definition) and is_native(edited)) \
            or record.origin is not None or record.spec.node_pool is not None \
            or _native_changed(record.definition, edited):
        return None
    return (f"it has ended ({record.status}: {record.reason}): maxTrials above its "
            f"{counted(trials, 'trial')} restarts it with the changes")


def _too_few_native(edited: Mapping[str, Any], trials: int) -> str | None:
    """Why a native study's raised budget restarts nothing: ``maxTrials`` not above its ``trials``."""
    limit = edited.get("maxTrials")
    if not isinstance(limit, int) or limit <= trials:
        return f"maxTrials must be more than the {counted(trials, 'trial')} it has to restart it, got {limit}"
    return None


def _native_changed(stored: Mapping[str, Any], edited: Mapping[str, Any]) -> list[str]:
    """The top-level fields of a native study an edit changes besides :data:`NATIVE_EDITABLE`."""
    return sorted(key for key in (stored.keys() | edited.keys()) - set(NATIVE_EDITABLE)
                  if stored.get(key) != edited.get(key))


def too_few_trials(edited: Mapping[str, Any], trials: int, purpose: str = "") -> str | None:
    """Why Katib's webhook refuses the edited Experiment's budget, running or ended: its
    ``maxTrialCount`` must stay above the ``trials`` it has made (None when it does);
    ``purpose`` says what the edit is for."""
    limit = (edited.get("spec") or {}).get("maxTrialCount")
    if isinstance(limit, int) and limit <= trials:
        return f"spec.maxTrialCount must be more than the {counted(trials, 'trial')} it has{purpose}, got {limit}"
    return None


def _changed(stored: Mapping[str, Any], edited: Mapping[str, Any]) -> list[str]:
    """The paths an edit changes besides the editable spec fields: other spec fields (as Katib
    stores them, its defaults written in: :mod:`functions.core.katib_defaults`), the
    metadata katuna reads (name, namespace, node-pool annotation; not the labels, which Katib
    gives the Trials it makes after an edit as they are then) and any other top-level field but
    the ``status`` a copy read back from the cluster carries, which an edit never changes."""
    from functions.core import katib_metadata

    def fields(definition: Mapping[str, Any]) -> dict[str, Any]:
        spec = katib_defaults.stored(definition.get("spec") or {})
        rest = {k: v for k, v in definition.items() if k not in ("spec", "metadata", "status")}
        metadata = {k: v for k, v in katib_metadata.document_metadata(definition.get("metadata") or {}).items()
                    if k != "labels"}
        return {**{f"spec.{k}": v for k, v in spec.items() if k not in EDITABLE}, "metadata": metadata, **rest}

    before, after = fields(stored), fields(edited)
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
