"""The store port on one SQLite file, through sqlite-utils.

:class:`SqliteStore` is the store's one face to the rest of katuna; its parts live one group of
tables to a module: the connection and its transactions (:mod:`functions.adapters.sqlite_connection`),
the studies, the trials, how far their logs were read, their observations, the kept tails of their
logs, the service's own records, and the node pool uses.
"""

from __future__ import annotations

from functions.adapters.sqlite_kept_tails import SqliteKeptTails
from functions.adapters.sqlite_observations import SqliteObservations
from functions.adapters.sqlite_pool_uses import SqlitePoolUses
from functions.adapters.sqlite_service import SqliteServiceRecords
from functions.adapters.sqlite_trial_logs import SqliteTrialLogs
from functions.adapters.sqlite_trial_pages import SqliteTrialPages


class SqliteStore(SqliteTrialPages, SqliteTrialLogs, SqliteObservations, SqliteKeptTails, SqliteServiceRecords,
                  SqlitePoolUses):
    """Implements :class:`functions.core.store_port.Store`. Use one instance per thread."""
