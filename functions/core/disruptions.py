"""How many runs a trial may lose to disruptions, counted in pods as well as in attempts.

A trial Job's ``podFailurePolicy`` ignores a pod with the ``DisruptionTarget`` condition and
replaces it inside the Job, for ever: a spot preemption costs no attempt. The same condition
marks the kubelet's node-pressure evictions, which the trial itself can cause (no memory limit,
checkpoints on the node's disk), and its replacement runs into the same pressure. So each pod
of an attempt lost to a disruption is a run lost, as a preempted attempt is one, and
``trialTemplate.maxAttempts`` bounds both together: an attempt's Job may lose as many pods as
the trial has attempts left after it, and the trial ends when it has lost that many runs.

The pods are counted as seen, not as found: the scheduler, the Eviction API, the taint manager
and the pod garbage collector delete a disrupted pod once the Job controller has counted it, and
the Job's status has no count of the failures its policy ignored. So the disrupted pods of an
attempt seen at each look are kept with the trial (:class:`LostPods`), and the count only grows.
A look may miss a disruption whole, the pod deleted between two looks: so the pods seen running
are kept too, and one of them gone from a Job still running is a run lost (:data:`VANISHED`),
as nothing but a disruption deletes the pod of a running Job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from functions.core.remade_pods import Remade

EVICTED = "Evicted"
"""A pod's ``status.reason`` when the kubelet evicted it (node pressure, or a local-storage limit)."""

MESSAGE_CHARS = 200
"""Characters of one disruption's message quoted in a trial's reason."""

VANISHED = "Deleted"
"""The cause of a pod seen running at one look and gone at the next while its Job runs on."""


@dataclass(frozen=True)
class Disruption:
    """One pod of an attempt lost to something other than its trial's own end: ``cause`` is how
    Kubernetes names it (the pod's ``status.reason`` the kubelet set: ``Evicted``,
    ``Terminated``; else the ``DisruptionTarget`` condition's reason: ``PreemptionByScheduler``,
    ``EvictionByEvictionAPI``), ``message`` its message."""

    cause: str
    message: str = ""


@dataclass(frozen=True)
class LostPods:
    """The pods of a trial's ``attempt`` seen disrupted, by pod uid: kept with the trial, as
    the pods themselves are deleted soon after (see the module's docstring)."""

    attempt: int = 0
    pods: Mapping[str, Disruption] = field(default_factory=dict)
    running: frozenset[str] = frozenset()
    """The uids of the attempt's pods running at the latest look."""
    remade: Remade = field(default_factory=Remade)
    """The pods of the attempt's ``ExitCode`` replicas seen so far (:mod:`functions.core.remade_pods`)."""

    def of(self, attempt: int) -> Mapping[str, Disruption]:
        """The pods lost by ``attempt``: none when those kept are an earlier attempt's."""
        return self.pods if attempt == self.attempt else {}

    def running_of(self, attempt: int) -> frozenset[str]:
        """The pods of ``attempt`` running at the latest look: none when an earlier attempt's."""
        return self.running if attempt == self.attempt else frozenset()

    def remade_of(self, attempt: int) -> Remade:
        """The pods of ``attempt``'s ``ExitCode`` replicas seen: none when those kept are an earlier attempt's."""
        return self.remade if attempt == self.attempt else Remade()

    def seen(self, attempt: int, pods: Mapping[str, Disruption], running: frozenset[str],
             remade: Remade | None = None) -> LostPods:
        """These with ``pods`` of ``attempt`` seen too (a pod seen again is counted once, so a
        look repeated or delivered twice changes nothing), the pods ``running`` now, and the
        ``remade`` pods a look merged with those kept (None: kept as they are); an earlier
        attempt's are dropped."""
        kept = self.of(attempt)
        return LostPods(attempt, {**kept, **{uid: Disruption(d.cause, d.message[:MESSAGE_CHARS])
                                            for uid, d in pods.items() if uid not in kept}}, running,
                        self.remade_of(attempt) if remade is None else remade)

    def to_dict(self) -> dict[str, Any]:
        kept = {"attempt": self.attempt, "pods": {uid: [d.cause, d.message] for uid, d in self.pods.items()},
                "running": sorted(self.running)}
        return {**kept, "remade": self.remade.to_dict()} if self.remade != Remade() else kept

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> LostPods:
        """As :meth:`to_dict` wrote it; nothing lost for None (a trial that never lost a pod)."""
        if not data:
            return cls()
        return cls(int(data["attempt"]), {uid: Disruption(*pair) for uid, pair in data["pods"].items()},
                   frozenset(data.get("running", ())), Remade.from_dict(data.get("remade")))


def vanished(running_before: frozenset[str], present: set[str]) -> dict[str, Disruption]:
    """The pods seen running at the latest look and gone now, while their Job runs on: lost
    runs whose disruption no look saw (:data:`VANISHED`)."""
    return {uid: Disruption(VANISHED, "its pod was deleted while the Job ran, between two looks (a preemption, "
                                      "an eviction or a node's removal deletes a pod so)")
            for uid in running_before - present}


def pods_to_lose(attempt: int, max_attempts: int) -> int:
    """Disrupted pods the Job of ``attempt`` may lose and replace: with one run lost per earlier
    attempt, the trial still has a run left after each (none in its last attempt)."""
    return max(max_attempts - attempt, 0)


INTERRUPTIONS = 10
"""Attempts beyond ``trialTemplate.maxAttempts`` that a trial may be run again for, after
katuna ended its run as katuna itself stopped (``interrupted``): such a run is no run the trial
lost, but a trial that itself makes katuna stop (starving a worker past its timeout, say)
must not run again for ever."""


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
