"""What a trial Job's status and its pods' statuses say, as the client returns them: the Job's
final condition, which pods were disrupted, their order, when the trial's container ran, the
image it ran and how it exited. Why a pod cannot start is :mod:`kubernetes_unstartable`'s."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from functions.core.disruptions import Disruption

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
    """Whether the pod ran to an end of its own (not disrupted, nor ended by its deletion): a
    container of it ended, so its log holds the attempt's output, or an init container failed,
    which fails the pod before its containers start (the trial's own failure, not a run lost)."""
    if disrupted(pod) or _ended_by_deletion(pod):
        return False
    status = pod.status
    return any(s.state is not None and s.state.terminated is not None for s in (status.container_statuses or [])) \
        or _failed_init(pod) is not None


def _ended_by_deletion(pod: Any) -> bool:
    """Whether the pod's containers ended after its deletion was asked: its kubelet stopped them
    (SIGTERM, then SIGKILL past the grace period), as a training operator's cleanup deletes a
    master still running once a worker failed, or a person's ``kubectl delete pod`` does; their
    codes (143, 137, or 0 from a trial that handled SIGTERM) are the deletion's, not the trial's.
    The deletion was asked at its ``deletionTimestamp`` less its ``deletionGracePeriodSeconds``;
    a pod that had ended before (deleted once done) ran to its own end."""
    metadata = pod.metadata
    deleting = metadata.deletion_timestamp if metadata is not None else None
    if deleting is None:
        return False
    asked = deleting - timedelta(seconds=metadata.deletion_grace_period_seconds or 0)
    statuses = (pod.status.container_statuses or []) if pod.status else []
    ends = [s.state.terminated.finished_at for s in statuses
            if s.state is not None and s.state.terminated is not None and s.state.terminated.finished_at is not None]
    return not ends or max(ends) >= asked


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


def restarted_exit(pods: list[Any], container: str) -> tuple[int | None, str]:
    """How the trial's ``container`` exited at its latest run before a restart in place (its
    ``lastState``), in the latest pod that restarted it: the run a crash loop ends on, which its
    current state (waiting, or stopped by the pod's deletion) does not tell. A pod deleted
    already (the Training Operator deletes a job's pods as it fails it) leaves no code."""
    for pod in reversed(pods):
        status = status_of(pod, container)
        last = status.last_state.terminated if status is not None and status.last_state else None
        if status is not None and last is not None:
            return last.exit_code, (f"container {container} restarted {status.restart_count} times in pod "
                                    f"{pod.metadata.name}, last exiting with code {last.exit_code} ({last.reason})")
    return None, f"its pods were deleted with it, the last exit code of container {container} unread"


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


def current_pod(pods: list[Any]) -> Any | None:
    """The latest of ``pods`` (oldest first) not disrupted; None when there is none."""
    return next((pod for pod in reversed(pods) if not disrupted(pod)), None)


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
    container failed never started it: that init container's code, saying so, with its
    termination message (what it wrote there, or under ``FallbackToLogsOnError`` its log's last
    lines, as katuna's checkpoint init container gives its reason)."""
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
            said = f": {ended.message.strip()}" if ended.message and ended.message.strip() else ""
            return ended.exit_code, (f"init container {init.name} exited with code {ended.exit_code} ({ended.reason}), "
                                     f"so container {container} never started{said}")
    return None, f"no status of container {container}"
