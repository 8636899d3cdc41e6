"""Every use of Optuna's private API, in one place.

katuna leans on a few Optuna internals that no public API offers: whether a value lies in a
distribution (within its bounds and on its step), the random states inside samplers (reseeded in place, far cheaper than building a sampler per trial), the journal
storage's replayed state (snapshotted so a fresh process need not replay the whole journal),
and the data Optuna prepares for its parallel-coordinate chart. An Optuna release may change
any of them without notice; ``tests/test_optuna_compat.py`` pins the behaviour relied on here,
so an upgrade that changes it fails there first, and only this module needs adapting.

The visualization internals are imported on first use: they load plotly.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.storages import JournalStorage
from optuna.storages.journal._base import BaseJournalSnapshot

__all__ = ["BaseJournalSnapshot", "color_scale", "contains", "journal_position", "journal_snapshot",
           "parallel_coordinate_info", "reseed"]


def contains(distribution: optuna.distributions.BaseDistribution, value: Any) -> bool:
    """Whether ``value``, as a trial's parameter holds it, is a point of ``distribution``: within
    its bounds and on its step, or one of its choices. A value of the wrong kind (a string for
    a number, a choice the distribution lacks) raises ``ValueError`` or ``TypeError``."""
    return distribution._contains(distribution.to_internal_repr(value))


def reseed(sampler: optuna.samplers.BaseSampler, seed: int) -> None:
    """Seed every random state of ``sampler`` and of the samplers it delegates to, in place,
    as its constructor would with ``seed``."""
    for value in vars(sampler).values():
        if isinstance(value, LazyRandomState):
            value.rng.seed(seed)
        elif isinstance(value, optuna.samplers.BaseSampler):
            reseed(value, seed)


def journal_position(storage: JournalStorage) -> int:
    """How many journal records the storage has replayed so far."""
    return storage._replay_result.log_number_read


def journal_snapshot(storage: JournalStorage) -> tuple[int, bytes]:
    """The storage's replayed state as Optuna's own snapshots hold it, and how many records it
    covers: a snapshot backend (:class:`BaseJournalSnapshot`) hands it back to a new storage,
    which then replays only the records after those."""
    with storage._thread_lock:
        return storage._replay_result.log_number_read, pickle.dumps(storage._replay_result)


def parallel_coordinate_info(study: optuna.Study, target: Callable[[optuna.trial.FrozenTrial], float] | None,
                             target_name: str, params: Sequence[str] | None = None) -> Any:
    """The data Optuna's parallel-coordinate chart draws: ``dims_objectives`` and
    ``dims_params`` (each with ``label``, ``values``, ``range``, ``tickvals``, ``ticktext``),
    ``color_values``, ``reverse_scale`` and ``colorbar_title``."""
    from optuna.visualization._parallel_coordinate import _get_parallel_coordinate_info

    return _get_parallel_coordinate_info(study, list(params) if params is not None else None, target, target_name)


def color_scale() -> Sequence[str]:
    """The colors Optuna's charts shade values with."""
    from optuna.visualization._utils import COLOR_SCALE

    return COLOR_SCALE
