"""Optuna's storage on the store's connection: the studies' journals (their own group of tables,
:mod:`functions.adapters.sqlite_journal_tables`), each study loaded once per connection, and the
charts' histories read from them.

Optuna's state read inside a write transaction goes with it when it rolls back, and a snapshot
of a journal grown long is written as the transaction's last write
(:meth:`~functions.adapters.sqlite_connection.SqliteConnection.transaction`). Optuna itself is
imported at the storage's first use: a command that lists studies needs none of it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from functions.adapters.sqlite_connection import SqliteConnection
from functions.adapters.sqlite_journal_tables import STREAMS_TABLE
from functions.adapters.sqlite_journal_tables import TABLE as JOURNAL_TABLE
from functions.core.application import ChartHistory, HistoryCut
from functions.core.file_systems import ROLLBACK_ON_NETWORK, NetworkRule

if TYPE_CHECKING:
    import optuna

    from functions.adapters.sqlite_histories import ChartHistories
    from functions.adapters.sqlite_journal import KatunaJournalStorage
    from functions.adapters.sqlite_streams import KatunaStreams


class SqliteOptuna(SqliteConnection):
    """The connection's Optuna storage and the studies loaded through it."""

    def __init__(self, path: str | Path, busy_timeout: float = 30.0, histories: ChartHistories | None = None,
                 stopped: Callable[[], bool] = lambda: False, network: NetworkRule = ROLLBACK_ON_NETWORK) -> None:
        """``histories``: where the charts' histories are read and kept, one object shared by a
        process's stores (made at first use where none is given); see
        :class:`~functions.adapters.sqlite_connection.SqliteConnection` for the rest."""
        self._histories = histories
        self._optuna: KatunaStreams | None = None
        self._studies: OrderedDict[tuple[str, int], tuple[KatunaJournalStorage, optuna.Study]] = OrderedDict()
        """Optuna's view of the studies loaded, those whose journals the storage keeps read
        (:meth:`~functions.adapters.sqlite_streams.KatunaStreams.stream`): a study holds its
        journal, which would otherwise stay in memory after the storage dropped it."""
        super().__init__(path, busy_timeout, stopped, network)

    def _before_commit(self) -> None:
        """A snapshot of a journal grown long, written inside the transaction that grew it."""
        if self._optuna is not None:
            self._optuna.snapshot_if_due()

    def _forget(self) -> None:
        """Optuna's state read inside a transaction rolled back: read again at next use."""
        self._optuna = None
        self._studies.clear()

    def optuna_storage(self) -> KatunaStreams:
        """Optuna's storage of every study (:mod:`functions.adapters.sqlite_streams`)."""
        if self._optuna is None:
            from functions.adapters.sqlite_streams import KatunaStreams

            self._optuna = KatunaStreams(self.db.conn, lambda: self._writing)
        return self._optuna

    def optuna_stream(self, name: str) -> KatunaJournalStorage:
        """Optuna's storage of the study ``name`` alone, in which it is study 0, as
        :meth:`optuna_study` uses it; ``KeyError`` when Optuna has no such study."""
        storage = self.optuna_storage()
        return storage.stream(storage.get_study_id_from_name(name))

    def optuna_version(self, name: str) -> int:
        """How many records the study's Optuna journal holds: any change to its state raises it."""
        return self.db.execute(f"SELECT coalesce(max(number), 0) FROM {JOURNAL_TABLE} WHERE stream = "
                               f"(SELECT id FROM {STREAMS_TABLE} WHERE name = ?)", [name]).fetchone()[0]

    def chart_history(self, name: str, version: int) -> ChartHistory | None:
        """The study's Optuna state at journal position ``version`` or later (or as far as a
        chart reads), for charts: read once and shared by every store given the same
        :class:`ChartHistories`, outside this connection's own Optuna state (which keeps what it
        reads); None when Optuna has no such study."""
        row = self.db.execute(f"SELECT id FROM {STREAMS_TABLE} WHERE name = ?", [name]).fetchone()
        if row is None:
            return None
        if self._histories is None:
            from functions.adapters.sqlite_histories import ChartHistories

            self._histories = ChartHistories()
        history = self._histories.history(str(self.path), row[0], version)
        cut = HistoryCut(history.trials, self.optuna_history(name), history.reader.budget) if history.cut else None
        return ChartHistory(history.storage, cut)

    def optuna_history(self, name: str) -> int:
        """How many trials the study's Optuna journal has created: what a process that serves
        it loads, read without loading it (0 for a study Optuna does not have)."""
        row = self.db.execute(f"SELECT trials FROM {STREAMS_TABLE} WHERE name = ?", [name]).fetchone()
        return row[0] if row else 0

    def optuna_histories_over(self, limit: int, shown: int) -> tuple[list[tuple[str, int]], int]:
        """The studies whose Optuna journals have created more than ``limit`` trials: the
        ``shown`` largest, ``(name, trials)`` largest first, and how many there are in all."""
        over = self.db.execute(f"SELECT name, trials FROM {STREAMS_TABLE} WHERE trials > ? ORDER BY trials DESC, id "
                               "LIMIT ?", [limit, shown]).fetchall()
        count = self.db.execute(f"SELECT count(*) FROM {STREAMS_TABLE} WHERE trials > ?", [limit]).fetchone()[0]
        return [(name, trials) for name, trials in over], count

    def optuna_values_over(self, limit: int, shown: int) -> tuple[list[tuple[str, int]], int]:
        """The studies whose Optuna journals hold more than ``limit`` records (values, as
        :meth:`optuna_version` counts them): the ``shown`` largest, ``(name, records)`` largest
        first, and how many there are in all. One look up the journal's key per study."""
        each = (f"WITH held AS (SELECT id, name, (SELECT coalesce(max(number), 0) FROM {JOURNAL_TABLE} "
                f"WHERE stream = {STREAMS_TABLE}.id) AS records FROM {STREAMS_TABLE}) ")
        over = self.db.execute(each + "SELECT name, records FROM held WHERE records > ? ORDER BY records DESC, id "
                               "LIMIT ?", [limit, shown]).fetchall()
        count = self.db.execute(each + "SELECT count(*) FROM held WHERE records > ?", [limit]).fetchone()[0]
        return [(name, records) for name, records in over], count

    def optuna_study(self, name: str, directions: Sequence[str]) -> optuna.Study:
        """Loaded once per storage object and stream (a study deleted and created again under
        the same name gets a new stream), over the study's own storage, the one :meth:`optuna_stream`
        gives (loaded again where the storage dropped that journal since: two objects of one
        journal would not see each other's writes in a transaction); loading before creating
        keeps the journal free of repeated creation records."""
        import optuna

        storage = self.optuna_storage()
        stream = storage.stream_of(name)
        if stream is None:
            with suppress(optuna.exceptions.DuplicatedStudyError):
                storage.create_new_study([optuna.study.StudyDirection[d.upper()] for d in directions], name)
            stream = storage.get_study_id_from_name(name)
        key, journal = (name, stream), storage.stream(stream)
        loaded = self._studies.get(key)
        if loaded is None or loaded[0] is not journal:
            loaded = self._studies[key] = (journal, optuna.load_study(study_name=name, storage=journal))
        self._studies.move_to_end(key)
        for dropped in [other for other, (kept, _) in self._studies.items() if not storage.keeps(other[1], kept)]:
            del self._studies[dropped]
        return loaded[1]
