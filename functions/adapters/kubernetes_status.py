"""What a trial Job's status and its pods' statuses say, as the client returns them: the Job's
final condition, which pods were disrupted, their order, when the trial's container ran, the
image it ran and how it exited."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from functions.adapters.kubernetes_users import non_root
from functions.core.disruptions import Disruption
from functions.core.nodepool import SELECTOR_KEYS
from functions.core.start_failures import image_cause, missing_cause, unfit_cause

NODE_SHUTDOWN = frozenset({"Terminated", "Shutdown", "NodeShutdown"})
"""A failed pod's ``status.reason`` when its node's shutdown ended it, not its trial (the
kubelet's graceful node shutdown, pkg/kubelet/nodeshutdown): killed as its node shut down
(``Terminated``, "Pod was terminated in response to imminent node shutdown."; ``Shutdown`` in
Kubernetes 1.21), or refused by a node shutting down (``NodeShutdown``, "Pod was rejected as the
node is shutting down."). Without the ``PodDisruptionConditions`` feature (before 1.26, or
turned off) the reason is all that says so."""
KUBELET_ENDS = NODE_SHUTDOWN | {"Evicted"}
"""A failed pod's ``status.reason`` when its node's kubelet ended it: its node's shutdown
(:data:`NODE_SHUTDOWN`), or evicted (node pressure, or over a local-storage limit)."""
CONTAINER_LOST = "ContainerStatusUnknown"
"""A container's ``terminated`` reason (exit code 137, "The container could not be located when
the pod was terminated") when its kubelet had seen it running and can no longer find it
(``convertToAPIContainerStatuses``, pkg/kubelet/kubelet_pods.go): its node's VM stopped and came
back under the same name before the kubelet could say so (a GKE spot VM preempted, its graceful
shutdown cut short, and recreated by its instance group), and the kubelet, started again, fails
the pod, with no reason and no ``DisruptionTarget`` condition. The container did not exit: its
run was lost."""


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


SUCCEEDED = ("Complete", "SuccessCriteriaMet")
"""The conditions of a Job that succeeded: since Kubernetes 1.31 the Job controller adds
``SuccessCriteriaMet`` (``FailureTarget`` for a failure) first, then deletes the Job's pods still
running, and adds ``Complete`` (``Failed``) only once they are gone."""


def final_condition(job: Any) -> Any | None:
    """The condition that ends the Job, the first of :data:`SUCCEEDED`, ``Failed`` or ``FailureTarget``."""
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.type in (*SUCCEEDED, "Failed", "FailureTarget") and condition.status == "True":
            return condition
    return None


def suspended_since(job: Any) -> tuple[float, str] | None:
    """While the Job is suspended (``spec.suspend``), since when (its ``Suspended`` condition's
    last transition, else its creation; seconds since the epoch) and why (the condition's
    reason and message); None when it is not."""
    if job.spec is None or not job.spec.suspend:
        return None
    condition = next((c for c in (job.status.conditions or []) if c.type == "Suspended" and c.status == "True"),
                     None) if job.status else None
    if condition is None or condition.last_transition_time is None:
        return job.metadata.creation_timestamp.timestamp(), "spec.suspend is true"
    return condition.last_transition_time.timestamp(), f"{condition.reason}: {condition.message}"


def disrupted(pod: Any) -> bool:
    """Whether something other than its trial ended the pod: its ``DisruptionTarget`` condition
    says so, or its node's shutdown did (:data:`NODE_SHUTDOWN`, all a cluster without the
    condition says), or its kubelet lost its containers (:data:`CONTAINER_LOST`). A pod
    ``Evicted`` without the condition is not: the kubelet evicts a pod over its own local-storage
    limit so (its trial's doing), and a node-pressure eviction adds the condition wherever the
    feature is on."""
    status = pod.status
    if status is None:
        return False
    return any(c.type == "DisruptionTarget" and c.status == "True" for c in (status.conditions or [])) or (
        status.phase == "Failed" and status.reason in NODE_SHUTDOWN) or _lost_containers(pod) is not None


def _lost_containers(pod: Any) -> Any | None:
    """The ``terminated`` state of the failed pod's first container its kubelet lost
    (:data:`CONTAINER_LOST`) when every container that ended, did so (none exited on its own, no
    init container failed); None otherwise. A pod ``Evicted`` is not: the kubelet evicts a pod
    over its own local-storage limit so (its container lost since), which is its trial's doing."""
    status = pod.status
    if status.phase != "Failed" or status.reason == "Evicted":
        return None
    ended = [s.state.terminated for s in status.container_statuses or [] if s.state and s.state.terminated]
    ended += [s.state.terminated for s in status.init_container_statuses or []
              if s.state and s.state.terminated and s.state.terminated.exit_code]
    if not ended or any(t.reason != CONTAINER_LOST for t in ended):
        return None
    return ended[0]


def disruption_of(pod: Any) -> Disruption | None:
    """How the pod was lost, if something other than its trial ended it: its kubelet's reason
    (:data:`KUBELET_ENDS`), its containers lost (:data:`CONTAINER_LOST`), else its
    ``DisruptionTarget`` condition's."""
    status = pod.status
    if status is None:
        return None
    if status.phase == "Failed" and status.reason in KUBELET_ENDS:
        return Disruption(status.reason, status.message or "")
    lost = _lost_containers(pod)
    if lost is not None:
        return Disruption(CONTAINER_LOST, lost.message or "")
    target = next((c for c in status.conditions or [] if c.type == "DisruptionTarget" and c.status == "True"), None)
    return None if target is None else Disruption(target.reason or "DisruptionTarget", target.message or "")


def ran(pod: Any) -> bool:
    """Whether the pod ran to an end of its own (not disrupted): a container of it ended, so its
    log holds the attempt's output, or an init container failed, which fails the pod before its
    containers start (the trial's own failure, not a run lost)."""
    if disrupted(pod):
        return False
    status = pod.status
    return any(s.state is not None and s.state.terminated is not None for s in (status.container_statuses or [])) \
        or _failed_init(pod) is not None


def failed_on_its_own(pods: list[Any]) -> tuple[str, int | None] | None:
    """The name of the first of ``pods`` that failed by its own doing (it ran to its end, not
    disrupted), with the code of its first container (or init container) that exited with one;
    None when none did. A Training Operator job fails with any of its pods: a worker's failure
    is the trial's, whether or not the primary pod ended, or is gone with the job's cleanup."""
    for pod in pods:
        if pod.status is None or pod.status.phase != "Failed" or not ran(pod):
            continue
        statuses = [*(pod.status.container_statuses or []), *(pod.status.init_container_statuses or [])]
        codes = [s.state.terminated.exit_code for s in statuses if s.state is not None and s.state.terminated is not None
                 and s.state.terminated.exit_code]
        return pod.metadata.name, codes[0] if codes else None
    return None


def _failed_init(pod: Any) -> Any | None:
    """The status of the pod's init container that exited with a code other than 0, if one did."""
    statuses = (pod.status.init_container_statuses or []) if pod.status else []
    return next((s for s in statuses if s.state is not None and s.state.terminated is not None
                 and s.state.terminated.exit_code), None)


SLOT_KEYS = ("batch.kubernetes.io/job-completion-index", "jobset.sigs.k8s.io/job-index",
             "training.kubeflow.org/replica-type", "training.kubeflow.org/replica-index")
"""The labels (or, for a Job's completion index before Kubernetes 1.28, annotations) that tell
which part of a workload a pod runs: a pod made in place of a disrupted one carries the same."""


def counted(pods: list[Any]) -> list[Any]:
    """The pods (oldest first) whose output is the attempt's: all but the disrupted pods that a
    later pod of the same part of the workload (:data:`SLOT_KEYS`) replaced. Such a pod's run was
    lost, and its replacement ran the trial again from its start: the lost run's steps and
    metrics would otherwise count twice."""
    lost = replacements(pods)
    return [pod for index, pod in enumerate(pods) if index not in lost]


def replacements(pods: list[Any]) -> dict[int, Any]:
    """The disrupted pods (oldest first) that a later pod of the same part of the workload
    replaced, by their index in ``pods``: the first such later pod, whose run took the lost one's place."""
    found = {}
    for index, pod in enumerate(pods):
        if disrupted(pod):
            later = next((p for p in pods[index + 1:] if _slot(p) == _slot(pod)), None)
            if later is not None:
                found[index] = later
    return found


def _slot(pod: Any) -> tuple[str | None, ...]:
    """Which part of its workload the pod runs (:data:`SLOT_KEYS`; a Job of one pod has one part)."""
    labels, annotations = pod.metadata.labels or {}, pod.metadata.annotations or {}
    return tuple(labels.get(key, annotations.get(key)) for key in SLOT_KEYS)


def oldest_first(pod: Any) -> tuple[str, bool, str]:
    """By creation time (whole seconds), a disrupted pod before its replacement created in the
    same second, then by name (real pod names end in random characters)."""
    created = pod.metadata.creation_timestamp
    stamp = created.isoformat() if hasattr(created, "isoformat") else str(created or "")
    return stamp, not disrupted(pod), pod.metadata.name


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


def current_pod(pods: list[Any]) -> Any | None:
    """The latest of ``pods`` (oldest first) not disrupted; None when there is none."""
    return next((pod for pod in reversed(pods) if not disrupted(pod)), None)


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


def status_of(pod: Any, container: str) -> Any | None:
    """The status its kubelet reports of the pod's container (not init container) ``container``,
    found by name among its other containers' (a sidecar's); None for no pod, or none yet."""
    statuses = (pod.status.container_statuses or []) if pod is not None and pod.status else []
    return next((status for status in statuses if status.name == container), None)


def current_run(pods: list[Any], container: str) -> tuple[float | None, float | None]:
    """When the trial's container in the current pod (the latest one not disrupted) started
    and, if it has, ended (seconds since the epoch); None for a container not started yet."""
    status = status_of(current_pod(pods), container)
    if status is None or status.state is None:
        return None, None
    running, terminated = status.state.running, status.state.terminated
    if running is not None and running.started_at is not None:
        return running.started_at.timestamp(), None
    if terminated is not None and terminated.started_at is not None:
        ended = terminated.finished_at.timestamp() if terminated.finished_at is not None else None
        return terminated.started_at.timestamp(), ended
    return None, None


def image_of(pods: list[Any], container: str) -> str | None:
    """The trial container's image as the kubelet resolved it (``imageID``: the digest), from
    the latest pod that reports one."""
    for pod in reversed(pods):
        status = status_of(pod, container)
        if status is not None and status.image_id:
            return status.image_id
    return None


def exit_of(pods: list[Any], container: str) -> tuple[int | None, str]:
    """How the trial's ``container`` exited in the latest pod where it has of its own (not
    :func:`disrupted`): its code, and words saying so. A disrupted pod's code is no exit of the
    trial's: one whose node came back without its container (:data:`CONTAINER_LOST`, 137) or
    shut down may follow the trial's own failure where a ``backoffLimit`` replaced that pod, and
    fail the Job past its limit. Only the primary container's: the kubelet lists a pod's
    containers by name, so a sidecar (an injected Istio proxy, a Vault agent) or a second
    container of a ``trialSpec`` may come first, with a code of its own. A pod whose init
    container failed never started it: that init container's code, saying so."""
    for pod in reversed(pods):
        if disrupted(pod):
            continue
        status = status_of(pod, container)
        terminated = status.state.terminated if status is not None and status.state else None
        if terminated is not None:
            return terminated.exit_code, (f"container {container} exited with code {terminated.exit_code} "
                                          f"({terminated.reason})")
        init = _failed_init(pod)
        if init is not None:
            ended = init.state.terminated
            return ended.exit_code, (f"init container {init.name} exited with code {ended.exit_code} ({ended.reason}), "
                                     f"so container {container} never started")
    return None, f"no status of container {container}"
