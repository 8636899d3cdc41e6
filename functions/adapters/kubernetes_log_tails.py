"""What is kept of an attempt's pod logs as katuna ends it, read with
:class:`~functions.adapters.kubernetes_logs.PodLogs`: the last lines of its latest pod's log
(:func:`tail`); where the stop parses the output too, those same last lines are read with their
times, which tell the lines the reads of the running log kept from those they never read
(:func:`_unstamped`). Of a container its kubelet ran again in place, the tail of its run before
the current one comes first, as a person reads the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from functions.adapters.kubernetes_logs import PodLogs, restarted
from functions.adapters.kubernetes_status import counted
from functions.core.kept_tails import KEPT_BYTES, KEPT_LINES, kept_text, last_bytes, split_lines
from functions.core.log_cursor import pieces, returns_cut
from functions.core.log_keep import Kept

EARLIER_NOTE_BYTES = 512
"""Bytes the lines of katuna's around an earlier run's kept tail take at most."""


def tail(logs: PodLogs, pods: list[Any], namespace: str, container: str, seen: Callable[[str], None] | None = None,
         after: Kept | None = None) -> tuple[str, bool] | None:
    """The last :data:`~functions.core.kept_tails.KEPT_BYTES` of the log of the attempt's
    latest pod that has one (of its last :data:`~functions.core.kept_tails.KEPT_LINES`
    records and one more, which tells a log cut short, so a long log costs no more to read
    than a short one: :func:`~functions.core.kept_tails.kept_text`), and whether that is the
    attempt's whole log (its only pod's, all of it); None when no pod has a log. Of a
    container its kubelet ran again in place, the tail of its run before the current one
    comes first, as :meth:`~functions.adapters.kubernetes_logs.PodLogs.read_as_shown` shows it,
    in up to half the bytes where the current run's tail needs the rest: the crash a person
    looks for is often there.

    With ``seen``, the current run's records are read with their times (the same one read),
    which are taken off what is kept, and each line among them past what ``after`` kept of the
    pod's running log (every one, where nothing was) is handed to ``seen``, cut at its carriage
    returns as the output's lines are: the lines printed since the running log was last read."""
    for pod in reversed(counted(pods)):
        if not (pod.spec and pod.spec.node_name):
            continue
        ended = restarted(pod, container)
        earlier = None if ended is None else _tail_of(logs, pod, namespace, container, previous=True)
        cursor = after.of(pod.metadata.uid) if after is not None else None
        position = (cursor.at, cursor.same) if cursor is not None else (0, 0)
        read = _tail_of(logs, pod, namespace, container, handed=None if seen is None else (seen, position))
        if read is None and earlier is None:
            continue
        return _after_earlier(pod, ended, earlier, read, len(pods))
    return None


def _after_earlier(pod: Any, ended: tuple[int, Any] | None, earlier: tuple[str, bool] | None,
                   read: tuple[str, bool] | None, pods: int) -> tuple[str, bool]:
    """What is kept of the pod's log, ``read``, behind the ``earlier`` run's tail, if any, in
    up to half of :data:`~functions.core.kept_tails.KEPT_BYTES` (:func:`tail`), and whether
    that is the attempt's whole log (of its only pod among ``pods``)."""
    text, complete = read or ("", True)
    if ended is not None and earlier is not None:
        room = KEPT_BYTES - EARLIER_NOTE_BYTES - min(len(text.encode()), KEPT_BYTES // 2)
        before, all_kept = last_bytes(split_lines(earlier[0]), room)
        text, rest = last_bytes(split_lines(text), KEPT_BYTES - len(before.encode()) - EARLIER_NOTE_BYTES)
        text = "".join(PodLogs.between(pod.metadata.name, ended, iter(split_lines(before)))) + text
        complete = complete and rest and all_kept and earlier[1] and ended[0] == 1
    return text, complete and pods == 1


def _tail_of(logs: PodLogs, pod: Any, namespace: str, container: str, previous: bool = False,
             handed: tuple[Callable[[str], None], tuple[int, int]] | None = None) -> tuple[str, bool] | None:
    """The kept text of the last records of the log of the pod's container (of its run
    before the current one, ``previous``) (:func:`~functions.core.kept_tails.kept_text`),
    and whether it is the run's whole log; with ``handed`` (``seen`` and a position), read
    with their times, the lines past the position handed to ``seen`` (:func:`_unstamped`)."""
    response = logs.read(pod, namespace, container=container, tail_lines=KEPT_LINES + 1, previous=previous or None,
                         timestamps=True if handed is not None else None)
    if response is None:
        return None
    if handed is None:
        return kept_text(logs.raw(pod.metadata.name, response), KEPT_LINES + 1)
    lines = logs.streamed(pod.metadata.name, response, returns=True)
    return kept_text(_unstamped(lines, *handed), KEPT_LINES + 1)


def _unstamped(lines: Iterable[str], seen: Callable[[str], None], position: tuple[int, int]) -> Iterator[bytes]:
    """The records of a read with ``timestamps`` (``lines``, which keep their carriage returns),
    their times taken off, as bytes; each line whose place in the log
    (:func:`~functions.core.log_cursor.pieces`) is past ``position`` handed to ``seen`` cut at
    its carriage returns (:func:`~functions.core.log_cursor.returns_cut`), as
    :func:`~functions.core.log_keep.unread` gives the lines a read of the running log left."""
    for at, same, text, ends in pieces(lines):
        if (at, same) > position:
            for part in returns_cut([text]):
                seen(part)
        yield (text + "\n" if ends else text).encode()
