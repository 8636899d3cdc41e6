"""A study's ``earlyStopping`` section as the study holds it, apart from the Optuna pruner it
names (:mod:`functions.core.pruners`), so that what knows a study only by its records (katuna's
settings, and through them the provision script) imports no Optuna."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
