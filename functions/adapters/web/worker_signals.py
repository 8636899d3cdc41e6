"""How a worker of ``katuna serve`` takes the signals that stop it, whenever they come.

A terminal's Ctrl-C or hang-up reaches the arbiter and every worker at once, and the arbiter
sends its own quit on top; each worker must close its runtime once, whole (its trials' ends
recorded as interrupted), whatever moment of its life the signals find it in:

- Between its fork and the moment it sets its own handlers, a worker still has the arbiter's,
  which only queue a signal for a loop the worker never runs: the signal would be lost, and the
  worker, once loaded, would serve on until the arbiter kills it. The stopping signals are
  blocked around the worker's fork (:func:`hold_stop_signals_across_worker_fork`), so such a
  signal waits in the new worker until its handlers are set.
- While it loads its application, a quit cannot cut the loading short without leaving a
  runtime half made and never closed: it is taken when the loading ends, and the worker then
  stops before serving anything.
- A quit is taken once; a second one, landing while the runtime closes, does nothing. It is
  not ignored outright (``SIG_IGN``): one already pending as the handler changed would make
  Python raise ``OSError`` ("ignored due to race condition") wherever the worker is then, in
  the middle of closing its runtime maybe.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

STOPPING = frozenset({signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP})

_forks: dict[str, bool] = {"hooked": False, "worker next": False}


def hold_stop_signals_across_worker_fork() -> None:
    """Block the stopping signals around this process's next fork, the arbiter's of the worker
    being made: the worker inherits them blocked, and unblocks them once its own handlers are
    set. Any other fork (a worker's of a trial, the arbiter's re-exec) leaves them as they are,
    as a signal mask outlives an exec."""
    if not _forks["hooked"]:
        os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                            after_in_child=_after_fork_in_child)
        _forks["hooked"] = True
    _forks["worker next"] = True


def _before_fork() -> None:
    if _forks["worker next"]:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)


def _after_fork_in_parent() -> None:
    if _forks["worker next"]:
        _forks["worker next"] = False
        _unblock()


def _after_fork_in_child() -> None:
    _forks["worker next"] = False


def _unblock() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING)


def _already_quitting(signum: int, frame: Any) -> None:
    """A quit after the first: the worker is stopping already."""


class SignalledWorker(ThreadWorker):
    """gunicorn's threaded worker taking its stopping signals as the module says."""

    runtime: Any = None
    """The application's katuna runtime, once loaded; closed as the worker exits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Made by the arbiter just before it forks the worker's process."""
        hold_stop_signals_across_worker_fork()
        super().__init__(*args, **kwargs)

    def init_signals(self) -> None:
        """gunicorn's, and SIGHUP taken as SIGTERM: a terminal that hangs up sends it to each
        process of its foreground group, the workers too, whose default action would end them
        with no shutdown (their trials killed by the guard, their ends unrecorded). Then the
        signals that came since the fork are taken."""
        super().init_signals()
        signal.signal(signal.SIGHUP, self.handle_exit)
        signal.siginterrupt(signal.SIGHUP, False)
        _unblock()

    def handle_quit(self, sig: int, frame: Any) -> None:
        """SIGINT or SIGQUIT, gunicorn's quick stop, taken once: Ctrl-C in a terminal sends SIGINT
        to the worker and to the arbiter, which then sends SIGQUIT. A worker still loading its
        application stops once it is loaded, before serving."""
        signal.signal(signal.SIGINT, _already_quitting)
        signal.signal(signal.SIGQUIT, _already_quitting)
        if self.runtime is None:
            self.alive = False
            return
        super().handle_quit(sig, frame)

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: serve no more (gunicorn's graceful stop), and give up at once any read of a
        trial's output under way and any wait for the database's write lock
        (:meth:`functions.runtime.Runtime.stopping`). The worker may take a second or more to
        leave its loop and answer the requests it holds before its runtime closes; a handler
        reading a log of hundreds of megabytes meanwhile would read on to its end, and a request
        waiting on a database another process holds would wait out the busy timeout, the
        arbiter's whole grace. Given up, a handling's event goes back to the queue (see
        :meth:`functions.runtime.Runtime.close`)."""
        super().handle_exit(sig, frame)
        if self.runtime is not None:
            self.runtime.stopping()
