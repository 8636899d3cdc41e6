"""A local trial's log followed as it is written (``katuna logs -f``): as ``tail -f`` follows a
file, to the end of the attempt, and from one attempt to the next as ``kubectl logs -f`` follows
a container, for a trial run again (its process killed from outside, preempted, or its study
interrupted and resumed).

The log and the trial's row are polled every :data:`POLL_SECONDS`: a sleep between reads, no
inotify, so the follow works on any file system the trial-log folder is on (NFS, a container's
overlay) and an idle follow costs a read of one row and a ``stat`` of the log twice a second.
Each read takes what the log grew by since the last, :data:`~functions.adapters.file_follow.CHUNK`
bytes at a time, so memory stays bounded however large the log. An attempt ends once its trial's
row says so (the trial ended, or runs as a later attempt), which the executor writes after the
attempt's process ended: the log is then read to its end, and nothing of it is missed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from functions.adapters.file_follow import GrowingFile
from functions.adapters.sqlite_store import SqliteStore
from functions.cli_trial_table import EARLIER_ATTEMPT, reason_cell
from functions.core.cluster import Cluster
from functions.core.errors import StudyNotFound
from functions.core.launch import trial_launch
from functions.core.pod_selectors import follow_command
from functions.core.records import RUNNING, WAITING, StudyRecord, TrialRecord

POLL_SECONDS = 0.5
"""How often a followed trial's row and log are read: a line shows half a second after it was
written at most."""

CLUSTER_LOG = "the trial ran on Kubernetes, whose pods keep its log"
"""Why ``katuna logs`` reads no log of a cluster trial: it reads the trial-log folder alone."""


class Unfollowable(Exception):
    """The followed trial has no log to follow here; the message says why. The command's own
    signal, turned into its exit at once: never an error of katuna's API (no answer's code)."""


def attempt_over(trial: TrialRecord, attempt: int) -> bool:
    """Whether the trial's ``attempt`` has ended: the trial ended, or runs a later attempt."""
    return trial.attempt != attempt or trial.finished


@dataclass
class LogFollow:
    """The log of trial ``number`` of ``study``, whose attempts log to ``folder``, followed
    (:meth:`output`): ``tell`` says on stderr what the log does not (the trial waits to start,
    runs again, ended), ``interrupted`` whether nothing runs the study any more (its ``katuna
    run`` was killed: it resumes the trial as a new attempt). A ``pinned`` follow ends with its
    attempt; ``db`` is the ``--db`` the command its note names needs (``" --db PATH"``, or none:
    :func:`~functions.cli_common.on_database`)."""

    store: SqliteStore
    study: str
    number: int
    folder: Path
    tell: Callable[[str], None]
    interrupted: Callable[[], bool]
    pinned: bool = False
    db: str = ""
    poll: float = POLL_SECONDS
    sleep: Callable[[float], None] = time.sleep

    def output(self, attempt: int) -> Iterator[bytes]:
        """The bytes of the log of ``attempt`` and of each later one, as they are written, until
        the trial ends; a line break between two attempts where the earlier log ended without
        one, so that the next begins on a line of its own."""
        while True:
            trial, last = yield from self._attempt(attempt)
            if trial.attempt == attempt:
                reason = reason_cell(trial.reason)
                self.tell(f"trial {self.number} ended: {trial.state}"
                          + ("" if not reason or EARLIER_ATTEMPT.match(reason) else f": {reason}"))
                return
            if self.pinned:
                self.tell(f"attempt {attempt} ended: {_note(trial, attempt)}; the trial runs again as attempt "
                          f"{attempt + 1} (katuna logs -f {self.study} {self.number}{self.db} follows it)")
                return
            self.tell(f"attempt {attempt} ended: {_note(trial, attempt)}; attempt {attempt + 1} follows")
            if last not in (b"", b"\n"):
                yield b"\n"
            attempt += 1

    def _attempt(self, attempt: int) -> Generator[bytes, None, tuple[TrialRecord, bytes]]:
        """The log of ``attempt`` as it is written, to its end; returns the trial as stored
        then, and the log's last byte (none where it printed nothing)."""
        said: set[str] = set()
        last = b""
        with GrowingFile(self.folder / f"{self.number}.{attempt}.log") as log:
            while True:
                trial = self._trial()
                over = attempt_over(trial, attempt)
                grew = False
                for chunk in log.read():
                    grew, last = True, chunk[-1:]
                    yield chunk
                if over:
                    return trial, last
                self._tell_once(said, self._waits(trial, attempt, log, grew))
                self.sleep(self.poll)

    def _waits(self, trial: TrialRecord, attempt: int, log: GrowingFile, grew: bool) -> str | None:
        """What the follow waits for, where the log does not show it: the attempt to start, or
        a study nothing runs to resume; None while the attempt runs."""
        if trial.state == WAITING:
            return f"trial {self.number} waits to start (attempt {attempt}); its log follows once it does"
        if trial.state == RUNNING and not log.opened:
            raise Unfollowable(f"no log of trial {self.number} attempt {attempt} at {log.path.resolve()}: it runs, "
                               "and its file is not in the trial-log folder: the study's logs go to another folder "
                               "(KATUNA_LOG_DIR as it is set where the study runs)")
        if not grew and self.interrupted():
            return (f"the katuna process running study {self.study!r} is gone: trial {self.number} runs again when "
                    f"the study resumes (katuna run), and its log follows then")
        return None

    def _tell_once(self, said: set[str], what: str | None) -> None:
        if what is not None and what not in said:
            said.add(what)
            self.tell(what)

    def _trial(self) -> TrialRecord:
        """The followed trial as stored now; :class:`Unfollowable` once it or its study is gone."""
        trial = self.store.get_trial(self.study, self.number)
        if trial is not None:
            return trial
        try:
            self.store.get_study(self.study)
        except StudyNotFound:
            raise Unfollowable(f"study {self.study!r} was deleted") from None
        raise Unfollowable(f"study {self.study!r} has no trial {self.number} any more: a trial that never started "
                           "is forgotten when its study ends")


def _note(trial: TrialRecord, attempt: int) -> str:
    """How ``attempt`` ended, from the note the trial's reason keeps of it."""
    notes = [line for line in trial.reason.splitlines() if line.startswith(f"attempt {attempt} ")]
    return notes[0].removeprefix(f"attempt {attempt} ") if notes else "its run did not count"


def cluster_reads(record: StudyRecord, trial: TrialRecord, attempt: int | None, defaults: Cluster) -> str:
    """Where a cluster trial's log is read, and followed: the API of the service running the
    study (``katuna logs`` reads the trial-log folder alone, and knows of no service), and
    ``kubectl logs -f`` of the attempt's pods in their namespace (the study's, else
    ``defaults``', as the service's would be)."""
    number = attempt or trial.attempt
    path = f"/studies/{record.name}/trials/{trial.number}/logs?attempt={number}"
    launch = trial_launch(record, TrialRecord(trial.study, trial.number, trial.params, attempt=number))
    namespace = record.spec.trial_cluster.with_defaults(defaults).namespace or "default"
    follow = follow_command(launch, namespace)
    followed = "" if follow is None else (
        f"; follow it as it is written with {follow} (which follows the pods there as it starts: run it again "
        f"for a pod the attempt's Job replaces; the trial's next attempt has pods of its own)")
    return (f"{CLUSTER_LOG}: read it with the API of the katuna serve that runs the study, curl -sS -H "
            f"\"Authorization: Bearer $KATUNA_API_TOKEN\" \"$SERVICE_URL{path}\" (SERVICE_URL its address; "
            f"without KATUNA_API_TOKEN, no header){followed}")
