"""Each thread's connection to the service's database (:class:`functions.runtime.Runtime`), and
every connection made, so that all are closed at the end: the last one to go folds the
write-ahead log into the database file, which is then whole on its own."""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

from functions.adapters.sqlite_errors import FileIdentity, check_same_file
from functions.adapters.sqlite_histories import ChartHistories
from functions.adapters.sqlite_store import SqliteStore
from functions.core.file_systems import ROLLBACK_ON_NETWORK, NetworkRule


class ThreadStores:
    """The stores of one process: one per thread while the thread lives (a thread's store goes
    with it), all sharing the Optuna histories the charts read."""

    def __init__(self, db: Path, busy_timeout: float, histories: ChartHistories, network: NetworkRule = ROLLBACK_ON_NETWORK) -> None:
        """``network``: what is done with a database on a network file system (:class:`NetworkRule`)."""
        self._db = db
        self._network = network
        self._busy_timeout = busy_timeout
        self._histories = histories
        self._local = threading.local()
        self._stores: weakref.WeakSet[SqliteStore] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._opened: FileIdentity | None = None
        """The file the first store opened: a later one is not opened once the path names another."""
        self._stopping = threading.Event()

    def current(self) -> SqliteStore:
        """This thread's connection to the database."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = self.new()
        return store

    def new(self) -> SqliteStore:
        """Another connection, not this thread's own, closed with the others by :meth:`close`;
        refused once the path no longer names the file the first one opened, where it would
        create an empty database and split the process's reads and writes between two files."""
        check_same_file(self._db, self._opened)
        store = SqliteStore(self._db, self._busy_timeout, self._histories, stopped=self._stopping.is_set,
                            network=self._network)
        with self._lock:
            self._stores.add(store)
            if self._opened is None:
                self._opened = store.opened
        return store

    def stop_waiting(self) -> None:
        """Let every wait for the database's write lock, now or to come, give up at once with
        :class:`~functions.core.errors.Stopping` while another connection holds the lock: the
        process is stopping, and a request or a handling waiting out the busy timeout would hold
        the stop up by as long (:mod:`functions.adapters.sqlite_write_lock`)."""
        self._stopping.set()

    def stopping(self) -> bool:
        """Whether the process is stopping (:meth:`stop_waiting` was called): what the waits of
        the process's other connections to the database, the event queue's, heed too."""
        return self._stopping.is_set()

    def close(self) -> None:
        """Close every connection still open."""
        with self._lock:
            for store in list(self._stores):
                store.close()
