"""Optuna's quasi-Monte Carlo sampler told the search space up front, and started after the
origin as Katib's Sobol sampler is.

Optuna's QMC sampler infers the space from a first trial it draws at random, and counts the
points it drew in a private method: :class:`KnownSpaceQMCSampler` overrides both.
"""

from __future__ import annotations

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, QMCSampler
from optuna.trial import FrozenTrial

__all__ = ["KnownSpaceQMCSampler"]


class KnownSpaceQMCSampler(QMCSampler):
    """Optuna's quasi-Monte Carlo sampler told the whole search space up front, as Katib's
    goptuna ``sobol`` is, so that its first trial is a point of the sequence too (Optuna's own
    infers the space from the first trial, which it draws at random). With ``skip_origin`` an
    unscrambled sequence starts after its first point, the origin (every parameter at its low
    end), as goptuna's Sobol engine does: the points are then goptuna's, in order."""

    def __init__(  # noqa: PLR0913 - the settings of Optuna's QMC sampler, and the two of the known space
        self,
        *,
        qmc_type: str = "sobol",
        scramble: bool = False,
        seed: int | None = None,
        independent_sampler: BaseSampler | None = None,
        warn_asynchronous_seeding: bool = True,
        warn_independent_sampling: bool = True,
        search_space: dict[str, BaseDistribution] | None = None,
        skip_origin: bool = False,
    ) -> None:
        super().__init__(qmc_type=qmc_type, scramble=scramble, seed=seed, independent_sampler=independent_sampler,
                         warn_asynchronous_seeding=warn_asynchronous_seeding,
                         warn_independent_sampling=warn_independent_sampling)
        self._known = dict(search_space) if search_space is not None else None
        self._skipped = int(skip_origin and not scramble)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """The space given up front, else Optuna's inference (from the first trial)."""
        if self._known is None:
            return super().infer_relative_search_space(study, trial)
        return dict(self._known)

    def _find_sample_id(self, study: optuna.Study, search_space: dict[str, BaseDistribution]) -> int:
        """The index into the sequence of the next point: Optuna's count of the points drawn,
        one further on where the origin is skipped."""
        return super()._find_sample_id(study, search_space) + self._skipped
