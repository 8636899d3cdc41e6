"""Restarting a finished Katib Experiment whose trial budget was raised, as Katib restarts one,
and the budget Katib's webhook refuses for any edited Experiment.

Katib restarts an Experiment that succeeded by reaching ``maxTrialCount`` when its
``resumePolicy`` is ``LongRunning`` or ``FromVolume`` and ``maxTrialCount`` is raised above
its trials; ``parallelTrialCount`` and ``maxFailedTrialCount`` may change with it, nothing else
may. Any other finished Experiment (``resumePolicy: Never``, ended by its goal or by failures)
stays finished. katuna keeps the sampler's whole state in its store, so both policies restart
alike: the stored trials stay, trial numbers go on, and the sampler sees every earlier trial.
A study katuna ended by ``maxTrialCount`` with no trial succeeded (Katib calls that a success
too) restarts as well. Katib's webhook also refuses any spec edit of a running Experiment whose
``maxTrialCount`` is not above the trials it has made (:func:`too_few_trials`).

:mod:`functions.core.katib` (and YAML with it) is imported only where an ended study is asked
about: every handler imports this module, through :mod:`functions.handlers.base`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.records import COMPLETED, FAILED, StudyRecord

RESUME_POLICIES = ("LongRunning", "FromVolume")
EDITABLE = ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")
"""The spec fields an edit that restarts an Experiment may change (Katib's webhook's)."""
MAX_TRIALS_REACHED = "max trials reached"
"""How katuna's stop rule says a study reached its ``maxTrials`` (:mod:`functions.core.stop`)."""


def is_experiment(definition: Mapping[str, Any]) -> bool:
    """Whether a stored definition is a Katib Experiment."""
    from functions.core import katib

    return katib.is_experiment(definition)


def restartable(record: StudyRecord) -> bool:
    """Whether the finished study is a Katib Experiment that Katib would restart once its
    ``maxTrialCount`` is raised."""
    spec = record.definition.get("spec") if is_experiment(record.definition) else None
    return isinstance(spec, Mapping) and spec.get("resumePolicy") in RESUME_POLICIES \
        and record.status in (COMPLETED, FAILED) and record.reason.startswith(MAX_TRIALS_REACHED)


def refusals(record: StudyRecord, edited: Mapping[str, Any], trials: int) -> list[str]:
    """Why the finished study ``record`` cannot restart as the definition ``edited`` (none when
    it can); ``trials`` is how many trials it has."""
    if not restartable(record):
        return ["only a Katib Experiment with spec.resumePolicy LongRunning or FromVolume that ended by reaching "
                "spec.maxTrialCount restarts, as in Katib"]
    found = [f"{path} cannot change (only {', '.join(f'spec.{f}' for f in EDITABLE)} can)"
             for path in _changed(record.definition, edited)]
    if record.spec.node_pool is not None:
        found.append("an Experiment with a node pool does not restart: its pool was given back when it ended")
    too_low = too_few_trials(edited, trials, " to restart it")
    if too_low is not None:
        found.append(too_low)
    return found


def too_few_trials(edited: Mapping[str, Any], trials: int, purpose: str = "") -> str | None:
    """Why Katib's webhook refuses the edited Experiment's budget, running or ended: its
    ``maxTrialCount`` must stay above the ``trials`` it has made (None when it does);
    ``purpose`` says what the edit is for."""
    limit = (edited.get("spec") or {}).get("maxTrialCount")
    if isinstance(limit, int) and limit <= trials:
        return f"spec.maxTrialCount must be more than the {trials} trials it has{purpose}, got {limit}"
    return None


def _changed(stored: Mapping[str, Any], edited: Mapping[str, Any]) -> list[str]:
    """The paths an edit changes besides the editable spec fields: other spec fields, the
    metadata katuna reads (name, namespace, node-pool annotation) and any other top-level field."""
    from functions.core import katib

    def fields(definition: Mapping[str, Any]) -> dict[str, Any]:
        spec = definition.get("spec") or {}
        rest = {k: v for k, v in definition.items() if k not in ("spec", "metadata")}
        return {**{f"spec.{k}": v for k, v in spec.items() if k not in EDITABLE},
                "metadata": katib.document_metadata(definition.get("metadata") or {}), **rest}

    before, after = fields(stored), fields(edited)
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
