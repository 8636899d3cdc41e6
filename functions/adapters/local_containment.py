"""The ending of a :class:`functions.adapters.local_executor.LocalExecutor`'s attempts' processes:
an attempt's whole process tree killed (a timeout, a stop, a shutdown), what its main process
left behind ended once it ends, the processes of attempts whose owner died ended as strays, and,
where this process is every child's parent, the orphans trials left outside their session.

Kept apart from the attempts' steps (:mod:`functions.adapters.local_attempts`): it reads the
attempts' book (:mod:`functions.adapters.local_book`) and the guard, and reports nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal

from functions.adapters import process_tree
from functions.adapters.local_book import Book
from functions.adapters.local_guard import Guard
from functions.adapters.local_run import LocalRun

log = logging.getLogger("katuna.executor")


class Containment:
    """Ends the processes of one executor's attempts, each within ``kill_grace`` seconds of its
    SIGTERM. Made as the executor is: it makes this process a child subreaper, unreadable to its
    trials (:func:`~functions.adapters.process_tree.hide_from_trials`), and starts the guard."""

    def __init__(self, book: Book, kill_grace: float, sole_parent: bool) -> None:
        self._book = book
        self.kill_grace = kill_grace
        self._sole_parent = sole_parent
        """Whether every child this process starts is a trial's process or the guard (``katuna
        run``, a ``katuna serve`` worker): then, when no attempt runs and at shutdown, any other
        child but those it had already is an orphan a trial left, and is ended
        (:func:`~functions.adapters.process_tree.adopted`)."""
        self._inherited = process_tree.children() if sole_parent else frozenset()
        """Children this process had before it started any trial: those of a shell that ``exec``'d
        it (``sh -c 'tensorboard & exec katuna run ...'``), never taken for a trial's orphans."""
        self.guard = Guard(kill_grace, self._inherited if sole_parent else None)
        """Ends the running attempts' processes if this process is killed outright (and, as sole
        parent, the processes its children were, orphans of trials among them)."""
        process_tree.become_subreaper()
        process_tree.hide_from_trials()

    def end_strays(self, strays: frozenset[str]) -> None:
        """End every process of the attempts whose markers are ``strays``."""
        process_tree.end(None, strays.__contains__, self.kill_grace)

    def contain(self, run: LocalRun) -> None:
        """End every process of the attempt that is still alive, and reap those adopted here.
        The guard process is left out of the look, with what it started: it starts nothing, and
        no trial's process can be adopted under it, as it is no ancestor of any; its exit status
        is the guard's own to collect."""
        keep = self._book.leaders() | self.guard.processes()
        process_tree.end(run.started.pid, run.marker.__eq__, self.kill_grace, keep=keep, since=run.since,
                         own=process_tree.adopts_orphans())

    def kill(self, run: LocalRun) -> None:
        """End the attempt's whole process tree: SIGTERM, then SIGKILL after the grace period.
        The thread waiting for the attempt collects its main process
        (:meth:`~functions.adapters.local_attempts.LocalAttempts._wait`)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.started.pid, signal.SIGTERM)
        self.contain(run)

    def end_adopted(self) -> None:
        """End the orphans of trial processes that left their session and cleared their
        environment, where this process is their sole parent (see :attr:`_sole_parent`), once no
        attempt runs: looked for while no launch can begin (an attempt is registered before its
        process starts), so none is taken for one."""
        if not (self._sole_parent and process_tree.adopts_orphans()):
            return
        # Every guard process not yet collected is left, read as each child is looked at: one
        # started again since, one being closed (a trial's thread may look as the shutdown closes
        # the guard), one found dead and not yet waited for.
        orphans = self._book.when_idle(
            lambda: process_tree.adopted(lambda p: p.pid in self._inherited or p.pid in self.guard.processes()))
        if orphans is None:
            return
        process_tree.end_family(orphans, self.kill_grace)
        if orphans:
            log.warning("ended %d process(es) that trials left running outside their session and without "
                        "KATUNA_ATTEMPT_ID", len(orphans))
