"""Every use of Optuna's private API, in one package.

katuna leans on a few Optuna internals that no public API offers, each kept in a private module
of its concern: the journal storage's records and replayed state (:mod:`._journal`), the private
fields of distributions, samplers, trials and studies (:mod:`._fields`), the data Optuna
prepares for its charts (:mod:`._charts`, which loads plotly on first use), and the samplers
katuna derives from Optuna's: a restarting CMA-ES (:mod:`._cmaes`), a QMC sampler told its
space (:mod:`._qmc`) and a grid sampler told the points a warm start covers (:mod:`._grid`).
The rest of katuna imports them from here alone (an import-linter contract keeps the modules
private). An Optuna release may change any of them without notice;
``tests/test_optuna_compat.py`` (and, for the CMA-ES restarts, ``tests/test_restarting_cmaes.py``)
pins the behaviour relied on, so an upgrade that changes it fails there first, and only this
package needs adapting.
"""

from functions.core.optuna_compat._charts import (
    color_scale,
    hover_text,
    optimization_history,
    parallel_coordinate_info,
)
from functions.core.optuna_compat._cmaes import RestartingCmaEsSampler, restart_keys
from functions.core.optuna_compat._fields import (
    FrozenStudy,
    contains,
    reseed,
    trial_id_of,
    trial_ids_in,
    with_study_id,
    with_trial_id,
)
from functions.core.optuna_compat._grid import KnownGridSampler
from functions.core.optuna_compat._journal import (
    CREATE_STUDY,
    CREATE_TRIAL,
    DEFAULT_STUDY_NAME_PREFIX,
    DELETE_STUDY,
    STUDY_RECORDS,
    TRIAL_RECORDS,
    BaseJournalSnapshot,
    journal_position,
    journal_snapshot,
)
from functions.core.optuna_compat._qmc import KnownSpaceQMCSampler

__all__ = ["CREATE_STUDY", "CREATE_TRIAL", "DEFAULT_STUDY_NAME_PREFIX", "DELETE_STUDY", "STUDY_RECORDS",
           "TRIAL_RECORDS", "BaseJournalSnapshot", "FrozenStudy", "KnownGridSampler", "KnownSpaceQMCSampler",
           "RestartingCmaEsSampler", "color_scale", "contains", "hover_text", "journal_position", "journal_snapshot",
           "optimization_history", "parallel_coordinate_info", "reseed", "restart_keys", "trial_id_of", "trial_ids_in",
           "with_study_id", "with_trial_id"]
