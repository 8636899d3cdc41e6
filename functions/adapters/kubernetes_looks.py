"""What a look at a running trial attempt on Kubernetes finds: its end, read from its Job (or
workload of another kind) and pods; while it waits, why (a Job suspended by an admission
controller, a pod that cannot start); and the pods it lost to disruptions. Ends are learnt by
asking: from the Job events an ApiServerSource delivers, and from the watcher's reconcile pass,
so a lost event cannot leave a trial running.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from functions.adapters.kubernetes_client import call
from functions.adapters.kubernetes_jobs import TrialJobs
from functions.adapters.kubernetes_refused import refused_create
from functions.adapters.kubernetes_remade import judge, names_of, seen_pods
from functions.adapters.kubernetes_report_secrets import ReportSecrets
from functions.adapters.kubernetes_sidecars import held_end
from functions.adapters.kubernetes_status import (
    SUCCEEDED,
    current_pod,
    current_run,
    disrupted,
    disruption_of,
    exit_of,
    failed_on_its_own,
    final_condition,
    image_of,
    ran,
    restarted_exit,
    suspended_since,
)
from functions.adapters.kubernetes_unstartable import Unstartable, misfit, pod_cannot_start
from functions.adapters.kubernetes_workloads import End as WorkloadEnd
from functions.adapters.kubernetes_workloads import Workloads, created_at
from functions.adapters.kubernetes_workloads import end as workload_end
from functions.core import report_token, trial_kinds
from functions.core.disruptions import Disruption, exhausted, vanished
from functions.core.events import Event, trial_finished
from functions.core.job import is_job, own_conditions, primary_container_name
from functions.core.launch import TrialLaunch
from functions.core.ports import Look
from functions.core.remade_pods import backoff_limit, past_limit, remaking
from functions.core.start_failures import missing_cause


class Looks:
    """Looks at the attempts' Jobs and pods, as :meth:`functions.core.ports.Executor.look` gives them."""

    def __init__(self, jobs: TrialJobs, api: client.ApiClient, workloads: Workloads, secrets: ReportSecrets,
                 report_url: str | None, clock: Callable[[], float]) -> None:
        self._jobs = jobs
        self._core = client.CoreV1Api(api)
        self._workloads = workloads
        self._secrets = secrets
        self._report_url = report_url
        self._clock = clock

    def look(self, launch: TrialLaunch) -> Look:
        """The attempt's end; while its Job is suspended (an admission controller such as Kueue
        holds it until a queue admits it) or its pod cannot start, why (:meth:`_held`,
        :meth:`_cannot_start`); and the pods it lost to disruptions, those of
        :attr:`~functions.core.launch.TrialLaunch.lost_pods` with those seen now.

        A trial's timeout counts from the start of its container in the Job's current pod (the
        latest one not disrupted): a running trial past it is reported as timed out (the
        ``trial.finished`` handler reads its log, then deletes the Job). A preempted pod's
        replacement starts a fresh timeout. The Job's own deadline is only a backstop (the
        timeout plus the start allowance for each run the attempt may make, see
        :func:`functions.core.job.job_deadline`). A running Job that lost more pods to
        disruptions than the trial may lose is reported as preempted with their count
        (:meth:`_running`); the handler deletes it. One whose trial's container exited while a
        sidecar holds its pod running is reported as exited with that container's code, and
        deleted too (:func:`~functions.adapters.kubernetes_sidecars.held_end`). A Job held
        suspended longer than the start allowance is reported as timed out (:meth:`_held`); one
        whose pod cannot start (its image cannot be pulled, no node fits it) for that long, as an
        error (:meth:`_cannot_start`).
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
            return self._running(launch, created.timestamp() if created is not None else None, job)
        return Look(self._ended(launch, job, condition))

    def _allowance(self, launch: TrialLaunch) -> int:
        """The start allowance (``KATUNA_K8S_START_ALLOWANCE``), in seconds."""
        return self._jobs.cluster(launch).start_allowance or 0

    def _held(self, launch: TrialLaunch, since: float, why: str) -> Look:
        """A suspended Job makes no pods and its deadline does not run, so only katuna can end
        its wait: it may wait as long as the start allowance (``KATUNA_K8S_START_ALLOWANCE``),
        counted from its latest suspension, and is then reported as timed out (the handler
        deletes it). Until then, why it waits."""
        allowance = self._allowance(launch)
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
            return self._workload_running(launch, workload)
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

    def _running(self, launch: TrialLaunch, created: float | None, job: Any = None) -> Look:
        """The end of an attempt whose Job runs, if it has one: one that lost more pods to
        disruptions than the trial may lose (its ``podFailurePolicy`` would replace them for
        ever), else one past the trial's timeout, else one whose pod could not start within the
        start allowance; with the pods it lost (seen disrupted, or seen running before and gone
        now: :func:`~functions.core.disruptions.vanished`) and those running. Its pods are read
        once, at every look (the list is as short as the bound keeps it). A ``job`` with no pod
        to start may have its pod refused by the API server (:meth:`_refused`). Another kind's:
        :meth:`_workload_running`."""
        pods = self._jobs.pods(launch)
        gone = vanished(launch.running_pods - set(launch.lost_pods), {pod.metadata.uid for pod in pods})
        if gone:  # confirmed by a list of now, not a snapshot made before the pods seen running
            pods = self._jobs.pods(launch, fresh=True)
            gone = vanished(launch.running_pods - set(launch.lost_pods), {pod.metadata.uid for pod in pods})
        lost = {**launch.lost_pods, **gone,
                **{pod.metadata.uid: d for pod in pods if (d := disruption_of(pod)) is not None and pod.metadata.uid}}
        running = frozenset(pod.metadata.uid for pod in pods
                            if pod.status and pod.status.phase == "Running" and not disrupted(pod))
        ended = self._lost_too_many(launch, pods, lost) or self._timed_out(launch, created, pods) \
            or held_end(launch, job, pods)
        if ended is not None:
            return Look(ended, lost=lost, running=running)
        return self._cannot_start(launch, pods, job)._replace(lost=lost, running=running)

    def _workload_running(self, launch: TrialLaunch, workload: Mapping[str, Any]) -> Look:
        """The end of an attempt whose workload of another kind than Job runs, if it has one:
        past the trial's timeout; a Training Operator job whose ``ExitCode`` replicas' pods were
        made again as many times as its ``runPolicy.backoffLimit`` (:mod:`functions.core.remade_pods`,
        counted from the pods read below, kept with the trial; the node of one whose end no look
        saw read once: :func:`~functions.adapters.kubernetes_remade.judge`); one whose pod could not start
        within the start allowance. Its primary pods are read only once it may be past its
        timeout, and all its pods once a look, for both of the others."""
        ended = self._timed_out(launch, created_at(workload), None)
        if ended is not None:
            return Look(ended)
        pods = self._jobs.pods(launch, every=True)
        replicas = remaking(workload)
        remade = None
        if replicas:
            remade, judged = judge(self._core, launch.remade_pods.seen(
                seen_pods(pods, replicas, primary_container_name(launch))), self._jobs.namespace(launch))
            past = past_limit(remade, backoff_limit(workload), names_of(pods, replicas)) if judged else None
            if past is not None:
                code, why = past
                kind = workload.get("kind")
                return Look(trial_finished(launch.study, launch.uid, launch.number, launch.attempt, outcome="exited",
                                           exit_code=code or 1, image_id=image_of(pods, primary_container_name(launch)),
                                           message=f"{kind} {launch.job_name} failed: {why}"), remade=remade)
        return self._unstartable(launch, self._workload_unstartable(launch, pods))._replace(remade=remade)

    def _lost_too_many(self, launch: TrialLaunch, pods: list[Any], lost: dict[str, Disruption]) -> Event | None:
        """The ``preempted`` end, with the count of the pods ``lost`` (seen now or before), of an
        attempt whose Job lost more of them than :func:`~functions.core.disruptions.pods_to_lose`
        allows."""
        message = exhausted(launch.attempt, launch.max_attempts, list(lost.values()))
        if message is None:
            return None
        return trial_finished(launch.study, launch.uid, launch.number, launch.attempt, outcome="preempted",
                              message=message, image_id=image_of(pods, primary_container_name(launch)),
                              disruptions=len(lost))

    def _cannot_start(self, launch: TrialLaunch, pods: list[Any], job: Any) -> Look:
        """While the Job's current pod cannot start (:func:`~functions.adapters.kubernetes_unstartable.pod_cannot_start`),
        why: its kubelet retries a pull for ever and the scheduler waits for a node, so only katuna
        ends the wait, with or without a timeout: once the pod has waited the start allowance
        since its creation, the attempt ends as an ``error`` with the kubelet's or the scheduler's
        words (the handler deletes the Job); at once where nothing can change the cause (an image
        reference the kubelet cannot parse, a pod no node the cluster autoscaler could add would
        fit: :meth:`_judged`). With no pod to start, the one the API server refuses to create
        (:meth:`_refused`)."""
        current = current_pod(pods)
        if current is None:
            return self._unstartable(launch, self._refused(launch, job, pods))
        held = pod_cannot_start(current)
        return self._unstartable(launch, None if held is None else self._judged(launch, current, held))

    def _refused(self, launch: TrialLaunch, job: Any, pods: list[Any]) -> Unstartable | None:
        """The pod of ``job`` the API server keeps refusing to create, by the Job controller's
        Events on it (:func:`~functions.adapters.kubernetes_refused.refused_create`): a
        ServiceAccount that does not exist, a pod its namespace's Pod Security level forbids, a
        quota full; only refusals since the Job's latest pod was made count. None when there is
        no such Event."""
        if job is None or job.metadata is None or job.metadata.creation_timestamp is None:
            return None
        events = self._events(launch, f"involvedObject.uid={job.metadata.uid}", f"Job {job.metadata.name}")
        since = max((pod.metadata.creation_timestamp.timestamp() for pod in pods),
                    default=job.metadata.creation_timestamp.timestamp())
        return refused_create(events, since, self._clock())

    def _events(self, launch: TrialLaunch, selector: str, of: str) -> list[Any]:
        """The Events of the attempt's namespace the field ``selector`` selects. A cluster
        records none where no controller writes them, and an account that may not list Events
        (403) reads none: the trial then waits its start allowance, or its Job's deadline."""
        listed = call(lambda: self._core.list_namespaced_event(self._jobs.namespace(launch), field_selector=selector),
                      f"list the Events of {of}", tolerate=(403,))
        return [] if listed is None else listed.items

    def _judged(self, launch: TrialLaunch, pod: Any, held: Unstartable) -> Unstartable:
        """``held`` as the cluster autoscaler judges it, for a ``pod`` no node fits: its Events on
        the pod (:func:`~functions.adapters.kubernetes_unstartable.misfit`), listed by the pod's uid. A
        cluster without one records none, and an account that may not list Events (403) reads
        none: the pod then waits its start allowance."""
        if not held.unschedulable:
            return held
        return misfit(held, pod, self._events(launch, f"involvedObject.uid={held.uid}", f"pod {held.pod}"))

    def _unstartable(self, launch: TrialLaunch, found: Unstartable | None) -> Look:
        """The wait, or the ``error`` end, of an attempt whose pod cannot start as ``found`` says
        (see :meth:`_cannot_start`), with the cause every attempt of its image would meet."""
        if found is None:
            return Look(None)
        if found.cause is not None and found.cause == self._own_holder_missing(launch):
            return self._hand_again(launch, found)
        allowance = self._allowance(launch)
        ids = (launch.study, launch.uid, launch.number, launch.attempt)
        if found.permanent:
            return Look(trial_finished(*ids, outcome="error", cause=found.cause,
                                       message=f"{found.subject}: {found.why}; {found.never}"))
        if self._clock() - found.since < allowance:
            return Look(None, f"{found.subject} cannot start: {found.why}; the trial fails if it has not started "
                              f"within the start allowance of {allowance}s")
        return Look(trial_finished(*ids, outcome="error", cause=found.cause,
                                   message=f"{found.subject}: {found.why}; it waited past the start allowance of "
                                           f"{allowance}s (KATUNA_K8S_START_ALLOWANCE)"))

    def _own_holder_missing(self, launch: TrialLaunch) -> str | None:
        """The cause a pod of the attempt meets while the Secret of its report token is missing
        (None when the attempt has none)."""
        if launch.progress is None or not self._report_url:
            return None
        return missing_cause("Secret", report_token.holder_name(launch.job_name), self._jobs.namespace(launch))

    def _hand_again(self, launch: TrialLaunch, found: Unstartable) -> Look:
        """The wait of an attempt whose pod waits for its report token's Secret: katuna's own,
        never the user's to make, so it fails no trial and stops no study; made again (the
        launch that made the workload may have stopped before it made the Secret, or the Secret
        was deleted), and the kubelet starts the container at its next try."""
        namespace = self._jobs.namespace(launch)
        workload = self._workloads.get(launch, namespace) if not is_job(launch) else self._job_of(launch)
        if workload is not None and launch.progress is not None:
            self._secrets.hand(namespace, workload, workload["metadata"]["uid"], launch.progress.token)
        return Look(None, f"its pod {found.pod} waits for its report token's Secret "
                          f"{report_token.holder_name(launch.job_name)}, made again now")

    def _job_of(self, launch: TrialLaunch) -> dict[str, Any] | None:
        """The attempt's Job's kind and metadata, as :meth:`ReportSecrets.hand` names its owner."""
        job = self._jobs.job(launch)
        return None if job is None else {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
            "name": job.metadata.name, "uid": job.metadata.uid, "labels": job.metadata.labels or {}}}

    def _workload_unstartable(self, launch: TrialLaunch, pods: list[Any]) -> Unstartable | None:
        """Which pod of a workload of another kind than Job cannot start, if one cannot: any of
        its pods, primary or not (a worker whose image cannot be pulled holds the whole job back),
        one nothing can change first, else the one waiting longest. A pod its operator has not
        made yet (a later step's) is nothing to wait for. ``pods``: all its pods."""
        found = [self._judged(launch, pod, held) for pod in pods
                 if not disrupted(pod) and (held := pod_cannot_start(pod)) is not None]
        return next((held for held in found if held.permanent), min(found, key=lambda held: held.since, default=None))

    def _timed_out(self, launch: TrialLaunch, created: float | None, pods: list[Any] | None) -> Event | None:
        """The ``timeout`` end of a running attempt whose container has run past the trial's
        timeout, else None. Unless given, the ``pods`` are read only once the workload itself
        is older than the timeout."""
        if not launch.timeout:
            return None
        now = self._clock()
        if created is not None and now - created < launch.timeout:
            return None
        pods = self._jobs.pods(launch) if pods is None else pods
        container = primary_container_name(launch)
        started, ended = current_run(pods, container)
        if started is None or min(ended or now, now) - started < launch.timeout:
            return None
        return trial_finished(launch.study, launch.uid, launch.number, launch.attempt, outcome="timeout",
                              image_id=image_of(pods, container), message=(
                                  f"ran past its timeout of {launch.timeout:g}s: its container started "
                                  f"{now - started:.0f}s ago"))



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
