"""Why a trial's pod cannot start, as its kubelet, the scheduler and the cluster autoscaler say:
an image that cannot be pulled or parsed, a Secret or ConfigMap its containers read that is
missing, an image that may run as root where the container must not, no node that fits it; and
whether any wait could change it, so that a cause nothing can change fails the trial at once."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from functions.adapters.kubernetes_users import non_root
from functions.core.nodepool import SELECTOR_KEYS
from functions.core.start_failures import image_cause, missing_cause, unfit_cause

CANNOT_START = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                          "CreateContainerError"})
"""A waiting container's reason when its kubelet cannot start it, and retries for ever (the pod
stays ``Pending``; the Job does nothing until its deadline): its image cannot be pulled (a
typo, a missing tag, no pull credentials) or named, or the container cannot be made (a
Secret or ConfigMap key it reads is missing)."""
PULLS = frozenset({"ErrImagePull", "ImagePullBackOff"})
"""A waiting container's reason while its image cannot be pulled: the registry may answer
later (a rate limit, a tag pushed soon), so only the start allowance ends the wait."""
PERMANENT = frozenset({"InvalidImageName"})
"""A waiting container's reason that nothing can change while its pod lives: the kubelet
cannot parse the image reference (``applyDefaultImageTag`` in pkg/kubelet/images), and every
sync parses the same one, so the trial fails at once."""
CONFIG_ERROR = "CreateContainerConfigError"
"""A waiting container's reason while its kubelet cannot make its config: among other causes,
its environment reads a Secret or ConfigMap, or a key of one, that is missing (:func:`missing`).
The kubelet tries again at each sync, so the object created meanwhile starts the container. One
that must not run as root from an image that may
(:func:`~functions.adapters.kubernetes_users.non_root`) meets the same image at every try: that
one fails at once."""
KUBELET_NEVER = "the kubelet retries it for ever, and no retry can change it"
UNFIT_NEVER = "no node the cluster autoscaler could add would fit it, so no wait can change it"
AUTOSCALER = "cluster-autoscaler"
"""The component the cluster autoscaler's Events name as their source (client-go's recorder)."""
NOT_TRIGGERED, TRIGGERED = "NotTriggerScaleUp", "TriggeredScaleUp"
"""The reasons of the cluster autoscaler's Events on a pending pod (``EventingScaleUpStatusProcessor``,
cluster-autoscaler/processors/status): no pool could help it, or a pool grows for it."""
HOPEFUL = ("max node group size reached", "in backoff after failed scale-up", "not ready for scale-up",
           "max cluster ", "max total nodes in cluster reached", "atomic scale-up exceeds",
           "expansion options filtered out", "not all pods would fit")
"""The autoscaler's words for a pool it did not try (``SkippedReasons``, ``RejectedReasons``,
core/scaleup/orchestrator): full, in backoff after a failed scale-up (a stockout: the cloud had
no machines), at a limit. Such a pool may take the pod later, so the pod is no misfit."""
COMBINED = "(combined from similar events): "
"""What client-go's event aggregator puts before a message it stands for several similar ones."""
_NOT_TRIGGERED = re.compile(r"^(?:\(combined from similar events\): )?pod didn't trigger scale-up"
                            r"(?P<old> \(it wouldn't fit if a new node is added\))?:? ?(?P<reasons>.*)$", re.DOTALL)
_NOT_FOUND = re.compile(r'^(?P<kind>secret|configmap) "(?P<name>[^"]+)" not found$')
_NO_KEY = re.compile(r"^couldn't find key (?P<key>.+) in (?P<kind>Secret|ConfigMap) (?P<namespace>[^/ ]+)/(?P<name>[^/ ]+)$")


class Unstartable(NamedTuple):
    """A pod that cannot start (:func:`pod_cannot_start`)."""

    since: float
    """Its creation, seconds since the epoch."""
    pod: str
    why: str
    """In its kubelet's words, or the scheduler's."""
    cause: str | None
    """What every pod of its template would meet: an image the kubelet cannot pull or parse
    (:func:`~functions.core.start_failures.image_cause`), or that may run as root where the
    container must not (:func:`~functions.adapters.kubernetes_users.non_root`), a Secret or
    ConfigMap its containers read that is missing, or a key of it (:func:`missing`); None for any
    other cause."""
    permanent: bool
    """Whether nothing can change it while the pod lives (:data:`PERMANENT`, an image's user)."""
    never: str = KUBELET_NEVER
    """Why no wait can change it, for a ``permanent`` one."""
    uid: str = ""
    """The pod's uid."""
    unschedulable: bool = False
    """Whether the scheduler holds it (no node fits it), not its kubelet."""

    @property
    def subject(self) -> str:
        """The pod, as a trial's reason names it: one the API server refused to create has no name."""
        return f"its pod {self.pod}" if self.pod else "its Job's pod"


def pod_cannot_start(pod: Any) -> Unstartable | None:
    """While the pod cannot start, since when, its name, why, in its kubelet's words
    (:data:`CANNOT_START`) or the scheduler's (``PodScheduled`` ``False``, ``Unschedulable``: no
    node fits it), and the cause; None unless it is ``Pending`` and held back."""
    if pod.status is None or pod.status.phase != "Pending":
        return None
    since, name = pod.metadata.creation_timestamp.timestamp(), pod.metadata.name
    for status in [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]:
        waiting = status.state.waiting if status.state else None
        if waiting is not None and waiting.reason in CANNOT_START:
            why = f"container {status.name}: {waiting.reason}: {waiting.message or ''}".rstrip(": ")
            refused = non_root(waiting.message or "", status.image or "") if waiting.reason == CONFIG_ERROR else None
            if refused is not None:
                return Unstartable(since, name, why, refused[0], True, refused[1])
            return Unstartable(since, name, why, _cause(status, waiting, pod.metadata.namespace),
                               waiting.reason in PERMANENT)
    scheduled = next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)
    if scheduled is not None and scheduled.status == "False" and scheduled.reason == "Unschedulable":
        return Unstartable(since, name, f"no node fits it: {scheduled.message or 'Unschedulable'}", None, False,
                           uid=pod.metadata.uid or "", unschedulable=True)
    return None


