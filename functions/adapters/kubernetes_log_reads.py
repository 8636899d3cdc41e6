"""The reading half of the Kubernetes executor (:class:`~functions.adapters.kubernetes_executor.KubernetesExecutor`
inherits it): an attempt's output and log, read from the pods of its Job (or workload) with
:class:`~functions.adapters.kubernetes_logs.PodLogs`, the runs its Job lost marked in the log a
person reads, and the last lines kept before a stop deletes the pods. It makes no request of its
own: the pods are listed by :class:`~functions.adapters.kubernetes_jobs.TrialJobs`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from functions.adapters import kubernetes_log_tails
from functions.adapters.kubernetes_jobs import TrialJobs
from functions.adapters.kubernetes_logs import PodLogs
from functions.adapters.kubernetes_status import counted, disruption_of, replacements
from functions.core import file_collector
from functions.core.errors import KatunaError
from functions.core.job import is_job, primary_container_name
from functions.core.kept_tails import KeptTail
from functions.core.launch import TrialLaunch
from functions.core.live_log import LiveRead, LogMark
from functions.core.log_cursor import Cursor, RunningLog
from functions.core.log_keep import Kept
from functions.core.log_reads import lost_run
from functions.core.log_rotation import LogStart

log = logging.getLogger("katuna.kubernetes")


class LogReads:
    """What :class:`~functions.core.ports.Executor` reads of an attempt's output on Kubernetes,
    through the executor's pod-log reader and the trial Jobs it lists pods with."""

    _jobs: TrialJobs
    _pod_logs: PodLogs

    def stop_reads(self) -> None:
        """End every read of an attempt's output under way, and refuse any later one
        (:meth:`~functions.adapters.kubernetes_logs.PodLogs.stop`)."""
        self._pod_logs.stop()

    def last_lines(self, launch: TrialLaunch, keep: bool = False, seen: Callable[[str], None] | None = None,
                   after: Kept | None = None) -> KeptTail:
        """The last lines of the attempt's log (:func:`~functions.adapters.kubernetes_log_tails.tail`),
        to keep before :meth:`stop_trials` deletes (or, with ``keep``, suspends) its workload and
        its pods' logs with it. A read that fails is logged and keeps no line: the stop goes on.
        With ``seen``, the same one read hands it the lines among them past what ``after`` kept
        of the running log (all of them where nothing was), and a read that fails raises."""
        kind = "Job" if is_job(launch) else str((launch.trial_spec or {}).get("kind"))
        stopped = f"{'suspended' if keep and is_job(launch) else 'deleted'} {kind} {launch.job_name}"
        try:
            read = kubernetes_log_tails.tail(self._pod_logs, self._jobs.pods(launch), self._jobs.namespace(launch),
                                             primary_container_name(launch), seen, after)
        except KatunaError as exc:
            if seen is not None:
                raise
            log.warning("keeping the last lines of %s's log before it is stopped: %s", launch.job_name, exc)
            read = None
        text, whole = read or ("", False)
        return KeptTail(text, stopped, whole)

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
