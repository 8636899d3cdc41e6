"""The executor port on Kubernetes: each trial attempt a ``batch/v1`` Job, or the workload of
its ``trialSpec``'s kind (:mod:`functions.adapters.kubernetes_workloads`). The client and the
error translation every Kubernetes adapter shares are in :mod:`functions.adapters.kubernetes_client`;
the attempts' Jobs and pods are read, made and deleted in :mod:`functions.adapters.kubernetes_jobs`,
stopped many at once in :mod:`functions.adapters.kubernetes_job_stops`, and looked at in
:mod:`functions.adapters.kubernetes_looks`; the resources and nodes ports live in
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
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace

from kubernetes import client

from functions.adapters.kubernetes_checkpoints import CheckpointDrops
from functions.adapters.kubernetes_client import translate
from functions.adapters.kubernetes_job_stops import JobStops
from functions.adapters.kubernetes_jobs import TrialJobs
from functions.adapters.kubernetes_limit_ranges import LimitRanges
from functions.adapters.kubernetes_logs import PodLogs
from functions.adapters.kubernetes_looks import Looks
from functions.adapters.kubernetes_orphans import Orphans
from functions.adapters.kubernetes_report_secrets import ReportSecrets
from functions.adapters.kubernetes_status import counted, disruption_of, replacements
from functions.adapters.kubernetes_together import Together
from functions.adapters.kubernetes_workloads import Workloads
from functions.core import file_collector, report_token, trial_kinds
from functions.core.checkpoint_volume import INIT_CONTAINER
from functions.core.cluster import Cluster
from functions.core.errors import KatunaError, PermanentError
from functions.core.events import Event
from functions.core.installation import ORPHAN_GRACE
from functions.core.job import is_job, primary_container_name, render_trial, runs_as_job
from functions.core.kept_tails import KeptTail
from functions.core.launch import TrialLaunch
from functions.core.live_log import LiveRead, LogMark
from functions.core.log_cursor import Cursor, RunningLog
from functions.core.log_reads import lost_run
from functions.core.log_rotation import LogStart
from functions.core.ports import Look, Place, Strays

log = logging.getLogger("katuna.kubernetes")

JOBS = ("batch", "v1", "jobs")


class KubernetesExecutor:
    """Implements :class:`functions.core.ports.Executor` with Jobs."""

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

    def stop_reads(self) -> None:
        """End every read of an attempt's output under way, and refuse any later one
        (:meth:`~functions.adapters.kubernetes_logs.PodLogs.stop`)."""
        self._pod_logs.stop()

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

    def last_lines(self, launch: TrialLaunch, keep: bool = False) -> KeptTail:
        """The last lines of the attempt's log (:meth:`~functions.adapters.kubernetes_logs.PodLogs.tail`),
        to keep before :meth:`stop_trials` deletes (or, with ``keep``, suspends) its workload and
        its pods' logs with it. A read that fails is logged and keeps no line: the stop goes on."""
        kind = "Job" if is_job(launch) else str((launch.trial_spec or {}).get("kind"))
        stopped = f"{'suspended' if keep and is_job(launch) else 'deleted'} {kind} {launch.job_name}"
        try:
            read = self._pod_logs.tail(self._jobs.pods(launch), self._jobs.namespace(launch),
                                       primary_container_name(launch))
        except KatunaError as exc:
            log.warning("keeping the last lines of %s's log before it is stopped: %s", launch.job_name, exc)
            read = None
        text, whole = read or ("", False)
        return KeptTail(text, stopped, whole)

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
        kinds = {(place.namespace or default, trial_kinds.resource(place.trial_spec)) for place in places
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
            self._workloads.drop(namespace, trial_kinds.resource(place.trial_spec), study, uid)

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

    def output(self, launch: TrialLaunch) -> Iterator[str]:
        """The attempt's output, its metrics read from it: the log of each pod of its Job whose
        output is the attempt's, oldest pod first, from the trial's container, streamed (a log of
        any size is read in bounded memory). A disrupted pod that a later pod replaced is left
        out (:func:`~functions.adapters.kubernetes_status.counted`): its run was lost, and the
        replacement ran the trial again from its start. A pod whose container never started, or
        that is gone with its node, has no log, nor has a disrupted pod whose log the API cannot
        read now (its node stopped: a preempted GKE spot VM's Node stays, its kubelet
        unreachable, and the API answers 500 for minutes), as its run was lost anyway; when no
        pod that ran to its end (and none still running) has one, the output is lost
        (:class:`OutputLost`)."""
        for _, lines in self._logs(launch, timestamps=False):
            yield from lines

    def log(self, launch: TrialLaunch) -> Iterator[str]:
        """The attempt's log as a person reads it (``GET /studies/NAME/trials/NUMBER/logs``, the
        dashboard): :meth:`output`, with the logs of the runs its Job lost and ran again too, each
        before the run that replaced it and followed by a line of katuna's saying so
        (:func:`~functions.core.log_reads.lost_run`), so what a disrupted pod printed before it
        went stays in sight, told apart from the next run. Only a lost run whose log is read is
        marked, once a pod replaced it: a Job (whose ``podFailurePolicy`` holds its replacements
        to ``podReplacementPolicy: Failed``) makes the replacement once the lost pod has ended,
        so the mark comes after all the lost run printed, and the bytes before it stay where
        they are: the offsets the log is read at (:class:`~functions.core.log_reads.StreamedLogReads`) hold.
        Of a container its kubelet ran again in place (a training operator's pod under
        ``restartPolicy: OnFailure``), its run before the current one comes first, marked
        (:meth:`~functions.adapters.kubernetes_logs.PodLogs.read_as_shown`)."""
        return (line for line, _ in self._shown(launch, False))

    def marked(self, launch: TrialLaunch) -> Iterator[tuple[str, LogMark | None]]:
        """:meth:`log`, each line of the current run of the last pod's container with the mark
        past it (:class:`~functions.core.live_log.LiveLogs`)."""
        return self._shown(launch, True)

    def since(self, launch: TrialLaunch, mark: LogMark, limit_bytes: int) -> LiveRead | None:
        """The mark's container run's log from a little before the mark
        (:meth:`~functions.adapters.kubernetes_logs.PodLogs.since`)."""
        return self._pod_logs.since(self._jobs.pods(launch), self._jobs.namespace(launch),
                                    primary_container_name(launch), mark, limit_bytes)

    def _shown(self, launch: TrialLaunch, marks: bool) -> Iterator[tuple[str, LogMark | None]]:
        """The log :meth:`log` reads, with marks where ``marks`` asks for them."""
        pods = self._jobs.pods(launch)
        lost = {pods[index].metadata.uid: (pods[index], later) for index, later in replacements(pods).items()}
        last = "\n"
        for uid, lines in self._pod_logs.read_as_shown(pods, self._jobs.namespace(launch), primary_container_name(launch),
                                                       launch.job_name, marks):
            for line, mark in lines:
                last = line
                yield line, mark
            if uid in lost:
                pod, later = lost[uid]
                yield ("" if last.endswith("\n") else "\n") + lost_run(pod.metadata.name, disruption_of(pod),
                                                                       later.metadata.name), None
                last = "\n"

    def stamped_output(self, launch: TrialLaunch) -> Iterator[tuple[str, Iterator[str]]]:
        """The attempt's output as :meth:`output` reads it, each pod's apart (its uid, and its
        lines, to be read before the next pod's), each line behind the time it was written."""
        return self._logs(launch, timestamps=True)

    def counted_pods(self, launch: TrialLaunch) -> frozenset[str]:
        """The uids of the attempt's pods whose output is the attempt's (those :meth:`output` reads)."""
        return frozenset(pod.metadata.uid for pod in counted(self._jobs.pods(launch)))

    def _logs(self, launch: TrialLaunch, timestamps: bool) -> Iterator[tuple[str, Iterator[str]]]:
        """The uid and the streamed log of each pod whose output is the attempt's (see :meth:`output`)."""
        yield from self._pod_logs.streams(self._jobs.pods(launch), self._jobs.namespace(launch), primary_container_name(launch),
                                          timestamps, launch.job_name)

    def running_log(self, launch: TrialLaunch, after: Cursor | None, limit_bytes: int) -> RunningLog | None:
        """At most ``limit_bytes`` of the log of the trial's container in the attempt's running pod
        (:meth:`~functions.adapters.kubernetes_logs.PodLogs.running`); None when no pod of the attempt runs."""
        return self._pod_logs.running(self._jobs.pods(launch), self._jobs.namespace(launch), primary_container_name(launch),
                                      after, limit_bytes)

    def log_start(self, launch: TrialLaunch) -> LogStart | None:
        """Where the log of the trial's container in the attempt's current pod begins
        (:meth:`~functions.adapters.kubernetes_logs.PodLogs.start`); None when it cannot be read."""
        return self._pod_logs.start(self._jobs.pods(launch), self._jobs.namespace(launch), primary_container_name(launch))

    def read_file(self, launch: TrialLaunch, path: str) -> Iterator[str]:
        """The metrics file's lines, as the wrapped trial container printed them to its log
        (:func:`~functions.core.file_collector.final_lines`)."""
        return file_collector.final_lines(lambda: self.output(launch))
