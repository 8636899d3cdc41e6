"""The executor port on Kubernetes: each trial attempt a ``batch/v1`` Job, or the workload of
its ``trialSpec``'s kind (:mod:`functions.adapters.kubernetes_workloads`). The client and the
error translation every Kubernetes adapter shares are in :mod:`functions.adapters.kubernetes_client`;
the attempts' Jobs and pods are read, made and deleted in :mod:`functions.adapters.kubernetes_jobs`,
stopped many at once in :mod:`functions.adapters.kubernetes_job_stops`, looked at in
:mod:`functions.adapters.kubernetes_looks`, and their output and logs read in
:mod:`functions.adapters.kubernetes_log_reads`; the resources and nodes ports live in
:mod:`functions.adapters.kubernetes_resources`, Katib's Trials in
:mod:`functions.adapters.kubernetes_trials`. Only the ``kubernetes_*`` modules import the
``kubernetes`` client.

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
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace

from kubernetes import client

from functions.adapters.kubernetes_checkpoints import CheckpointDrops
from functions.adapters.kubernetes_client import translate
from functions.adapters.kubernetes_job_stops import JobStops
from functions.adapters.kubernetes_jobs import TrialJobs
from functions.adapters.kubernetes_limit_ranges import LimitRanges
from functions.adapters.kubernetes_log_reads import LogReads
from functions.adapters.kubernetes_logs import PodLogs
from functions.adapters.kubernetes_looks import Looks
from functions.adapters.kubernetes_orphans import Orphans
from functions.adapters.kubernetes_report_secrets import ReportSecrets
from functions.adapters.kubernetes_together import Together
from functions.adapters.kubernetes_workloads import Workloads
from functions.core import report_token, trial_kinds
from functions.core.checkpoint_volume import INIT_CONTAINER
from functions.core.cluster import Cluster
from functions.core.errors import KatunaError, PermanentError
from functions.core.events import Event
from functions.core.installation import ORPHAN_GRACE
from functions.core.job import is_job, render_trial, runs_as_job
from functions.core.launch import TrialLaunch
from functions.core.ports import Look, Place, Strays

log = logging.getLogger("katuna.kubernetes")

JOBS = ("batch", "v1", "jobs")


class KubernetesExecutor(LogReads):
    """Implements :class:`functions.core.ports.Executor` with Jobs; what it reads of an attempt's
    output and log is in :class:`~functions.adapters.kubernetes_log_reads.LogReads`."""

    def __init__(self, defaults: Cluster, api: client.ApiClient, report_url: str | None = None,
                 clock: Callable[[], float] = time.time, installation: str | None = None,
                 orphan_grace: float = ORPHAN_GRACE) -> None:
        """``installation``: the identity each trial workload created is labelled with, by which
        the sweep stops those of its own whose study the store does not hold, ``orphan_grace``
        seconds after their creation (:mod:`~functions.adapters.kubernetes_orphans`); None
        labels none and stops none so."""
        self._defaults = defaults
        self._orphans = Orphans(api, installation, orphan_grace, clock)
        self._report_url = report_url
        self._workloads = Workloads(api, translate)
        self._pod_logs = PodLogs(api, clock)
        self._secrets = ReportSecrets(api)
        self._together = Together(client.BatchV1Api(api), client.CoreV1Api(api))
        self._jobs = TrialJobs(defaults, api, self._workloads, self._together)
        self._job_stops = JobStops(api, self._jobs)
        self._looks = Looks(self._jobs, api, self._workloads, self._secrets, report_url, clock)
        self._limits = LimitRanges(api)
        self.checkpoint_drops = CheckpointDrops(defaults, api, clock, self._limits)

    def together(self, launches: Sequence[TrialLaunch]) -> AbstractContextManager[None]:
        """Within the block, the Jobs and pods of these running attempts (of one study) are read
        from one list of each, made now (:mod:`~functions.adapters.kubernetes_together`)."""
        return self._together.reading(launches, self._jobs.namespace)

    def launch(self, launch: TrialLaunch) -> None:
        """Create the Job; trials of studies with early stopping learn where to report progress,
        and with which token, which their container reads from a Secret made once the Job is,
        owned by it (:mod:`~functions.adapters.kubernetes_report_secrets`). A Secret Kubernetes
        refuses for good deletes the Job again, so no attempt waits for a token that never comes.
        The checkpoint init container of a trial of population-based training asks for what the
        namespace's LimitRanges allow (:mod:`~functions.adapters.kubernetes_limit_ranges`).
        A Job the client refuses before sending it (a value of a type its model does not take,
        which a parameter put there: the submission's dry run passed) is a :class:`RefusedWorkload`
        naming the field: that trial fails, not every delivery."""
        value = launch.progress.token if launch.progress is not None and self._report_url else None
        if value is not None:
            launch = replace(launch, env={**launch.env, "KATUNA_REPORT_URL": self._report_url or "",
                                          report_token.ENV: value})
        job, namespace = render_trial(launch, self._defaults), self._jobs.namespace(launch)
        self._orphans.label(job)
        if launch.checkpoint is not None and is_job(launch):
            self._limits.fit(namespace, job, [INIT_CONTAINER])
        uid = self._workloads.create(namespace, job, launch) if not is_job(launch) else \
            self._jobs.create(namespace, job, launch)
        if value is None:
            return
        try:
            self._secrets.hand(namespace, job, uid, value)
        except PermanentError:
            if is_job(launch):
                self._jobs.delete(namespace, launch.job_name, uid)
            else:
                self._workloads.delete_own(launch, namespace, uid)
            raise

    def exists(self, launch: TrialLaunch) -> bool:
        if not is_job(launch):
            return self._workloads.get(launch, self._jobs.namespace(launch)) is not None
        return self._jobs.job(launch) is not None

    def stop(self, launch: TrialLaunch, keep: bool = False) -> None:
        """Delete every Job (or workload) of the trial, with its pods (:meth:`stop_trials`)."""
        self.stop_trials([launch], keep)

    def stop_trials(self, launches: Sequence[TrialLaunch], keep: bool = False) -> None:
        """Delete every Job of the trials with their pods, in one collection delete per hundred
        trials, or with ``keep`` (``retain``) suspend them (:meth:`~functions.adapters.kubernetes_job_stops.JobStops.stop`);
        a workload of another kind is deleted trial by trial."""
        for launch in launches:
            if not is_job(launch):
                self._workloads.delete_trial(launch, self._jobs.namespace(launch))
        self._job_stops.stop(launches, keep)

    def stop_strays(self, wanted: Strays, places: Collection[Place]) -> None:
        """Delete, with their pods, the running Jobs katuna made in the ``places``' namespaces
        (and the configured one) that ``wanted`` calls strays, or suspend those of a study it
        says retains them (:meth:`~functions.adapters.kubernetes_job_stops.JobStops.stop_strays`);
        then, in each place whose ``trialSpec`` is another kind, delete the stray workloads of
        that kind that have not ended (:meth:`~functions.adapters.kubernetes_workloads.Workloads.stop_strays`);
        a kind that cannot be listed is logged and the others swept. In each namespace, a Job
        deleting a deleted study's checkpoints that failed is told of and run again
        (:meth:`~functions.adapters.kubernetes_checkpoints.CheckpointDrops.sweep`). Then the
        workloads of this installation whose study the store does not hold, older than the grace,
        are deleted, of every trial kind, in every namespace katuna may list them in
        (:mod:`~functions.adapters.kubernetes_orphans`), at most a bounded number a sweep."""
        default = self._defaults.namespace or "default"
        orphans = self._orphans.start(wanted)
        namespaces = sorted({place.namespace or default for place in places} | {default})
        for namespace in namespaces:
            self._job_stops.stop_strays(namespace, wanted, orphans)
            try:
                self.checkpoint_drops.sweep(namespace)
            except KatunaError as exc:
                log.warning("following the Jobs deleting checkpoints in namespace %s: %s", namespace, exc)
        kinds = {(place.namespace or default, self._workloads.resource(place.trial_spec)) for place in places
                 if place.trial_spec is not None and not runs_as_job(place.trial_spec)}
        for namespace, resource in sorted(kinds):
            try:
                self._workloads.stop_strays(namespace, resource, wanted, orphans)
            except KatunaError as exc:
                log.warning("stopping the %s.%s no study wants in namespace %s: %s", resource[2], resource[0],
                            namespace, exc)
        if orphans is not None:
            swept = {(resource, namespace) for namespace, resource in kinds} | {(JOBS, name) for name in namespaces}
            self._orphans.sweep(orphans, swept, namespaces)

    def drop_kept(self, study: str, uid: str, place: Place) -> None:
        """Delete every Job of the study in ``place``'s namespace with its pods, in one request,
        and where its ``trialSpec`` is another kind, every workload of that kind it made, as the
        garbage collector deletes a deleted Katib Experiment's (:meth:`~functions.core.ports.Executor.drop_kept`)."""
        namespace = place.namespace or self._defaults.namespace or "default"
        self._job_stops.drop(namespace, study, uid)
        if place.trial_spec is not None and not runs_as_job(place.trial_spec):
            self._workloads.drop(namespace, self._workloads.resource(place.trial_spec), study, uid)

    def lingers(self, launch: TrialLaunch) -> bool:
        """Whether the ended attempt's workload is deleted once its output is read: a Job, which
        its ``ttlSecondsAfterFinished`` would otherwise keep, with its pods, for the TTL (an
        hour by default) after katuna has its result, as Katib deletes an ended trial's Job
        (the TTL stays, for a Job whose delete fails for good); of another kind, one no TTL
        deletes (:func:`~functions.core.trial_kinds.kept_for_ever`: a TrainJob, a PipelineRun
        with its TaskRuns and pods), which would otherwise stay for the study's whole life, or
        one a pod of which still runs, or waits to (not being deleted): the Training Operator
        leaves a job's pods as they are at its end unless its ``cleanPodPolicy`` says
        otherwise, and defaults it to ``None`` for every kind but TFJob."""
        if is_job(launch):
            return True
        if launch.trial_spec is not None and trial_kinds.kept_for_ever(launch.trial_spec):
            return True
        return any(pod.status is not None and pod.status.phase in ("Pending", "Running")
                   and not pod.metadata.deletion_timestamp for pod in self._jobs.pods(launch, every=True))

    def running(self, study: str) -> int:
        """Jobs run on the cluster, not in this process."""
        return 0

    def recorded_end(self, launch: TrialLaunch) -> Event | None:
        """None: an attempt's end is read from its Job (:meth:`poll`); once the Job is gone,
        nothing of it proves how it ended."""
        return None

    def poll(self, launch: TrialLaunch) -> Event | None:
        """The attempt's end, read from its Job and pods, with the image digest its pod reports
        (:meth:`look`)."""
        return self.look(launch).finished

    def look(self, launch: TrialLaunch) -> Look:
        """The attempt's end, or why it waits, and the pods it lost
        (:meth:`~functions.adapters.kubernetes_looks.Looks.look`)."""
        return self._looks.look(launch)
