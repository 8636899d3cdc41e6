"""What a look at a running trial attempt on Kubernetes finds: its end, read from its Job (or
workload of another kind) and pods; while it waits, why (a Job suspended by an admission
controller, a pod that cannot start); and the pods it lost to disruptions. Ends are learnt by
asking: from the Job events an ApiServerSource delivers, and from the watcher's reconcile pass,
so a lost event cannot leave a trial running. An attempt whose workload has not ended is looked
at by :mod:`functions.adapters.kubernetes_running`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from functions.adapters.kubernetes_jobs import TrialJobs
from functions.adapters.kubernetes_report_secrets import ReportSecrets
from functions.adapters.kubernetes_running import RunningLooks
from functions.adapters.kubernetes_status import (
    SUCCEEDED,
    disrupted,
    exit_of,
    failed_on_its_own,
    final_condition,
    image_of,
    ran,
    restarted_exit,
    suspended_since,
)
from functions.adapters.kubernetes_workloads import End as WorkloadEnd
from functions.adapters.kubernetes_workloads import Workloads
from functions.adapters.kubernetes_workloads import end as workload_end
from functions.core import trial_kinds
from functions.core.events import Event, trial_finished
from functions.core.job import is_job, own_conditions, primary_container_name
from functions.core.launch import TrialLaunch
from functions.core.ports import Look


class Looks:
    """Looks at the attempts' Jobs and pods, as :meth:`functions.core.ports.Admissions.look` gives them."""

    def __init__(self, jobs: TrialJobs, api: client.ApiClient, workloads: Workloads, secrets: ReportSecrets,
                 report_url: str | None, clock: Callable[[], float]) -> None:
        self._jobs = jobs
        self._workloads = workloads
        self._clock = clock
        self._run = RunningLooks(jobs, client.CoreV1Api(api), workloads, secrets, report_url, clock)

    def look(self, launch: TrialLaunch) -> Look:
        """The attempt's end; while its Job is suspended (an admission controller such as Kueue
        holds it until a queue admits it) or its pod cannot start, why (:meth:`_held`,
        :class:`~functions.adapters.kubernetes_running.RunningLooks`); and the pods it lost to
        disruptions, those of :attr:`~functions.core.launch.TrialLaunch.lost_pods` with those
        seen now.

        A trial's timeout counts from the start of its container in the Job's current pod (the
        latest one not disrupted): a running trial past it is reported as timed out (the
        ``trial.finished`` handler reads its log, then deletes the Job). A preempted pod's
        replacement starts a fresh timeout. The Job's own deadline is only a backstop (the
        timeout plus the start allowance for each run the attempt may make, see
        :func:`functions.core.job.job_deadline`). A running Job that lost more pods to
        disruptions than the trial may lose is reported as preempted with their count
        (:meth:`~functions.adapters.kubernetes_running.RunningLooks.job`); the handler deletes
        it. One whose trial's container exited while a sidecar holds its pod running is reported
        as exited with that container's code, and deleted too
        (:func:`~functions.adapters.kubernetes_sidecars.held_end`). A Job held suspended longer
        than the start allowance is reported as timed out (:meth:`_held`); one whose pod cannot
        start (its image cannot be pulled, no node fits it) for that long, as an error
        (:class:`~functions.adapters.kubernetes_running.RunningLooks`).
        """
        if not is_job(launch) or own_conditions(launch):
            return self._look_workload(launch)
        job = self._jobs.job(launch)
        if job is None:
            return Look(trial_finished(launch.study, launch.uid, launch.number, launch.attempt, outcome="preempted",
                                       message=f"Job {launch.job_name} disappeared"))
        condition = final_condition(job)
        held = suspended_since(job)
        if condition is None and held is not None:
            return self._held(launch, *held)
        if condition is None:
            created = job.metadata.creation_timestamp if job.metadata else None
            return self._run.job(launch, created.timestamp() if created is not None else None, job)
        return Look(self._ended(launch, job, condition))

    def _held(self, launch: TrialLaunch, since: float, why: str) -> Look:
        """A suspended Job makes no pods and its deadline does not run, so only katuna can end
        its wait: it may wait as long as the start allowance (``KATUNA_K8S_START_ALLOWANCE``),
        counted from its latest suspension, and is then reported as timed out (the handler
        deletes it). Until then, why it waits."""
        allowance = self._run.allowance(launch)
        stamp = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        words = (f"its Job is suspended since {stamp} ({why}): an admission controller such as Kueue holds it "
                 "until a queue admits it")
        if self._clock() - since < allowance:
            return Look(None, f"{words}; it times out if still suspended after the start allowance of {allowance}s")
        return Look(trial_finished(launch.study, launch.uid, launch.number, launch.attempt, outcome="timeout",
                                   message=f"{words}, and it waited past the start allowance of {allowance}s "
                                           "(KATUNA_K8S_START_ALLOWANCE)"))

    def _ended(self, launch: TrialLaunch, job: Any, condition: Any) -> Event:
        """The end of an attempt whose Job has its final ``condition``."""
        ids = (launch.study, launch.uid, launch.number, launch.attempt)
        pods = self._jobs.pods(launch)
        image_id = image_of(pods, primary_container_name(launch))
        if condition.reason != "DeadlineExceeded" and not any(ran(p) for p in pods):
            return trial_finished(*ids, outcome="preempted", message=_lost(launch, pods))
        if condition.type in SUCCEEDED:
            return trial_finished(*ids, outcome="exited", exit_code=0, image_id=image_id)
        if condition.reason == "DeadlineExceeded":
            deadline = job.spec.active_deadline_seconds if job.spec else None
            return trial_finished(*ids, outcome="timeout", image_id=image_id,
                                  message=_past_deadline(launch, deadline, condition.message))
        code, reason = exit_of(pods, primary_container_name(launch))
        return trial_finished(*ids, outcome="exited", exit_code=code if code else 1,
                              message=f"Job failed: {condition.reason}: {condition.message}; {reason}",
                              image_id=image_id)

    def _look_workload(self, launch: TrialLaunch) -> Look:
        """The end of an attempt whose workload is another kind than Job: by the study's (else
        the kind's) success and failure conditions, as Katib reads them; the exit code and image
        from the primary pods; while it runs, why it waits, if one of its pods cannot start."""
        ids = (launch.study, launch.uid, launch.number, launch.attempt)
        workload = self._workloads.get(launch, self._jobs.namespace(launch))
        kind = (launch.trial_spec or {}).get("kind")
        if workload is None:
            return Look(trial_finished(*ids, outcome="preempted", message=f"{kind} {launch.job_name} disappeared"))
        ended = workload_end(launch, workload)
        if ended is None:
            return self._run.workload(launch, workload)
        return Look(self._workload_ended(launch, ended))

    def _workload_ended(self, launch: TrialLaunch, ended: WorkloadEnd) -> Event:
        """The end of an attempt whose workload of another kind than Job ``ended`` by its
        conditions. A Training Operator job failed past its ``runPolicy.backoffLimit`` is the
        trial's failure, with its primary container's last exit before a restart in place (the
        operator deleted its pods: :func:`~functions.core.trial_kinds.given_up`), unless a pod of
        it was disrupted (a ``backoffLimit`` of 0 fails the job at a preempted pod too); one
        failed past its own ``runPolicy.activeDeadlineSeconds`` timed out.
        Another failed one none of whose primary pods ran to an end is a run lost, unless
        another of its pods failed on its own (:func:`~functions.adapters.kubernetes_status.failed_on_its_own`):
        a worker's exit fails a PyTorchJob while its master runs on, or is cleaned up."""
        ids = (launch.study, launch.uid, launch.number, launch.attempt)
        kind = (launch.trial_spec or {}).get("kind")
        pods = self._jobs.pods(launch)
        image_id = image_of(pods, primary_container_name(launch))
        given_up = None if ended.succeeded else trial_kinds.given_up(launch.trial_spec or {}, ended.message)
        if given_up == "activeDeadlineSeconds":
            return trial_finished(*ids, outcome="timeout", image_id=image_id, message=(
                f"its {kind} ran past its own spec.runPolicy.activeDeadlineSeconds, as its trialSpec sets it "
                f"({ended.reason}: {ended.message})"))
        if given_up == "backoffLimit" and not any(disrupted(p) for p in self._jobs.pods(launch, every=True)):
            code, why = restarted_exit(pods, primary_container_name(launch))
            return trial_finished(*ids, outcome="exited", exit_code=code or 1, image_id=image_id,
                                  message=f"{kind} failed: {ended.reason}: {ended.message}; {why}")
        primary_ran = any(ran(p) for p in pods)
        own = None if ended.succeeded or primary_ran else failed_on_its_own(self._jobs.pods(launch, every=True))
        if own is not None:
            name, code = own
            return trial_finished(*ids, outcome="exited", exit_code=code or 1, image_id=image_id,
                                  message=f"{kind} failed: {ended.reason}: {ended.message}; its pod {name} failed"
                                          + (f" with exit code {code}" if code else ""))
        if not primary_ran:
            said = ": ".join(part for part in (ended.reason, ended.message) if part)
            return trial_finished(*ids, outcome="preempted", message=_lost(launch, pods) + (
                f" ({kind} {said})" if said and not ended.succeeded else ""))
        if ended.succeeded:
            return trial_finished(*ids, outcome="exited", exit_code=0, image_id=image_id)
        code, reason = exit_of(pods, primary_container_name(launch))
        return trial_finished(*ids, outcome="exited", exit_code=code if code else 1, image_id=image_id,
                              message=f"{kind} failed: {ended.reason}: {ended.message}; {reason}")


def _lost(launch: TrialLaunch, pods: list[Any]) -> str:
    """Why an attempt that ended with no pod run to its own end is a lost run, not a failure."""
    kind = (launch.trial_spec or {}).get("kind") or "Job"
    if pods:
        return f"every pod of its {kind} was disrupted"
    return (f"the pods of {kind} {launch.job_name} are gone, and their logs with them (their node was removed "
            "before the end was read): the run is lost, not failed")


def _past_deadline(launch: TrialLaunch, deadline: int | None, why: str) -> str:
    """Why a Job that ran past its ``activeDeadlineSeconds`` failed: the trialSpec's own
    deadline, where the Job kept it (:func:`functions.core.trial_spec.render`), or katuna's
    backstop."""
    if deadline is not None and deadline == launch.deadline:
        return (f"its Job ran past its own spec.activeDeadlineSeconds ({deadline}s from the Job's start, as its "
                f"trialSpec sets it: DeadlineExceeded; {why})")
    return (f"its Job ran past its deadline ({deadline}s from the Job's start: the trial's timeout plus the start "
            f"allowance, for each run its Job may make as it replaces pods lost to preemption; {why})")
