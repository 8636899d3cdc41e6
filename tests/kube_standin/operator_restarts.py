"""How the Training Operator (v1.9.0) restarts a job's replicas and when it gives up, beside
what the kubelet restarts in place.

- A failed pod (phase ``Failed``: its container exited under ``Never``/``ExitCode``, or it was
  evicted or preempted) of a replica whose ``restartPolicy`` is ``OnFailure`` or ``Always``, or
  ``ExitCode`` with a retryable code (``IsRetryableExitCode``: 128 or more; the kind's default
  container's code, the magic 0xbeef where that container has none), is deleted and made again
  under its name, and the job is ``Restarting`` (``ReconcilePods`` in
  ``pkg/controller.v1/common/pod.go``); ``ExitCode`` with any other code fails the job. Under
  ``Never`` the job fails (the caller's rule).
- ``runPolicy.backoffLimit`` (unset by default) counts the restarts in place of the running pods
  of the replicas that restart (``PastBackoffLimit`` in ``pkg/core/job.go``: the ``restartCount``
  of every container and init container of each ``Running`` pod summed); a limit of 0 is passed
  by one restart, another once the sum reaches it. The job then fails (``<Kind>Failed``: "Job
  <name> has failed because it has reached the specified backoff limit") and every pod of it is
  deleted first, whatever its ``cleanPodPolicy`` (``ReconcileJobs`` deletes them while the job
  is not yet finished). A pod made again has a ``restartCount`` of 0: a preemption is no restart.
  A limit of 0 is also passed by any failed pod, a preempted one too (``exceedsBackoffLimit``:
  the operator's workqueue is a ``FakeWorkQueue`` whose ``NumRequeues`` is 0, so ``0 + 1 > 0``).
- ``Restarting`` and ``Running`` exclude each other (``filterOutCondition``).
"""

from __future__ import annotations

from kube_standin.clock import RealClock

RESTARTS = ("OnFailure", "Always", "ExitCode")
"""The replica restart policies the operator restarts a failed pod under, and counts for ``backoffLimit``."""
DEFAULT_RESTART = {"PyTorchJob": "OnFailure", "PaddleJob": "OnFailure"}
"""The ``restartPolicy`` of a replica that names none, where not ``Never`` (``<Kind>DefaultRestartPolicy``)."""
DEFAULT_CONTAINER = {"TFJob": "tensorflow", "PyTorchJob": "pytorch", "MPIJob": "mpi", "XGBoostJob": "xgboost",
                     "PaddleJob": "paddle", "JAXJob": "jax"}
"""The container whose exit code ``ExitCode`` reads (``<Kind>DefaultContainerName``)."""
NO_CODE = 0xBEEF
"""The code the operator reads where its default container has not terminated (a retryable one)."""
ROLE = "training.kubeflow.org/replica-type"


def policy(kind: str, replica: dict) -> str:
    """The replica's ``restartPolicy``, its kind's default where it names none."""
    return replica.get("restartPolicy") or DEFAULT_RESTART.get(kind, "Never")


def roles(job: dict, replica_specs: str) -> dict[str, tuple[str, str]]:
    """Per role lower-cased (a pod's ``replica-type``), the role as written and its policy."""
    specs = job["spec"].get(replica_specs) or {}
    return {role.lower(): (role, policy(job["kind"], replica)) for role, replica in specs.items()}


def exit_code(kind: str, pod: dict) -> int:
    """The exit code of the kind's default container in ``pod``, as ``ReconcilePods`` reads it."""
    for status in pod["status"].get("containerStatuses") or []:
        ended = (status.get("state") or {}).get("terminated")
        if status.get("name") == DEFAULT_CONTAINER.get(kind) and ended:
            return int(ended.get("exitCode", 0))
    return NO_CODE


def restarts(pod: dict, role_policy: str, kind: str) -> bool:
    """Whether the operator makes the failed ``pod`` again rather than fail its job."""
    return role_policy in ("OnFailure", "Always") or role_policy == "ExitCode" and exit_code(kind, pod) >= 128


def past_backoff_limit(job: dict, pods: list[dict], by_role: dict[str, tuple[str, str]]) -> bool:
    """``PastBackoffLimit``: the restarts in place of the running pods of restarting replicas."""
    limit = (job["spec"].get("runPolicy") or {}).get("backoffLimit")
    if limit is None:
        return False
    total = sum(status.get("restartCount", 0) for pod in pods if pod["status"].get("phase") == "Running"
                and by_role.get(pod["metadata"]["labels"].get(ROLE, ""), ("", "Never"))[1] in RESTARTS
                for status in [*(pod["status"].get("initContainerStatuses") or []),
                               *(pod["status"].get("containerStatuses") or [])])
    if limit == 0:  # exceedsBackoffLimit: a new failed pod, the workqueue's requeues (always 0) + 1 > 0
        return total > 0 or any(p["status"].get("phase") == "Failed" and not p["metadata"].get("deletionTimestamp")
                                for p in pods)
    return total >= limit


def backoff_message(job: dict) -> str:
    return f"Job {job['metadata']['name']} has failed because it has reached the specified backoff limit"


def past_deadline(job: dict, started: float | None, clock: RealClock) -> bool:
    """``PastActiveDeadline``: the job's ``runPolicy.activeDeadlineSeconds`` passed since its
    ``status.startTime`` (``started``); it then fails as past its backoff limit does."""
    seconds = (job["spec"].get("runPolicy") or {}).get("activeDeadlineSeconds")
    return seconds is not None and started is not None and clock.time() - started >= seconds


def deadline_message(job: dict) -> str:
    return f"Job {job['metadata']['name']} has failed because it was active longer than specified deadline"


def restarting(clock: RealClock, job: dict, role: str) -> bool:
    """Set ``Restarting`` (dropping ``Running``), as ``ReconcilePods`` does once it deleted a
    failed pod to make it again; its message is kept while the condition holds. Whether it was
    set now."""
    conditions = job.setdefault("status", {}).setdefault("conditions", [])
    if any(c["type"] == "Restarting" and c["status"] == "True" for c in conditions):
        return False
    stamp = clock.stamp()
    job["status"]["conditions"] = [c for c in conditions if c["type"] not in ("Restarting", "Running")] + [
        {"type": "Restarting", "status": "True", "reason": f"{job['kind']}Restarting",
         "message": f"job {job['metadata']['name']} is restarting because {role} replica(s) failed.",
         "lastUpdateTime": stamp, "lastTransitionTime": stamp}]
    return True


def drop_restarting(job: dict) -> bool:
    """Drop ``Restarting`` where ``Running`` is set again; whether it held."""
    conditions = job.setdefault("status", {}).setdefault("conditions", [])
    job["status"]["conditions"] = [c for c in conditions if c["type"] != "Restarting"]
    return len(conditions) != len(job["status"]["conditions"])
