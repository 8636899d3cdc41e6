"""An attempt's output parsed before the transaction of the handling that records it.

Reading and parsing a trial's output takes as long as the output is large (hundreds of
megabytes, or a pod's log streamed from the cluster), and a handler runs in a write transaction:
parsed there, a large output would hold the database's write lock, and every other writer (other
studies' events, other workers) would wait for it. So the dispatcher has it parsed first, outside
any transaction (:func:`functions.handlers.collect.prepare`), and the handler, in its transaction,
takes the parse only if the state it read is still the state it assumed (its :attr:`basis`);
otherwise it parses again there, as it would have without one. Where trials run on a cluster,
the start of the attempt's log is read with it, for the same reason: it is a call to the
Kubernetes API, which no transaction should wait on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.core.errors import OutputLost
from functions.core.log_rotation import LogStart
from functions.core.metric_summary import Summary


@dataclass(frozen=True)
class ParsedOutput:
    """What an attempt's output gave, and the stored state it was parsed against."""

    basis: tuple[Any, ...]
    """What the parse assumed: the attempt's launch, the study's spec, and what was kept of the
    attempt's running log (whose observations the parse went on from)."""
    summary: Summary
    """The observations, reduced and kept (none when the output was lost)."""
    tail: tuple[str, ...] = ()
    """The last lines the attempt printed (for a failure's reason)."""
    size: int = 0
    """Bytes of output read."""
    lost: OutputLost | None = None
    """Why the output could not be read, when it was lost."""
    start_read: bool = False
    """Whether the start of the attempt's cluster log was read with the output (:attr:`start`)."""
    start: LogStart | None = None
    """Where the attempt's cluster log began when its output was read (None when it could not be
    read): what the trial's reason says of the kubelet's rotation of it is judged from this
    (:mod:`functions.core.log_rotation`)."""
