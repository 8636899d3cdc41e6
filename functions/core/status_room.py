"""A study resource's status cut to what etcd stores: a resource is one etcd value, its spec,
metadata and status together, and etcd refuses a write past its ``--max-request-bytes``
(1.5 MiB by default; the API server answers "etcdserver: request is too large").

The lists a status holds are bounded in count (:data:`~functions.core.resource_status.PARETO_FRONT_SHOWN`
trials of a Pareto front, as many Trial names a state), not in bytes: 100 trials of a front
of a study with 256 parameters of 40-character names are 2.5 MiB, and the problems of a refused
resource grow with its spec. So where the status would take the resource past the room etcd
leaves, or past :data:`STATUS_BYTES` (each write is a revision etcd keeps a while), those lists are cut, the counts beside them untouched (``paretoFrontSize``, the
``trials*`` counters): the Pareto front spread over fewer trials, each Trial list its latest
names, the problems the first ones. The cut is a function of the status and of the resource
as read, so the write and the tick's comparison (:func:`functions.handlers.writeback.behind`)
compute the same status.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from functions.core.spread import spread

ETCD_BYTES = 1536 * 1024
"""etcd's default ``--max-request-bytes`` (1,572,864): the most one stored object may take."""
SERVER_BYTES = 64 * 1024
"""Bytes left for what the API server adds to a resource as it stores it (``managedFields``,
the resourceVersion, the etcd key); a status write touches a few of ``managedFields``' lines."""
STATUS_BYTES = 256 * 1024
"""The most bytes a status takes where its lists can be cut to it: it is written at each trial's
change, each write a new etcd revision of the whole resource, kept until the API server
compacts them (every five minutes), so ten writes a second of a 1.4 MiB status would hold 4 GB
of revisions; at most 256 KiB (100 trials of a front of 10 parameters are about 100 KB), 750 MB."""
MESSAGE_CHARS = 32_768
"""The most characters a condition's message holds (``metav1.Condition``'s ``maxLength``)."""
TRIAL_LISTS = ("pendingTrialList", "runningTrialList", "succeededTrialList", "failedTrialList",
               "earlyStoppedTrialList", "killedTrialList")
"""A Katib Experiment status's lists of Trial names by state (:mod:`functions.core.katib_trials`)."""


def size(obj: Any) -> int:
    """Bytes of ``obj`` as compact JSON, as the API server stores a custom resource."""
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


def room(resource: Mapping[str, Any]) -> int:
    """Bytes the status of ``resource`` (as read: its spec and metadata) may take: what etcd
    leaves beside the rest of it, and at most :data:`STATUS_BYTES`."""
    return min(ETCD_BYTES - SERVER_BYTES - size({k: v for k, v in resource.items() if k != "status"}), STATUS_BYTES)


def message(text: str) -> str:
    """A condition's message of at most :data:`MESSAGE_CHARS`, its start kept."""
    if len(text) <= MESSAGE_CHARS:
        return text
    cut = f" ... ({len(text) - MESSAGE_CHARS + 100:,} more characters)"
    return text[:MESSAGE_CHARS - 100] + cut


def fitted(status: Mapping[str, Any], bytes_left: int) -> dict[str, Any]:
    """``status`` as it fits in ``bytes_left``: whole when it does, else its Pareto front, then
    its Trial lists, then its problems cut to the most entries that fit. One that fits in no
    way is returned cut as far as it goes (etcd refuses it)."""
    fitting = dict(status)
    for key, cut in ((("paretoFront",), _spread), (TRIAL_LISTS, _latest), (("problems",), _first)):
        if size(fitting) <= bytes_left:
            break
        fitting = _fit(fitting, key, cut, bytes_left)
    return fitting


def _fit(status: dict[str, Any], keys: tuple[str, ...], cut: Callable[[list[Any], int], list[Any]],
         bytes_left: int) -> dict[str, Any]:
    """``status`` with each list at ``keys`` cut to the largest count (the same for each) that
    fits in ``bytes_left``, found by halving; lists that are not there stay as they are."""
    lists = {key: status[key] for key in keys if isinstance(status.get(key), list)}
    if not lists:
        return status

    def with_count(count: int) -> dict[str, Any]:
        return {**status, **{key: cut(listed, count) or None for key, listed in lists.items()}}

    low, high = 0, max(len(listed) for listed in lists.values())
    while low < high:
        middle = (low + high + 1) // 2
        if size(with_count(middle)) <= bytes_left:
            low = middle
        else:
            high = middle - 1
    return with_count(low)


def _spread(front: list[Any], count: int) -> list[Any]:
    """``count`` trials of the status's front, spread along it (the order of their first
    objective's values, whichever its direction: the same ends, the same even steps), listed
    as the status lists them, by number."""
    along = sorted(front, key=lambda entry: (_first_value(entry), entry.get("trialNumber", 0)))
    kept = {id(entry) for entry in spread(along, count)}
    return [entry for entry in front if id(entry) in kept]


def _first_value(entry: Mapping[str, Any]) -> float:
    """A front trial's first objective value (a front holds finite numbers; anything else last)."""
    values = entry.get("objectiveValues") or [None]
    return float(values[0]) if isinstance(values[0], int | float) else float("inf")


def _latest(names: list[Any], count: int) -> list[Any]:
    return names[len(names) - count:] if count else []


def _first(problems: list[Any], count: int) -> list[Any]:
    return problems[:count]
