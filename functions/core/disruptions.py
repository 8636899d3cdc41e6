"""How many runs a trial may lose to disruptions, counted in pods as well as in attempts.

A trial Job's ``podFailurePolicy`` ignores a pod with the ``DisruptionTarget`` condition and
replaces it inside the Job, for ever: a spot preemption costs no attempt. The same condition
marks the kubelet's node-pressure evictions, which the trial itself can cause (no memory limit,
checkpoints on the node's disk), and its replacement runs into the same pressure. So each pod
of an attempt lost to a disruption is a run lost, as a preempted attempt is one, and
``trialTemplate.maxAttempts`` bounds both together: an attempt's Job may lose as many pods as
the trial has attempts left after it, and the trial ends when it has lost that many runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

EVICTED = "Evicted"
"""A pod's ``status.reason`` when the kubelet evicted it (node pressure, or a local-storage limit)."""

MESSAGE_CHARS = 200
"""Characters of one disruption's message quoted in a trial's reason."""


@dataclass(frozen=True)
class Disruption:
    """One pod of an attempt lost to something other than its trial's own end: ``cause`` is how
    Kubernetes names it (the pod's ``status.reason`` the kubelet set: ``Evicted``,
    ``Terminated``; else the ``DisruptionTarget`` condition's reason: ``PreemptionByScheduler``,
    ``EvictionByEvictionAPI``), ``message`` its message."""

    cause: str
    message: str = ""


def pods_to_lose(attempt: int, max_attempts: int) -> int:
    """Disrupted pods the Job of ``attempt`` may lose and replace: with one run lost per earlier
    attempt, the trial still has a run left after each (none in its last attempt)."""
    return max(max_attempts - attempt, 0)


def runs_lost(attempt: int, disruptions: int) -> int:
    """Runs a trial has lost when ``attempt`` ends preempted having lost ``disruptions`` pods:
    one per earlier attempt, and this attempt's (at least one, its own run)."""
    return attempt - 1 + max(disruptions, 1)


def exhausted(attempt: int, max_attempts: int, lost: Sequence[Disruption]) -> str | None:
    """Why the attempt ends now, having lost more pods than :func:`pods_to_lose` (its Job would
    replace them for ever), naming each cause; None while it may go on."""
    if len(lost) <= pods_to_lose(attempt, max_attempts):
        return None
    pods = f"{len(lost)} pod" + ("s" if len(lost) > 1 else "")
    earlier = " with its earlier attempts" if attempt > 1 else ""
    message = (f"its Job lost {pods} ({_causes(lost)}): the trial lost {runs_lost(attempt, len(lost))} "
               f"runs{earlier}, and trialTemplate.maxAttempts is {max_attempts}")
    if any(d.cause == EVICTED for d in lost):
        message += (". The kubelet evicts pods when their node runs short of memory or disk, and a trial "
                    "with no limit may be exhausting its node's memory or disk: give it a memory limit "
                    "(trialTemplate.resources.memory is also its limit) and an ephemeral-storage limit "
                    "(resources.limits of a trialSpec's container), so that a trial over one fails once "
                    "instead of being evicted and run again")
    return message


def _causes(lost: Sequence[Disruption]) -> str:
    """Each cause with its count and its first message, most frequent first."""
    first: dict[str, str] = {}
    for disruption in lost:
        first.setdefault(disruption.cause, disruption.message.strip()[:MESSAGE_CHARS])
    return "; ".join(f"{count} {cause}" + (f": {first[cause]}" if first[cause] else "")
                     for cause, count in Counter(d.cause for d in lost).most_common())
