"""Pods of a Training Operator job that its operator deletes and makes again without end.

A replica whose ``restartPolicy`` is ``ExitCode`` runs in a pod whose own policy is ``Never``:
when its container ends with a code of 128 or more (killed: 137 for the kernel's OOM killer,
143 for a SIGTERM), the Training Operator (v1.9.0, ``ReconcilePods``) deletes the failed pod
and makes it again under its name. A pod made again has restarted nothing, so
``runPolicy.backoffLimit``, which sums the restarts in place of running pods, never counts it:
a trial OOM-killed at every run is made again for ever, holding its node, and its timeout
restarts with each new pod.

So katuna counts them from the pods it reads at each look of the running trial (no request
more): a pod name seen under a new uid was made again, and the pod seen before under it is one
failure, with its end where a look saw it failed (its code and reason), unseen where it was
deleted between two looks. A pod seen disrupted (a spot node's preemption, an eviction: its
``DisruptionTarget`` condition or kubelet's reason) is a run lost, never a failure: those are
the attempts' (``trialTemplate.maxAttempts``). So is one whose end no look saw where the node
it ran on (as a look saw it bound, else as the scheduler's ``Scheduled`` Event on it says:
:meth:`Remade.unplaced`), read once when its replacement is first seen (:meth:`Remade.unjudged`), was gone,
being deleted or taken back (:meth:`Remade.judged`): a preemption's failed pod is deleted by
the operator within a second, mostly before any look. Once the failures reach the job's
``runPolicy.backoffLimit`` (katuna's default :data:`~functions.core.trial_kinds.BACKOFF_LIMIT`
where its trialSpec sets none), as the operator counts restarts in place against it, the trial
fails with what ended them (:func:`past_limit`), and its workload is deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from functions.core import trial_kinds

OOM_KILLED = "OOMKilled"
"""The ``reason`` a container's ``terminated`` state gives when the kernel's OOM killer ended it."""
RETRYABLE = 128
"""The lowest exit code the Training Operator makes an ``ExitCode`` replica's pod again for
(``IsRetryableExitCode``: a signal's)."""
REASON_CHARS = 60
"""Characters kept of a container's ``terminated`` reason."""
KEPT_UIDS = 100
"""The most uids kept of one pod name: what one trial's row holds stays bounded, and a trial
fails long before (a ``backoffLimit`` of more counts at most this many per pod)."""


ROLE_LABEL = "training.kubeflow.org/replica-type"
"""The label the Training Operator gives each pod: its replica type, lower-cased."""


def remaking(workload: Mapping[str, Any]) -> dict[str, str]:
    """The replicas of the Training Operator job ``workload`` whose ``restartPolicy`` is
    ``ExitCode``: by replica type lower-cased (as :data:`ROLE_LABEL` says it), as written."""
    known = trial_kinds.kind_of(workload)
    spec = workload.get("spec")
    roles = spec.get(known.replica_specs) if known is not None and known.replica_specs and isinstance(spec, Mapping) \
        else None
    return {str(role).lower(): str(role) for role, replica in roles.items()
            if isinstance(replica, Mapping) and replica.get("restartPolicy") == "ExitCode"} \
        if isinstance(roles, Mapping) else {}


def backoff_limit(workload: Mapping[str, Any]) -> int:
    """The job's ``runPolicy.backoffLimit``, katuna's :data:`~functions.core.trial_kinds.BACKOFF_LIMIT`
    where it has none (katuna gives it that one)."""
    run_policy = (workload.get("spec") or {}).get("runPolicy") or {}
    limit = run_policy.get("backoffLimit") if isinstance(run_policy, Mapping) else None
    return limit if isinstance(limit, int) and not isinstance(limit, bool) else trial_kinds.BACKOFF_LIMIT


class SeenPod(NamedTuple):
    """A pod of an ``ExitCode`` replica as a look read it: its name (the same for the pods made
    again in its place), uid, and, once it failed on its own, its container's exit code and
    reason; ``disrupted`` where something other than the trial ended it."""

    name: str
    uid: str
    code: int | None = None
    reason: str = ""
    failed: bool = False
    disrupted: bool = False
    node: str = ""
    """The node it was bound to (``spec.nodeName``); empty while it had none."""


@dataclass(frozen=True)
class Remade:
    """What the looks at one attempt saw of its ``ExitCode`` replicas' pods, kept with the trial:
    by pod name, the uids seen (oldest first, at most :data:`KEPT_UIDS` each); the end of each
    seen failed on its own; the uids seen disrupted, or whose node was found taken back; the
    node of each; the uids whose node was read and found well. Merging what a look saw before
    changes nothing, and two looks merge in either order (at-least-once delivery): a pod found
    disrupted by either is."""

    names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ends: Mapping[str, tuple[int | None, str]] = field(default_factory=dict)
    disrupted: frozenset[str] = frozenset()
    nodes: Mapping[str, str] = field(default_factory=dict)
    judged_well: frozenset[str] = frozenset()

    def seen(self, pods: Iterable[SeenPod]) -> Remade:
        """These with ``pods`` seen now."""
        pods = list(pods)
        return self.merged(Remade(
            {pod.name: (pod.uid,) for pod in pods},
            {pod.uid: (pod.code, pod.reason[:REASON_CHARS]) for pod in pods if pod.failed and not pod.disrupted},
            frozenset(pod.uid for pod in pods if pod.disrupted), {pod.uid: pod.node for pod in pods if pod.node}))

    def unjudged(self) -> dict[str, str]:
        """By uid, the node of each pod made again whose end no look saw, not judged yet: the
        nodes to read once, to tell a preemption from a failure of its own."""
        return {uid: self.nodes[uid] for uids in self.names.values() for uid in uids[:-1]
                if uid in self.nodes and uid not in self.ends and uid not in self.disrupted
                and uid not in self.judged_well}

    def unplaced(self) -> list[str]:
        """The uids of the pods made again whose end no look saw, not judged yet, that no look saw
        bound to a node (seen only ``Pending``): where each ran is to be found (:meth:`placed`)."""
        return [uid for uids in self.names.values() for uid in uids[:-1]
                if uid not in self.nodes and uid not in self.ends and uid not in self.disrupted
                and uid not in self.judged_well]

    def placed(self, nodes: Mapping[str, str], nowhere: Iterable[str]) -> Remade:
        """These with the ``nodes`` (uid: node) found of pods no look saw bound, to be judged by
        them (:meth:`unjudged`); those ``nowhere`` found are failures of their own, never asked
        again."""
        return self.merged(Remade(nodes=dict(nodes), judged_well=frozenset(nowhere)))

    def judged(self, pods: Mapping[str, str], lost: Iterable[str]) -> Remade:
        """These with the ``pods`` (uid: node) judged: disrupted where their node is among the
        ``lost`` (gone, being deleted, taken back), a failure of their own otherwise."""
        lost = set(lost)
        return self.merged(Remade(disrupted=frozenset(uid for uid, node in pods.items() if node in lost),
                                  judged_well=frozenset(uid for uid, node in pods.items() if node not in lost)))

    def merged(self, other: Remade) -> Remade:
        """These with ``other``'s (another look's): uids in the order first seen."""
        names = {name: list(uids) for name, uids in self.names.items()}
        for name, uids in other.names.items():
            kept = names.setdefault(name, [])
            kept.extend(uid for uid in uids if uid not in kept)
            del kept[KEPT_UIDS:]
        held = {uid for uids in names.values() for uid in uids}
        return Remade({name: tuple(uids) for name, uids in names.items()},
                      {uid: end for uid, end in {**other.ends, **self.ends}.items() if uid in held},
                      frozenset((self.disrupted | other.disrupted) & held),
                      {uid: node for uid, node in {**other.nodes, **self.nodes}.items() if uid in held},
                      frozenset((self.judged_well | other.judged_well) & held))

    def failures(self) -> dict[str, list[tuple[int | None, str] | None]]:
        """By pod name, each failure of its own: a pod made again (its end, None where unseen)
        or one seen failed with a code the operator makes it again for; never a disrupted one."""
        found: dict[str, list[tuple[int | None, str] | None]] = {}
        for name, uids in self.names.items():
            for index, uid in enumerate(uids):
                end = self.ends.get(uid)
                replaced = index < len(uids) - 1
                retried = end is not None and (end[0] is None or end[0] >= RETRYABLE)
                if uid not in self.disrupted and (replaced or retried):
                    found.setdefault(name, []).append(end)
        return found

    def to_dict(self) -> dict[str, Any]:
        kept = {"names": {name: list(uids) for name, uids in self.names.items()},
                "ends": {uid: list(end) for uid, end in self.ends.items()}, "disrupted": sorted(self.disrupted)}
        return {**kept, "nodes": dict(self.nodes), "judged": sorted(self.judged_well)} \
            if self.nodes or self.judged_well else kept

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Remade:
        """As :meth:`to_dict` wrote it; nothing seen for None."""
        if not data:
            return cls()
        return cls({name: tuple(uids) for name, uids in data.get("names", {}).items()},
                   {uid: (end[0], end[1]) for uid, end in data.get("ends", {}).items()},
                   frozenset(data.get("disrupted", ())), dict(data.get("nodes", {})),
                   frozenset(data.get("judged", ())))


def past_limit(remade: Remade, limit: int, replicas: Mapping[str, str]) -> tuple[int | None, str] | None:
    """The exit code (the latest seen) and the reason of an attempt whose ``ExitCode`` replicas
    failed as many times as ``limit`` (``runPolicy.backoffLimit``; 0 counts as 1, as the
    operator fails such a job at its first failed pod itself); None while under it.
    ``replicas`` gives each pod name's replica type."""
    failures = remade.failures()
    total = sum(len(ends) for ends in failures.values())
    if total < max(limit, 1):
        return None
    codes = [end[0] for ends in failures.values() for end in ends if end is not None and end[0] is not None]
    said = "; ".join(_replica(replicas.get(name, name), name, ends) for name, ends in
                     sorted(failures.items(), key=lambda item: -len(item[1])))
    return (codes[-1] if codes else None), (
        f"{said}: the Training Operator deletes a pod of an ExitCode replica that ends with a code of "
        f"{RETRYABLE} or more and makes it again, without end, counting none of them against its "
        f"runPolicy.backoffLimit; katuna counted {total}, its backoffLimit being {limit} (preemptions "
        "and evictions not counted). Give the trial more memory if it ran out, or restartPolicy OnFailure")


def _replica(role: str, pod: str, ends: list[tuple[int | None, str] | None]) -> str:
    """What ended one replica's pods, by cause, most frequent first."""
    causes: dict[str, int] = {}
    for end in ends:
        causes[_cause(end)] = causes.get(_cause(end), 0) + 1
    counted = sorted(causes.items(), key=lambda item: -item[1])
    return f"replica {role} (pod {pod}) was " + ", and ".join(
        cause.format(times=_times(count)) for cause, count in counted)


def _cause(end: tuple[int | None, str] | None) -> str:
    """How a pod ended, ``{times}`` where its count goes."""
    if end is None:
        return "made again {times} after an end no look saw"
    code, reason = end
    if reason == OOM_KILLED:
        return "OOM-killed {times} (exit code 137)" if code == 137 else "OOM-killed {times}"
    if code == 143:
        return "stopped by a SIGTERM {times} (exit code 143)"
    return f"ended {{times}} with exit code {code} ({reason or 'no reason'})"


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
