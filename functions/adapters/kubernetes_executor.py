"""The executor port on Kubernetes: each trial attempt a ``batch/v1`` Job, or the workload of
its ``trialSpec``'s kind (:mod:`functions.adapters.kubernetes_workloads`). The client and the
error translation every Kubernetes adapter shares are in :mod:`functions.adapters.kubernetes_client`;
the resources and nodes ports live in :mod:`functions.adapters.kubernetes_resources`, Katib's
Trials in :mod:`functions.adapters.kubernetes_trials`. Only the ``kubernetes_*`` modules import
the ``kubernetes`` client.

Creating a Job that exists already is success when it is the attempt's own, so a retried
launch is harmless; Job names carry no study uid, so one left by an earlier study of the same
name is deleted first (:func:`~functions.adapters.kubernetes_workloads.settle_conflict`), and
every read and delete selects the study's uid too. Ends are
learnt by asking (:meth:`KubernetesExecutor.poll`): from the Job events an ApiServerSource
delivers, and from the watcher's reconcile pass, so a lost event cannot leave a trial running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import client_refusals, delete_options, read_or_none, translate
from functions.adapters.kubernetes_logs import PodLogs
from functions.adapters.kubernetes_report_secrets import ReportSecrets
from functions.adapters.kubernetes_status import (
    SUCCEEDED,
    Unstartable,
    current_pod,
    current_run,
    disrupted,
    disruption_of,
    exit_of,
    final_condition,
    image_of,
    misfit,
    oldest_first,
    pod_cannot_start,
    ran,
    suspended_since,
)
from functions.adapters.kubernetes_together import Together
from functions.adapters.kubernetes_workloads import End as WorkloadEnd
from functions.adapters.kubernetes_workloads import (
    Workloads,
    created_at,
    made_by,
    own_pods,
    pod_selector,
    settle_conflict,
    workload_pod_selector,
)
from functions.adapters.kubernetes_workloads import end as workload_end
from functions.core import file_collector, report_token
from functions.core.cluster import Cluster
from functions.core.disruptions import Disruption, exhausted, vanished
from functions.core.errors import PermanentError, RefusedWorkload
from functions.core.events import Event, trial_finished
from functions.core.job import (
    holder,
    is_job,
    own_conditions,
    primary_container_name,
    render_trial,
    selector_chunks,
    trials_selector,
)
from functions.core.launch import TrialLaunch
from functions.core.log_cursor import Cursor, RunningLog
from functions.core.log_rotation import LogStart
from functions.core.naming import OWN
from functions.core.ports import Look
from functions.core.start_failures import missing_cause
from functions.core.trial_spec import PATH as TRIAL_SPEC

log = logging.getLogger("katuna.kubernetes")


class KubernetesExecutor:
    """Implements :class:`functions.core.ports.Executor` with Jobs."""

    def __init__(self, defaults: Cluster, api: client.ApiClient, report_url: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._defaults = defaults
        self._report_url = report_url
        self._clock = clock
        self._batch = client.BatchV1Api(api)
        self._core = client.CoreV1Api(api)
        self._workloads = Workloads(api, translate)
        self._pod_logs = PodLogs(api, clock)
        self._secrets = ReportSecrets(api)
        self._together = Together(self._batch, self._core)

    def together(self, launches: Sequence[TrialLaunch]) -> AbstractContextManager[None]:
        """Within the block, the Jobs and pods of these running attempts (of one study) are read
        from one list of each, made now (:mod:`~functions.adapters.kubernetes_together`)."""
        return self._together.reading(launches, self._namespace)

    def stop_reads(self) -> None:
        """End every read of an attempt's output under way, and refuse any later one
        (:meth:`~functions.adapters.kubernetes_logs.PodLogs.stop`)."""
        self._pod_logs.stop()

    def _namespace(self, launch: TrialLaunch) -> str:
        """The launch's namespace, else the configured one, else Kubernetes' own default."""
        return (launch.cluster or Cluster()).with_defaults(self._defaults).namespace or "default"

    def launch(self, launch: TrialLaunch) -> None:
        """Create the Job; trials of studies with early stopping learn where to report progress,
        and with which token, which their container reads from a Secret made once the Job is,
        owned by it (:mod:`~functions.adapters.kubernetes_report_secrets`). A Secret Kubernetes
        refuses for good deletes the Job again, so no attempt waits for a token that never comes.
        A Job the client refuses before sending it (a value of a type its model does not take,
        which a parameter put there: the submission's dry run passed) is a :class:`RefusedWorkload`
        naming the field: that trial fails, not every delivery."""
        value = launch.progress.token if launch.progress is not None and self._report_url else None
        if value is not None:
            launch = replace(launch, env={**launch.env, "KATUNA_REPORT_URL": self._report_url or "",
                                          report_token.ENV: value})
        job, namespace = render_trial(launch, self._defaults), self._namespace(launch)
        uid = self._workloads.create(namespace, job, launch) if not is_job(launch) else \
            self._create_job(namespace, job, launch)
        if value is None:
            return
        try:
            self._secrets.hand(namespace, job, uid, value)
        except PermanentError:
            if is_job(launch):
                self._delete(namespace, launch.job_name, uid)
            else:
                self._workloads.delete_own(launch, namespace, uid)
            raise

    def _create_job(self, namespace: str, job: dict[str, Any], launch: TrialLaunch) -> str:
        """Create the attempt's Job; its uid (the one there already when the launch was
        delivered before)."""
        try:
            # The client checks the dict against its V1Job model, then sends it as it is.
            created = self._batch.create_namespaced_job(namespace, cast(client.V1Job, job))
            return cast(str, cast(Any, created).metadata.uid)
        except ApiException as exc:
            if exc.status != 409:
                raise translate(exc, f"create Job {launch.job_name}") from exc
            found = self._named(launch)
            settle_conflict(launch, f"Job {launch.job_name}", None if found is None else (
                found.metadata.labels or {}, found.metadata.uid), partial(self._delete, namespace, launch.job_name))
            return cast(str, cast(Any, found).metadata.uid)
        except HTTPError as exc:
            raise translate(exc, f"create Job {launch.job_name}") from exc
        except ValidationError as exc:
            refused = f"Kubernetes' client refuses Job {launch.job_name} before sending it"
            raise RefusedWorkload(client_refusals(exc, TRIAL_SPEC if launch.trial_spec else "trialTemplate",
                                                  refused)) from exc

    def _named(self, launch: TrialLaunch) -> Any | None:
        """The Job of the launch's name, whoever's it is; None when there is none."""
        return read_or_none(lambda: self._batch.read_namespaced_job(launch.job_name, self._namespace(launch)),
                            f"read Job {launch.job_name}")

    def _job(self, launch: TrialLaunch) -> Any | None:
        """The attempt's Job; None when there is none, or when the one of its name is another's
        (an earlier study's of the same name)."""
        listed, job = self._together.job(self._namespace(launch), launch)
        if not listed:
            job = self._named(launch)
        return job if job is not None and holder(job.metadata.labels, launch) == OWN else None

    def _delete(self, namespace: str, name: str, uid: str | None = None) -> None:
        """Delete one Job with its pods (``Background``), only while ``uid`` is its uid (when
        given); one gone already, or replaced since (409), is left."""
        try:
            self._batch.delete_namespaced_job(name, namespace, body=delete_options(uid))
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise translate(exc, f"delete Job {name}") from exc
        except HTTPError as exc:
            raise translate(exc, f"delete Job {name}") from exc

    def exists(self, launch: TrialLaunch) -> bool:
        if not is_job(launch):
            return self._workloads.get(launch, self._namespace(launch)) is not None
        return self._job(launch) is not None

    def stop(self, launch: TrialLaunch, keep: bool = False) -> None:
        """Delete every Job (or workload) of the trial, with its pods (:meth:`stop_trials`)."""
        self.stop_trials([launch], keep)

    def stop_trials(self, launches: Sequence[TrialLaunch], keep: bool = False) -> None:
        """Delete every Job of the trials with their pods (``propagationPolicy: Background``), in
        one collection delete per namespace and :data:`~functions.core.job.TRIALS_PER_SELECTOR`
        trials, whatever their count (a study's end stops a hundred in its transaction); none of
        an earlier study of the same name (their labels carry its uid). With ``keep`` (``retain``) their Jobs are listed once
        and suspended instead: Kubernetes terminates a suspended Job's running pods and makes no
        more, and the Job stays, with its status, as Katib keeps a retained trial's Job whatever
        its end. A workload of another kind is deleted trial by trial."""
        for launch in launches:
            if not is_job(launch):
                self._workloads.delete_trial(launch, self._namespace(launch))
        for namespace, chunk in selector_chunks([launch for launch in launches if is_job(launch)], self._namespace):
            (self._suspend_jobs if keep else self._delete_jobs)(namespace, trials_selector(chunk), chunk)

    def _delete_jobs(self, namespace: str, selector: str, launches: Sequence[TrialLaunch]) -> None:
        """Delete the Jobs ``selector`` selects, with their pods, in one request; where katuna's
        grant lacks ``deletecollection`` (its namespace bound to a Role of an older katuna's
        manifests), listed and deleted one by one, as such a katuna did."""
        try:
            self._batch.delete_collection_namespaced_job(namespace, label_selector=selector, body=delete_options())
        except ApiException as exc:
            if exc.status != 403:
                raise translate(exc, f"delete the Jobs of {_trials(launches)}") from exc
            log.warning("katuna may not deletecollection jobs.batch in namespace %s (grant it, as the katuna-trials "
                        "ClusterRole does): the Jobs of %s are deleted one by one", namespace, _trials(launches))
            for name, uid in self._jobs_listed(namespace, selector, launches):
                self._delete(namespace, name, uid)
        except HTTPError as exc:
            raise translate(exc, f"delete the Jobs of {_trials(launches)}") from exc

    def _suspend_jobs(self, namespace: str, selector: str, launches: Sequence[TrialLaunch]) -> None:
        """Suspend each Job ``selector`` selects, listed once."""
        for name, _ in self._jobs_listed(namespace, selector, launches):
            self._suspend(namespace, name)

    def _jobs_listed(self, namespace: str, selector: str,
                     launches: Sequence[TrialLaunch]) -> list[tuple[str, str | None]]:
        """The name and uid of each Job ``selector`` selects (the uid a delete's precondition)."""
        try:
            jobs = self._batch.list_namespaced_job(namespace, label_selector=selector).items
        except (ApiException, HTTPError) as exc:
            raise translate(exc, f"list the Jobs of {_trials(launches)}") from exc
        return [(job.metadata.name, job.metadata.uid) for job in jobs if job.metadata and job.metadata.name]

    def _suspend(self, namespace: str, name: str) -> None:
        """Suspend one Job (``spec.suspend: true``); one gone already is left."""
        try:
            self._batch.patch_namespaced_job(name, namespace, {"spec": {"suspend": True}},
                                             _content_type="application/merge-patch+json")
        except ApiException as exc:
            if exc.status != 404:
                raise translate(exc, f"suspend Job {name}") from exc
        except HTTPError as exc:
            raise translate(exc, f"suspend Job {name}") from exc

    def running(self, study: str) -> int:
        """Jobs run on the cluster, not in this process."""
        return 0

    def recorded_end(self, launch: TrialLaunch) -> Event | None:
        """None: an attempt's end is read from its Job (:meth:`poll`); once the Job is gone,
        nothing of it proves how it ended."""
        return None

    def poll(self, launch: TrialLaunch) -> Event | None:
        """The attempt's end, read from its Job and pods, with the image digest its pod reports
        (:meth:`look`).

        A trial's timeout counts from the start of its container in the Job's current pod (the
        latest one not disrupted): a running trial past it is reported as timed out (the
        ``trial.finished`` handler reads its log, then deletes the Job). A preempted pod's
        replacement starts a fresh timeout. The Job's own deadline is only a backstop (the
        timeout plus the start allowance for each run the attempt may make, see
        :func:`functions.core.job.job_deadline`). A running Job that lost more pods to
        disruptions than the trial may lose is reported as preempted with their count
        (:meth:`_running`); the handler deletes it. A Job held suspended longer than the start
        allowance is reported as timed out (:meth:`_held`); one whose pod cannot start (its image
        cannot be pulled, no node fits it) for that long, as an error (:meth:`_cannot_start`).
        """
        return self.look(launch).finished

    def look(self, launch: TrialLaunch) -> Look:
        """The attempt's end as :meth:`poll` reads it; while its Job is suspended (an admission
        controller such as Kueue holds it until a queue admits it) or its pod cannot start, why
        (:meth:`_held`, :meth:`_cannot_start`); and the pods it lost to disruptions, those of
        :attr:`~functions.core.launch.TrialLaunch.lost_pods` with those seen now."""
        if not is_job(launch) or own_conditions(launch):
            return self._look_workload(launch)
        job = self._job(launch)
        if job is None:
            return Look(trial_finished(launch.study, launch.uid, launch.number, launch.attempt, outcome="preempted",
                                       message=f"Job {launch.job_name} disappeared"))
        condition = final_condition(job)
        held = suspended_since(job)
        if condition is None and held is not None:
            return self._held(launch, *held)
        if condition is None:
            created = job.metadata.creation_timestamp if job.metadata else None
            return self._running(launch, created.timestamp() if created is not None else None)
        return Look(self._ended(launch, job, condition))

    def _allowance(self, launch: TrialLaunch) -> int:
        """The start allowance (``KATUNA_K8S_START_ALLOWANCE``), in seconds."""
        return (launch.cluster or Cluster()).with_defaults(self._defaults).start_allowance or 0

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
        pods = self._pods(launch)
        image_id = image_of(pods, primary_container_name(launch))
        if condition.reason != "DeadlineExceeded" and not any(ran(p) for p in pods):
            return trial_finished(*ids, outcome="preempted", message=_lost(launch, pods))
        if condition.type in SUCCEEDED:
            return trial_finished(*ids, outcome="exited", exit_code=0, image_id=image_id)
        if condition.reason == "DeadlineExceeded":
            deadline = job.spec.active_deadline_seconds if job.spec else None
            return trial_finished(*ids, outcome="timeout", image_id=image_id, message=(
                f"its Job ran past its deadline ({deadline}s from the Job's start: the trial's timeout plus "
                f"the start allowance, for each run its Job may make as it replaces pods lost to preemption; "
                f"{condition.message})"))
        code, reason = exit_of(pods, primary_container_name(launch))
        return trial_finished(*ids, outcome="exited", exit_code=code if code else 1,
                              message=f"Job failed: {condition.reason}: {condition.message}; {reason}",
                              image_id=image_id)

    def _look_workload(self, launch: TrialLaunch) -> Look:
        """The end of an attempt whose workload is another kind than Job: by the study's (else
        the kind's) success and failure conditions, as Katib reads them; the exit code and image
        from the primary pods; while it runs, why it waits, if one of its pods cannot start."""
        ids = (launch.study, launch.uid, launch.number, launch.attempt)
        workload = self._workloads.get(launch, self._namespace(launch))
        kind = (launch.trial_spec or {}).get("kind")
        if workload is None:
            return Look(trial_finished(*ids, outcome="preempted", message=f"{kind} {launch.job_name} disappeared"))
        ended = workload_end(launch, workload)
        if ended is None:
            return self._running(launch, created_at(workload))
        return Look(self._workload_ended(launch, ended))

    def _workload_ended(self, launch: TrialLaunch, ended: WorkloadEnd) -> Event:
        """The end of an attempt whose workload of another kind than Job ``ended`` by its conditions."""
        ids = (launch.study, launch.uid, launch.number, launch.attempt)
        kind = (launch.trial_spec or {}).get("kind")
        pods = self._pods(launch)
        image_id = image_of(pods, primary_container_name(launch))
        if not any(ran(p) for p in pods):
            said = ": ".join(part for part in (ended.reason, ended.message) if part)
            return trial_finished(*ids, outcome="preempted", message=_lost(launch, pods) + (
                f" ({kind} {said})" if said and not ended.succeeded else ""))
        if ended.succeeded:
            return trial_finished(*ids, outcome="exited", exit_code=0, image_id=image_id)
        code, reason = exit_of(pods, primary_container_name(launch))
        return trial_finished(*ids, outcome="exited", exit_code=code if code else 1, image_id=image_id,
                              message=f"{kind} failed: {ended.reason}: {ended.message}; {reason}")

    def _running(self, launch: TrialLaunch, created: float | None) -> Look:
        """The end of an attempt whose workload runs, if it has one: a Job's that lost more pods
        to disruptions than the trial may lose (its ``podFailurePolicy`` would replace them for
        ever), else one past the trial's timeout, else one whose pod could not start within the
        start allowance; with the pods it lost (seen disrupted, or seen running before and gone
        now: :func:`~functions.core.disruptions.vanished`) and those running. A Job's pods are
        read once, at every look (the list is as short as the bound keeps it); another kind's
        primary pods only once it may be past its timeout, and all its pods to see whether one
        cannot start (:meth:`_workload_unstartable`)."""
        if not is_job(launch):
            ended = self._timed_out(launch, created, None)
            return Look(ended) if ended is not None else self._unstartable(launch, self._workload_unstartable(launch))
        pods = self._pods(launch)
        gone = vanished(launch.running_pods - set(launch.lost_pods), {pod.metadata.uid for pod in pods})
        if gone:  # confirmed by a list of now, not a snapshot made before the pods seen running
            pods = self._pods(launch, fresh=True)
            gone = vanished(launch.running_pods - set(launch.lost_pods), {pod.metadata.uid for pod in pods})
        lost = {**launch.lost_pods, **gone,
                **{pod.metadata.uid: d for pod in pods if (d := disruption_of(pod)) is not None and pod.metadata.uid}}
        running = frozenset(pod.metadata.uid for pod in pods
                            if pod.status and pod.status.phase == "Running" and not disrupted(pod))
        ended = self._lost_too_many(launch, pods, lost) or self._timed_out(launch, created, pods)
        if ended is not None:
            return Look(ended, lost=lost, running=running)
        return self._cannot_start(launch, pods)._replace(lost=lost, running=running)

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

    def _cannot_start(self, launch: TrialLaunch, pods: list[Any]) -> Look:
        """While the Job's current pod cannot start (:func:`~functions.adapters.kubernetes_status.pod_cannot_start`),
        why: its kubelet retries a pull for ever and the scheduler waits for a node, so only katuna
        ends the wait, with or without a timeout: once the pod has waited the start allowance
        since its creation, the attempt ends as an ``error`` with the kubelet's or the scheduler's
        words (the handler deletes the Job); at once where nothing can change the cause (an image
        reference the kubelet cannot parse, a pod no node the cluster autoscaler could add would
        fit: :meth:`_judged`)."""
        current = current_pod(pods)
        held = None if current is None else pod_cannot_start(current)
        return self._unstartable(launch, None if held is None else self._judged(launch, current, held))

    def _judged(self, launch: TrialLaunch, pod: Any, held: Unstartable) -> Unstartable:
        """``held`` as the cluster autoscaler judges it, for a ``pod`` no node fits: its Events on
        the pod (:func:`~functions.adapters.kubernetes_status.misfit`), listed by the pod's uid. A
        cluster without one records none, and an account that may not list Events (403) reads
        none: the pod then waits its start allowance."""
        if not held.unschedulable:
            return held
        try:
            events = self._core.list_namespaced_event(self._namespace(launch),
                                                      field_selector=f"involvedObject.uid={held.uid}").items
        except ApiException as exc:
            if exc.status != 403:
                raise translate(exc, f"list the Events of pod {held.pod}") from exc
            return held
        except HTTPError as exc:
            raise translate(exc, f"list the Events of pod {held.pod}") from exc
        return misfit(held, pod, events)

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
                                       message=f"its pod {found.pod}: {found.why}; {found.never}"))
        if self._clock() - found.since < allowance:
            return Look(None, f"its pod {found.pod} cannot start: {found.why}; the trial fails if it has not started "
                              f"within the start allowance of {allowance}s")
        return Look(trial_finished(*ids, outcome="error", cause=found.cause,
                                   message=f"its pod {found.pod}: {found.why}; it waited past the start allowance of "
                                           f"{allowance}s (KATUNA_K8S_START_ALLOWANCE)"))

    def _own_holder_missing(self, launch: TrialLaunch) -> str | None:
        """The cause a pod of the attempt meets while the Secret of its report token is missing
        (None when the attempt has none)."""
        if launch.progress is None or not self._report_url:
            return None
        return missing_cause("Secret", report_token.holder_name(launch.job_name), self._namespace(launch))

    def _hand_again(self, launch: TrialLaunch, found: Unstartable) -> Look:
        """The wait of an attempt whose pod waits for its report token's Secret: katuna's own,
        never the user's to make, so it fails no trial and stops no study; made again (the
        launch that made the workload may have stopped before it made the Secret, or the Secret
        was deleted), and the kubelet starts the container at its next try."""
        namespace = self._namespace(launch)
        workload = self._workloads.get(launch, namespace) if not is_job(launch) else self._job_of(launch)
        if workload is not None and launch.progress is not None:
            self._secrets.hand(namespace, workload, workload["metadata"]["uid"], launch.progress.token)
        return Look(None, f"its pod {found.pod} waits for its report token's Secret "
                          f"{report_token.holder_name(launch.job_name)}, made again now")

    def _job_of(self, launch: TrialLaunch) -> dict[str, Any] | None:
        """The attempt's Job's kind and metadata, as :meth:`ReportSecrets.hand` names its owner."""
        job = self._job(launch)
        return None if job is None else {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
            "name": job.metadata.name, "uid": job.metadata.uid, "labels": job.metadata.labels or {}}}

    def _workload_unstartable(self, launch: TrialLaunch) -> Unstartable | None:
        """Which pod of a workload of another kind than Job cannot start, if one cannot: any of
        its pods, primary or not (a worker whose image cannot be pulled holds the whole job back),
        one nothing can change first, else the one waiting longest. A pod its operator has not
        made yet (a later step's) is nothing to wait for."""
        pods = self._pods(launch, every=True)
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
        pods = self._pods(launch) if pods is None else pods
        container = primary_container_name(launch)
        started, ended = current_run(pods, container)
        if started is None or min(ended or now, now) - started < launch.timeout:
            return None
        return trial_finished(launch.study, launch.uid, launch.number, launch.attempt, outcome="timeout",
                              image_id=image_of(pods, container), message=(
                                  f"ran past its timeout of {launch.timeout:g}s: its container started "
                                  f"{now - started:.0f}s ago"))

    def _pods(self, launch: TrialLaunch, every: bool = False, fresh: bool = False) -> list[Any]:
        """The attempt's primary pods (``every``: all of its workload's pods), oldest first (none
        an earlier study's of the same name): by the study's uid among their labels, or, for a
        TrainJob's, by their owners (:meth:`~functions.adapters.kubernetes_workloads.Workloads.makers`);
        ``fresh``: listed now, never from the lists read together before."""
        namespace = self._namespace(launch)
        makers = None if launch.trial_spec is None else self._workloads.makers(launch, namespace)
        if makers is not None and not makers:
            return []
        selector = f"job-name={launch.job_name}" if launch.trial_spec is None else (
            workload_pod_selector(launch) if every else pod_selector(launch))
        listed = None if fresh else self._together.pods(namespace, launch, selector)
        try:
            items = listed if listed is not None else self._core.list_namespaced_pod(
                namespace, label_selector=selector).items
        except (ApiException, HTTPError) as exc:
            raise translate(exc, f"list the pods of Job {launch.job_name}") from exc
        own = own_pods(launch, items, lambda pod: pod.metadata.labels if pod.metadata else None)
        return sorted(own if makers is None else made_by(own, makers), key=oldest_first)

    def output(self, launch: TrialLaunch) -> Iterator[str]:
        """Every pod's log of the attempt's Job, oldest pod first, from the trial's container,
        streamed: a log of any size is read in bounded memory. A pod whose container never
        started, or that is gone with its node, has no log, nor has a disrupted pod whose log the
        API cannot read now (its node stopped: a preempted GKE spot VM's Node stays, its kubelet
        unreachable, and the API answers 500 for minutes), as its run was lost anyway; when no
        pod that ran to its end (and none still running) has one, the output is lost
        (:class:`OutputLost`)."""
        for _, lines in self._logs(launch, timestamps=False):
            yield from lines

    def stamped_output(self, launch: TrialLaunch) -> Iterator[tuple[str, Iterator[str]]]:
        """The attempt's output as :meth:`output` reads it, each pod's apart (its uid, and its
        lines, to be read before the next pod's), each line behind the time it was written."""
        return self._logs(launch, timestamps=True)

    def _logs(self, launch: TrialLaunch, timestamps: bool) -> Iterator[tuple[str, Iterator[str]]]:
        """The uid and the streamed log of each pod of the attempt that has one (see :meth:`output`)."""
        yield from self._pod_logs.streams(self._pods(launch), self._namespace(launch), primary_container_name(launch),
                                          timestamps, launch.job_name)

    def running_log(self, launch: TrialLaunch, after: Cursor | None, limit_bytes: int) -> RunningLog | None:
        """At most ``limit_bytes`` of the log of the trial's container in the attempt's running pod
        (:meth:`~functions.adapters.kubernetes_logs.PodLogs.running`); None when no pod of the attempt runs."""
        return self._pod_logs.running(self._pods(launch), self._namespace(launch), primary_container_name(launch),
                                      after, limit_bytes)

    def log_start(self, launch: TrialLaunch) -> LogStart | None:
        """Where the log of the trial's container in the attempt's current pod begins
        (:meth:`~functions.adapters.kubernetes_logs.PodLogs.start`); None when it cannot be read."""
        return self._pod_logs.start(self._pods(launch), self._namespace(launch), primary_container_name(launch))

    def read_file(self, launch: TrialLaunch, path: str) -> Iterator[str]:
        """The metrics file's lines, as the wrapped trial container printed them to its log
        (:func:`~functions.core.file_collector.final_lines`)."""
        return file_collector.final_lines(lambda: self.output(launch))


def _trials(launches: Sequence[TrialLaunch]) -> str:
    """The trials of ``launches``, as an error names them."""
    numbers = [str(launch.number) for launch in launches]
    return f"trial {numbers[0]}" if len(numbers) == 1 else f"trials {', '.join(numbers)}"


def _lost(launch: TrialLaunch, pods: list[Any]) -> str:
    """Why an attempt that ended with no pod run to its own end is a lost run, not a failure."""
    kind = (launch.trial_spec or {}).get("kind") or "Job"
    if pods:
        return f"every pod of its {kind} was disrupted"
    return (f"the pods of {kind} {launch.job_name} are gone, and their logs with them (their node was removed "
            "before the end was read): the run is lost, not failed")
