"""What is kept of an attempt's pod logs as katuna ends it, read with
:class:`~functions.adapters.kubernetes_logs.PodLogs`: the last lines of its latest pod's log
(:func:`tail`), or, where the stop parses the output too, the whole output streamed once, its
last lines kept from that same read (:func:`whole`). Of a container its kubelet ran again in
place, the tail of its run before the current one comes first, as a person reads the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from functions.adapters.kubernetes_logs import PodLogs, lost_output, restarted
from functions.adapters.kubernetes_status import counted, disrupted
from functions.core.kept_tails import KEPT_BYTES, KEPT_LINES, kept_text, last_bytes, split_lines

EARLIER_NOTE_BYTES = 512
"""Bytes the lines of katuna's around an earlier run's kept tail take at most."""


def tail(logs: PodLogs, pods: list[Any], namespace: str, container: str) -> tuple[str, bool] | None:
    """The last :data:`~functions.core.kept_tails.KEPT_BYTES` of the log of the attempt's
    latest pod that has one (of its last :data:`~functions.core.kept_tails.KEPT_LINES`
    records and one more, which tells a log cut short, so a long log costs no more to read
    than a short one: :func:`~functions.core.kept_tails.kept_text`), and whether that is the
    attempt's whole log (its only pod's, all of it); None when no pod has a log. Of a
    container its kubelet ran again in place, the tail of its run before the current one
    comes first, as :meth:`~functions.adapters.kubernetes_logs.PodLogs.read_as_shown` shows it,
    in up to half the bytes where the current run's tail needs the rest: the crash a person
    looks for is often there."""
    for pod in reversed(counted(pods)):
        if not (pod.spec and pod.spec.node_name):
            continue
        ended = restarted(pod, container)
        earlier = None if ended is None else _tail_of(logs, pod, namespace, container, previous=True)
        read = _tail_of(logs, pod, namespace, container)
        if read is None and earlier is None:
            continue
        return _after_earlier(pod, ended, earlier, read, len(pods))
    return None


def whole(logs: PodLogs, pods: list[Any], namespace: str, container: str, job_name: str,
          seen: Callable[[str], None]) -> tuple[str, bool]:
    """The attempt's output as :meth:`~functions.adapters.kubernetes_logs.PodLogs.streams`
    reads it, each line handed to ``seen`` as it streams in, and what :func:`tail` keeps, taken
    from the same one read of each pod's log: the last
    :data:`~functions.core.kept_tails.KEPT_BYTES` of the latest pod's, its lines keeping their
    carriage returns (those handed to ``seen`` are cut at them, as ``streams`` cuts them),
    behind the tail of its container's run before the current one where its kubelet ran it
    again in place (read as :func:`tail` reads it). Memory stays bounded, whatever the log's
    size. An output lost raises :class:`~functions.core.errors.OutputLost`."""
    kept: tuple[str, bool] | None = None
    read = False
    for pod in counted(pods):
        logs.check(pod.metadata.name)
        if not (pod.spec and pod.spec.node_name):
            continue
        ended = restarted(pod, container)
        earlier = None if ended is None else _tail_of(logs, pod, namespace, container, previous=True)
        response = logs.read(pod, namespace, logging.WARNING, container=container)
        if response is None and earlier is None:
            continue
        read = read or (response is not None and not disrupted(pod))
        lines = iter(()) if response is None else logs.streamed(pod.metadata.name, response, True)
        current = last_bytes(_handed(lines, seen), KEPT_BYTES) if response is not None else None
        kept = _after_earlier(pod, ended, earlier, current, len(pods))
    if not read:
        raise lost_output(job_name)
    return kept or ("", False)


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


def _tail_of(logs: PodLogs, pod: Any, namespace: str, container: str,
             previous: bool = False) -> tuple[str, bool] | None:
    """The kept text of the last records of the log of the pod's container (of its run
    before the current one, ``previous``) (:func:`~functions.core.kept_tails.kept_text`),
    and whether it is the run's whole log."""
    response = logs.read(pod, namespace, container=container, tail_lines=KEPT_LINES + 1, previous=previous or None)
    return None if response is None else kept_text(logs.raw(pod.metadata.name, response), KEPT_LINES + 1)


def _handed(lines: Iterator[str], seen: Callable[[str], None]) -> Iterator[str]:
    """``lines``, which keep their carriage returns, each also handed to ``seen`` cut at them,
    as a line read without them is (:func:`~functions.core.lines.bounded_lines`)."""
    for line in lines:
        text = line[:-1] if line.endswith("\n") else line
        for piece in text.split("\r"):
            seen(piece + "\n")
        yield line
