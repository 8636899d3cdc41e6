"""A trial Job whose pod runs a regular sidecar beside the trial's container (an injected Istio
proxy, a Vault agent): a pod stays ``Running`` while any of its containers runs, and a Job counts
a pod only once it has ended, so such a Job never ends by itself after the trial's container
exits (kubernetes/kubernetes#73118). The trial's container's exit is the attempt's end, read here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from functions.adapters.kubernetes_status import current_pod, image_of, status_of
from functions.core.events import Event, trial_finished
from functions.core.job import primary_container_name
from functions.core.launch import TrialLaunch


class HeldEnd(NamedTuple):
    """The end of a trial's container whose pod its other containers hold running."""

    code: int
    why: str
    """What ran on, and how the trial's container exited."""
    pod: str
    """The uid of the pod held running."""


def held_by_sidecars(job: Any, pods: list[Any], container: str) -> HeldEnd | None:
    """How the trial's ``container`` exited in the Job's current pod (the latest not disrupted),
    when that pod runs on only because other regular containers of it have not ended: the
    container ended for good (under ``restartPolicy: Never``; ``OnFailure`` restarts a failed
    one in place, so there only its exit 0 is final), and the pod is ``Running``. None otherwise:
    native sidecars (init containers with ``restartPolicy: Always``) are stopped by the kubelet
    once the containers have ended, and the pod then ends on its own, failed or not, so the
    Job's ``backoffLimit`` and ``podFailurePolicy`` still judge it; so do they a pod being
    deleted (``kubectl delete pod``, a drain without a disruption condition), whose containers
    are all stopped, its trial's killed by the deletion (143) rather than ended. Only a Job that
    runs one pod to one completion: another's end needs its other pods too."""
    spec = job.spec if job is not None else None
    if spec is None or (spec.completions or 1) != 1 or (spec.parallelism or 1) != 1:
        return None
    pod = current_pod(pods)
    if pod is None or pod.status is None or pod.status.phase != "Running" or pod.metadata.deletion_timestamp:
        return None
    own = status_of(pod, container)
    ended = own.state.terminated if own is not None and own.state is not None else None
    policy = pod.spec.restart_policy if pod.spec is not None else None
    if ended is None or not (policy == "Never" or (policy == "OnFailure" and ended.exit_code == 0)):
        return None
    others = sorted(s.name for s in pod.status.container_statuses or []
                    if s.name != container and (s.state is None or s.state.terminated is None))
    if not others:
        return None
    return HeldEnd(ended.exit_code, (
        f"its pod {pod.metadata.name} ran on for container {', '.join(others)} (a sidecar keeps a pod running, and "
        f"its Job from ending, after the trial's container exits), so katuna ended the Job; container {container} "
        f"exited with code {ended.exit_code} ({ended.reason})"), pod.metadata.uid or "")


def held_end(launch: TrialLaunch, job: Any, pods: list[Any]) -> Event | None:
    """The ``exited`` end of an attempt whose trial's container exited while a sidecar holds its
    pod running, and its Job with it (:func:`held_by_sidecars`), as its Job's end would have
    been; marked as ``running``, so the ``trial.finished`` handler deletes (or, for a
    ``retain``ed trial, suspends) the Job once the trial's output is read, and the sidecar goes
    with it. A failure ends the attempt: its pod never fails while the sidecar runs, so the Job
    would never replace it, whatever its ``backoffLimit``. The end names its pod, whose end it
    is: a pod deleted before the end is handled (``kubectl delete pod``, a drain) is replaced by
    the Job, and the handler, finding it no longer held, takes the end for nothing."""
    container = primary_container_name(launch)
    held = held_by_sidecars(job, pods, container)
    if held is None:
        return None
    return trial_finished(launch.study, launch.uid, launch.number, launch.attempt, outcome="exited",
                          exit_code=held.code, message=held.why, image_id=image_of(pods, container), running=True,
                          pod=held.pod)
