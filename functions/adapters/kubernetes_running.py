"""What a look finds of a trial attempt still running on Kubernetes: the end of one whose Job
lost more pods to disruptions than the trial may lose, ran past the trial's timeout, or whose
Training Operator job's pods were made again past its ``runPolicy.backoffLimit`` (the nodes of
those no look saw end read to judge them); while its pod cannot start, why, and the end of that
wait once it is past the start allowance or nothing can change its cause. Looks at an attempt's
workload begin in :mod:`functions.adapters.kubernetes_looks`, which reads the ends of those that
ended.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client

from functions.adapters.kubernetes_client import call
from functions.adapters.kubernetes_jobs import TrialJobs
from functions.adapters.kubernetes_refused import refused_create
from functions.adapters.kubernetes_remade import judge, names_of, seen_pods
from functions.adapters.kubernetes_report_secrets import ReportSecrets
from functions.adapters.kubernetes_sidecars import held_end
from functions.adapters.kubernetes_status import current_pod, current_run, disrupted, disruption_of, image_of
from functions.adapters.kubernetes_unstartable import Unstartable, misfit, pod_cannot_start
from functions.adapters.kubernetes_workloads import Workloads, created_at
from functions.core import report_token
from functions.core.disruptions import Disruption, exhausted, vanished
from functions.core.events import Event, trial_finished
from functions.core.job import is_job, primary_container_name
from functions.core.launch import TIMEOUT_FIELD, TrialLaunch
from functions.core.ports import Look
from functions.core.remade_pods import backoff_limit, past_limit, remaking
from functions.core.start_failures import missing_cause


class RunningLooks:
    """Looks at the attempts whose workloads run, for :class:`~functions.adapters.kubernetes_looks.Looks`."""

    def __init__(self, jobs: TrialJobs, core: client.CoreV1Api, workloads: Workloads, secrets: ReportSecrets,
                 report_url: str | None, clock: Callable[[], float]) -> None:
        self._jobs = jobs
        self._core = core
        self._workloads = workloads
        self._secrets = secrets
        self._report_url = report_url
        self._clock = clock

    def allowance(self, launch: TrialLaunch) -> int:
        """The start allowance (``KATUNA_K8S_START_ALLOWANCE``), in seconds."""
        return self._jobs.cluster(launch).start_allowance or 0

    def job(self, launch: TrialLaunch, created: float | None, job: Any = None) -> Look:
        """The end of an attempt whose Job runs, if it has one: one that lost more pods to
        disruptions than the trial may lose (its ``podFailurePolicy`` would replace them for
        ever), else one past the trial's timeout, else one whose pod could not start within the
        start allowance; with the pods it lost (seen disrupted, or seen running before and gone
        now: :func:`~functions.core.disruptions.vanished`) and those running. Its pods are read
        once, at every look (the list is as short as the bound keeps it). A ``job`` with no pod
        to start may have its pod refused by the API server (:meth:`_refused`). Another kind's:
        :meth:`workload`."""
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

    def workload(self, launch: TrialLaunch, workload: Mapping[str, Any]) -> Look:
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
        allowance = self.allowance(launch)
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
                                  f"{now - started:.0f}s ago ({TIMEOUT_FIELD})"))
