"""A study's ``earlyStopping`` section as the study holds it, apart from the Optuna pruner it
names (:mod:`functions.core.pruners`), so that what knows a study only by its records (katuna's
settings, and through them the provision script) imports no Optuna."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

START_STEP = 4
"""Katib's medianstop ``start_step`` when a study gives none: the report at which it judges a trial."""

HYPERBANDS = ("hyperband", "hyperband-medianstop")
"""The rules that are Hyperband, alone or with the median stop: its settings, and its ``auto``
resource."""

HYPERBAND_DEFAULTS = {"min_resource": 1, "reduction_factor": 3}
"""Optuna's ``HyperbandPruner`` defaults for the settings that place its rungs."""

ONE_STEP_RULES = ("medianstop", "hyperband-medianstop")
"""The rules that judge a trial once, at its ``start_step``-th stored step (Katib's median stop)."""


@dataclass(frozen=True)
class EarlyStopping:
    """Which pruner stops unpromising trials, its settings, and an optional patience."""

    algorithm: str
    settings: tuple[tuple[str, Any], ...] = ()
    patience: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"algorithm": self.algorithm, "settings": dict(self.settings)}
        if self.patience is not None:
            out["patience"] = self.patience
        return out

    def judged_at(self) -> int | None:
        """The count of stored steps at which the rule judges a trial, where it judges it there
        alone (Katib's median stop, at its ``start_step``); None for a rule that judges as it goes."""
        if self.algorithm not in ONE_STEP_RULES:
            return None
        start_step = dict(self.settings).get("start_step", START_STEP)
        return start_step if isinstance(start_step, int) else None

    def rungs(self) -> tuple[int, ...]:
        """The steps at which Hyperband judges a trial (``min_resource`` times each power of
        ``reduction_factor``) below a ``max_resource`` given as a number, its full budget, at which
        no trial is stopped; none for another rule or an ``auto`` budget, which completed trials set."""
        settings = {**HYPERBAND_DEFAULTS, **dict(self.settings)}
        least, factor, most = settings["min_resource"], settings["reduction_factor"], settings.get("max_resource")
        if self.algorithm not in HYPERBANDS or not all(isinstance(n, int) for n in (least, factor, most)):
            return ()
        found: list[int] = []
        while least >= 1 and factor >= 2 and least * factor ** len(found) < most:
            found.append(least * factor ** len(found))
        return tuple(found)
