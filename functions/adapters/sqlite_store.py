"""The store port on one SQLite file, through sqlite-utils.

:class:`SqliteStore` is the store's one face to the rest of katuna; its parts live one group of
tables to a module: the connection and its transactions (:mod:`functions.adapters.sqlite_connection`),
the studies, the trials, how far their logs were read, their observations, the kept tails of their
logs, the service's own records, the node pool uses, and Optuna's journals.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from functions.adapters.sqlite_errors import translated
from functions.adapters.sqlite_fronts import SqliteFronts
from functions.adapters.sqlite_kept_tails import SqliteKeptTails
from functions.adapters.sqlite_observations import SqliteObservations
from functions.adapters.sqlite_pool_uses import SqlitePoolUses
from functions.adapters.sqlite_service import SqliteServiceRecords
from functions.adapters.sqlite_trial_logs import SqliteTrialLogs
from functions.adapters.sqlite_trial_pages import SqliteTrialPages
from functions.adapters.sqlite_versions import SqliteVersions

Store = TypeVar("Store", bound=type)


def _translating(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with translated(self.path):
            return method(self, *args, **kwargs)
    return call


def every_failure_translated(cls: Store) -> Store:
    """``cls`` with each public method's database failures raised as katuna's errors
    (:func:`~functions.adapters.sqlite_errors.translated`), reads outside a transaction
    included: a page of the file damaged in place is then told as such, naming the file, by
    whichever read meets it, never as SQLite's bare ``DatabaseError``. A generator's rows are
    translated as they are read (:meth:`~functions.adapters.sqlite_connection.SqliteConnection._lazy_rows`)."""
    for name, member in inspect.getmembers(cls, inspect.isfunction):
        if not name.startswith("_") and not inspect.isgeneratorfunction(member):
            setattr(cls, name, _translating(member))
    return cls


@every_failure_translated
class SqliteStore(SqliteTrialPages, SqliteFronts, SqliteVersions, SqliteTrialLogs, SqliteObservations, SqliteKeptTails,
                  SqliteServiceRecords, SqlitePoolUses):
    """Implements :class:`functions.core.store_port.Store`. Use one instance per thread."""
