"""How much of a local attempt's TensorFlow event files katuna reads: the bytes of records,
bounded across the files of one read.

The service's side of :mod:`functions.core.tfevents`, whose source runs alone inside a cluster
trial's container, where its reader reads at the trial's cost, without a limit: here the
records cost the service's CPU, so each read takes its bytes from a :class:`Budget` first.
"""

from __future__ import annotations

MAX_READ = 16 * 1024 * 1024
"""The most bytes of records katuna reads of a local attempt's event files by default, all of
them together (each record's 12-byte header counted, a record passed over unread counted by its
header only); :data:`SETTING` raises or lowers it. Reading and decoding them costs the service's
CPU about 1 s a MiB of scalar events (measured on two busy cores), so a trial writing hundreds
of megabytes of them would hold a worker for minutes. 16 MiB holds about 330,000 scalar events
(a step's few scalars logged at every step of a long run), read in about 15 s there. On a
cluster the reader runs in the trial's own container, at the trial's cost, without a limit."""

SETTING = "KATUNA_MAX_TFEVENTS"
"""The service's setting of the bytes of records read of a local attempt's event files (this
module names it only, reading no setting itself)."""


class TooMuchToRead(Exception):
    """Event files holding more bytes of records than are read (:class:`Budget`): not a
    ``ValueError``, which ends one file's reading only."""


class Budget:
    """Bytes of records still to read across the event files of one read: ``most`` of them
    (:data:`MAX_READ` unless :data:`SETTING` says otherwise). Its :meth:`take` is what
    :func:`functions.core.tfevents.directory_records` tells the bytes it is about to read."""

    def __init__(self, directory: str, most: int = MAX_READ) -> None:
        self.directory, self.most, self.left = directory, most, most

    def take(self, count: int) -> None:
        """Count ``count`` bytes about to be read: a :class:`TooMuchToRead` past the budget,
        naming the setting that raises it."""
        self.left -= count
        if self.left < 0:
            raise TooMuchToRead(
                f"the event files under {self.directory} hold more than {self.most:,} bytes of records; katuna reads "
                f"at most {self.most:,} of an attempt's ({SETTING}), so none of its metrics counts: write scalars "
                f"less often, or images, histograms and graphs to another folder than the collector's, or raise "
                f"{SETTING}")