def misfit(found: Unstartable, pod: Any, events: list[Any]) -> Unstartable:
    """``found`` (a ``pod`` no node fits), permanent with its cause (what the pod asks for, and
    the autoscaler's reasons) when the cluster autoscaler's ``events`` on it say no node any of
    its pools could add would fit it (:func:`unfit`); as it is otherwise."""
    reasons = unfit(events)
    if reasons is None or (_in_katuna_pool(pod) and "Insufficient " not in reasons):
        return found
    return found._replace(cause=unfit_cause(asked(pod), reasons), permanent=True, never=UNFIT_NEVER)


def _in_katuna_pool(pod: Any) -> bool:
    """Whether the pod asks for a node of a pool katuna makes for its study (its nodeSelector
    names one, :data:`~functions.core.nodepool.SELECTOR_KEYS`). Until that pool is made (GKE
    and EKS take minutes) and the autoscaler has found it, no pool's node matches the pod, which
    no wait changes only once the pool is there: its node is then too small (``Insufficient``)."""
    return any(key in (pod.spec.node_selector or {}) for key in SELECTOR_KEYS.values())


def unfit(events: list[Any]) -> str | None:
    """The cluster autoscaler's words (its ``NotTriggerScaleUp`` message) when its latest word
    on a pod, among its ``events``, is that no pool could help it, and for each pool only
    because the pool's node would not fit it (the scheduler's reason, e.g. ``1 Insufficient
    cpu``, ``1 node(s) didn't match Pod's node affinity/selector``). None when it said nothing,
    when a pool grows for it (``TriggeredScaleUp``, the later on a tie), or when a pool was
    skipped for a passing cause (:data:`HOPEFUL`)."""
    said = [e for e in events if e.reason in (NOT_TRIGGERED, TRIGGERED) and _source(e) == AUTOSCALER]
    if not said:
        return None
    latest = max(said, key=lambda e: (_when(e), e.reason == TRIGGERED))
    found = _NOT_TRIGGERED.match(latest.message or "") if latest.reason == NOT_TRIGGERED else None
    if found is None:
        return None
    reasons = [r for r in re.split(r", (?=\d+ )", found["reasons"].strip()) if r]
    if not (reasons or found["old"]) or any(not re.match(r"^\d+ ", r) or any(h in r for h in HOPEFUL)
                                             for r in reasons):
        return None
    return " ".join(latest.message.removeprefix(COMBINED).split()).replace(";", ",")


def _source(event: Any) -> str:
    """The component that recorded the Event (``source.component``, else ``reportingComponent``)."""
    return (event.source.component if event.source is not None else None) or event.reporting_component or ""


def _when(event: Any) -> float:
    """When the Event was last recorded, seconds since the epoch (0 when it does not say)."""
    stamp = event.last_timestamp or event.event_time or event.first_timestamp or event.metadata.creation_timestamp
    return stamp.timestamp() if stamp is not None else 0.0


def asked(pod: Any) -> str:
    """What the pod asks of a node: its containers' resources (requests, limits where a
    request is unset), each container's by name when it has several, and its nodeSelector."""
    containers = pod.spec.containers or []
    parts = []
    for container in containers:
        resources = container.resources
        wanted = {**((resources.limits or {}) if resources else {}), **((resources.requests or {}) if resources else {})}
        if wanted:
            text = ", ".join(f"{name}: {value}" for name, value in sorted(wanted.items()))
            parts.append(text if len(containers) == 1 else f"{container.name} ({text})")
    selector = ", ".join(f"{key}={value}" for key, value in sorted((pod.spec.node_selector or {}).items()))
    words = ", ".join(parts) or "no resources"
    return f"{words} with nodeSelector {selector}" if selector else words


def _cause(status: Any, waiting: Any, namespace: str) -> str | None:
    """What every pod of the template would meet, of a container ``waiting`` to start: its
    image cannot be pulled or parsed, or a Secret or ConfigMap it reads is missing; else None."""
    if waiting.reason in PERMANENT | PULLS:
        return image_cause(status.image or "", waiting.reason in PERMANENT)
    return missing(waiting.message or "", namespace) if waiting.reason == CONFIG_ERROR else None


def missing(message: str, namespace: str) -> str | None:
    """The cause (:func:`~functions.core.start_failures.missing_cause`) a kubelet's
    ``CreateContainerConfigError`` ``message`` gives for a pod of ``namespace``, when it is a
    Secret or ConfigMap the container's environment reads (``makeEnvironmentVariables``,
    pkg/kubelet/kubelet_pods.go): the object is missing (its manager's NotFound, ``secret "NAME"
    not found``, ``configmap "NAME" not found``), or a key of it (``couldn't find key KEY in
    Secret NAMESPACE/NAME``). None for any other message."""
    found = _NOT_FOUND.match(message)
    if found is not None:
        return missing_cause("Secret" if found["kind"] == "secret" else "ConfigMap", found["name"], namespace)
    found = _NO_KEY.match(message)
    return None if found is None else missing_cause(found["kind"], found["name"], found["namespace"], found["key"])
