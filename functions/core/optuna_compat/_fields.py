"""The private fields of Optuna's values katuna reads or sets: whether a value lies in a
distribution, the random states inside samplers, the storage ids of trials and studies, and the
study attribute in which genetic samplers keep trial ids.

A distribution's check of a value is the one Optuna's own samplers make; reseeding a sampler's
random states in place is far cheaper than building a sampler per trial; the ids are those of
another storage where katuna keeps each study's records apart (and renumbers the trial ids a
genetic sampler cached with them).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import optuna
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial

__all__ = ["FrozenStudy", "contains", "reseed", "trial_id_of", "trial_ids_in", "with_study_id", "with_trial_id"]

_PARENT_CACHE = re.compile(r"[A-Za-z_]\w*:parent:\d+")
"""The study system attributes in which Optuna's genetic samplers (NSGA-II, NSGA-III) keep a
generation's parents, as trial ids (``BaseGASampler._PARENT_CACHE_KEY_PREFIX`` and the generation)."""


def contains(distribution: optuna.distributions.BaseDistribution, value: Any) -> bool:
    """Whether ``value``, as a trial's parameter holds it, is a point of ``distribution``: within
    its bounds and on its step, or one of its choices. Optuna converts before it compares (``"0.5"``
    is 0.5, ``true`` is the choice ``1``), so a value's kind is checked before it is asked
    (:func:`functions.core.assignments.value_problem`); one it cannot convert raises
    ``ValueError`` or ``TypeError``."""
    return distribution._contains(distribution.to_internal_repr(value))


def reseed(sampler: optuna.samplers.BaseSampler, seed: int) -> None:
    """Seed every random state of ``sampler`` and of the samplers it delegates to, in place,
    as its constructor would with ``seed``."""
    for value in vars(sampler).values():
        if isinstance(value, LazyRandomState):
            value.rng.seed(seed)
        elif isinstance(value, optuna.samplers.BaseSampler):
            reseed(value, seed)


def with_trial_id(trial: FrozenTrial, trial_id: int, copied: bool) -> FrozenTrial:
    """``trial`` under another storage's id for it (changed in place where it is a copy already)."""
    shown = trial if copied else copy.copy(trial)
    shown._trial_id = trial_id
    return shown


def trial_id_of(trial: FrozenTrial) -> int:
    """The id the storage ``trial`` was read from gives it."""
    return trial._trial_id


def with_study_id(study: FrozenStudy, study_id: int) -> FrozenStudy:
    """``study`` (a copy) under another storage's id for it, changed in place."""
    study._study_id = study_id
    return study


def trial_ids_in(key: str, value: Any) -> bool:
    """Whether a study system attribute holds trial ids: the parents a genetic sampler cached."""
    return bool(_PARENT_CACHE.fullmatch(key)) and isinstance(value, list) \
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
