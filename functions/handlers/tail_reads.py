"""Reading the last lines of the logs of trials being stopped, so the stop of those read waits
for no other.

A stop keeps the last lines of each stopped trial's log before its workload goes
(:mod:`functions.handlers.stopping`). Read one after the other, before the one stop of them
all, a pod whose log cannot be read quickly (on a node whose kubelet does not answer) held up
the stop of every other trial by as long as the API's timeout, once per such pod. The logs are
read :data:`READERS` at a time instead, and the reads come back in rounds: every
:data:`ROUND` seconds, the trials read since are stopped together, so a slow read holds up only
its own trial's stop, which still waits for it (each read is bounded by the API's timeout).
The reads share what the executor listed for them all
(:meth:`~functions.core.ports.Executor.together`): they run in copies of the caller's context.

A trial whose output is parsed as it is stopped (:class:`~functions.handlers.stopped_output.StoppedOutput`:
one its study's end stopped) has it parsed from that same one read: on a cluster, the lines among
its last that were printed since its running log was last read (a bounded read, the same
request), locally its whole output and its metrics file: the stop reads no log twice. Where
that read fails, only what was kept of its running log stays, and its last lines alone are read
as any other trial's are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ALL_COMPLETED, Future, ThreadPoolExecutor, wait
from contextvars import copy_context

from functions.core.errors import KatunaError, Stopping
from functions.core.kept_tails import KeptTail
from functions.core.launch import TrialLaunch
from functions.core.ports import Executor
from functions.handlers.stopped_output import StoppedOutput

log = logging.getLogger("katuna.stopping")

READERS = 8
"""Logs read at once: enough that a few slow ones leave room for the rest, few enough to ask
the API server for little at a time."""

ROUND = 1.0
"""Seconds between the stops of the trials whose logs were read meanwhile, while others are
still being read: the stop of those read waits this long at most for the rest, and a stop of a
hundred trials read within it stays one request."""

Tails = dict[tuple[int, int], KeptTail]
"""The kept last lines by trial number and attempt."""


def read_in_rounds(executor: Executor, launches: Sequence[TrialLaunch], keep: bool,
                   outputs: Mapping[int, StoppedOutput] | None = None) -> Iterator[tuple[list[int], Tails]]:
    """The trial numbers of ``launches`` whose logs' last lines were read, with what is kept of
    each (:meth:`~functions.core.ports.Executor.last_lines`; None kept for none), round after
    round until every read has ended; the first round holds every trial whose read ended within
    :data:`ROUND` seconds. The output of each trial in ``outputs`` (by number) is parsed in that
    same read (:func:`_read`). One launch, or none, is read in this thread, in one round."""
    parses = outputs or {}
    if len(launches) <= 1:
        with executor.together(launches):
            read = [(launch, _read(executor, launch, keep, parses.get(launch.number))) for launch in launches]
        yield [launch.number for launch in launches], _tails(read)
        return
    pool = ThreadPoolExecutor(min(READERS, len(launches)), thread_name_prefix="katuna-tails")
    try:
        with executor.together(launches):
            pending: dict[Future[KeptTail | None], TrialLaunch] = {
                pool.submit(copy_context().run, _read, executor, launch, keep, parses.get(launch.number)): launch
                for launch in launches}
        while pending:
            done, _ = wait(pending, timeout=ROUND, return_when=ALL_COMPLETED)
            ended = [(pending.pop(future), future.result()) for future in done]
            if ended:
                yield [launch.number for launch, _ in ended], _tails(ended)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _read(executor: Executor, launch: TrialLaunch, keep: bool, output: StoppedOutput | None) -> KeptTail | None:
    """The attempt's last lines; with ``output``, those the same read gives of its output are
    handed to ``output`` to parse, and its metrics file after them where it has one on this
    machine's disk (:attr:`~functions.handlers.stopped_output.StoppedOutput.file`). A read that fails
    (but for katuna stopping) counts for nothing in ``output``, and is logged; the last lines
    alone are read then."""
    if output is None:
        return executor.last_lines(launch, keep)
    try:
        tail = executor.last_lines(launch, keep, output, output.after)
        if output.file is not None:
            output.read_file(executor.read_file(launch, output.file))
        return tail
    except Stopping:
        raise
    except KatunaError as exc:
        output.lost()
        log.warning("reading the output of %s before it is stopped: %s; it keeps only what was kept of its "
                    "running log", launch.job_name, exc)
        return executor.last_lines(launch, keep)


def _tails(read: list[tuple[TrialLaunch, KeptTail | None]]) -> Tails:
    return {(launch.number, launch.attempt): tail for launch, tail in read if tail is not None}
