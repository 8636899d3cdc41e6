"""Optuna's Hyperband pruner, with its settings checked up front and its full budget kept.

Optuna's ``HyperbandPruner`` checks only ``max_resource`` and ``bootstrap_count`` when it is
built; the rest are checked by the successive-halving pruners it builds at its first
``prune``, so a bad ``reduction_factor`` or ``min_resource`` would fail every progress event
of a running study (a division by zero, a logarithm of zero) instead of the submission.
:func:`problems` makes those checks, and the one Optuna never makes (``max_resource`` below
``min_resource`` would never prune), naming the setting.

Optuna's successive halving has no top rung: with ``max_resource`` a power of the reduction
factor, a trial that has run its whole budget is still compared at that step and may be
pruned. Katib's Hyperband never stops a configuration run at the full budget ``r_l``: it ends
Succeeded. :class:`FullBudget` keeps that rule.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from functions.core.errors import Problem

DEFAULTS = {name: p.default for name, p in inspect.signature(optuna.pruners.HyperbandPruner).parameters.items()}
"""Optuna's default for each Hyperband setting."""


def problems(settings: Mapping[str, Any], path: str) -> list[Problem]:
    """Every Hyperband setting (converted to its type) the pruner would fail on, or silently
    never prune with, at ``path``'s ``.<setting>``."""
    given = {**DEFAULTS, **settings}
    least, most = given["min_resource"], given["max_resource"]
    found = []
    if given["reduction_factor"] < 2:
        found.append(Problem(f"{path}.reduction_factor", "expected an integer >= 2: each rung promotes 1 in "
                                                         f"reduction_factor of its trials, got {given['reduction_factor']}"))
    if least < 1:
        found.append(Problem(f"{path}.min_resource", f"expected an integer >= 1: the step of the first rung, got {least}"))
    if isinstance(most, int) and least >= 1 and most < least:
        found.append(Problem(f"{path}.max_resource", f"expected 'auto' or an integer >= min_resource ({least}): "
                                                     f"no trial would ever be pruned, got {most}"))
    if given["bootstrap_count"] < 0:
        found.append(Problem(f"{path}.bootstrap_count", f"expected an integer >= 0, got {given['bootstrap_count']}"))
    return found


class FullBudget(optuna.pruners.BasePruner):
    """A Hyperband pruner that never prunes a trial at or past ``max_resource``, its full
    budget: that trial completes, as Katib's Hyperband completes a configuration run at
    ``r_l``."""

    def __init__(self, pruner: optuna.pruners.BasePruner, max_resource: int) -> None:
        self.pruner = pruner
        self.max_resource = max_resource

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is not None and step >= self.max_resource:
            return False
        return self.pruner.prune(study, trial)


def build(**settings: Any) -> optuna.pruners.BasePruner:
    """Optuna's Hyperband pruner of these settings, kept from pruning at its full budget when
    that is a number of steps."""
    pruner = optuna.pruners.HyperbandPruner(**settings)
    most = settings.get("max_resource", DEFAULTS["max_resource"])
    return FullBudget(pruner, most) if isinstance(most, int) else pruner
