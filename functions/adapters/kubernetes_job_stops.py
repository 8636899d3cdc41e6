"""Stopping many trial Jobs at once, as the Kubernetes executor does: a study's end deletes its
trials' Jobs, or suspends them where its template ``retain``s them, in one collection delete (or
one list) per namespace and hundred trials (:meth:`JobStops.stop`); a study's resource deleted
takes all its Jobs in one request (:meth:`JobStops.drop`); and the tick stops the Jobs that run
while their trial is no longer wanted (:meth:`JobStops.stop_strays`). Each selects by the
study's uid too, so none of an earlier study of the same name is taken. One attempt's Job is
:mod:`functions.adapters.kubernetes_jobs`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import all_pages, call, delete_options, translate
from functions.adapters.kubernetes_jobs import TrialJobs
from functions.adapters.kubernetes_kueue import KueueWorkloads
from functions.adapters.kubernetes_resources import LIST_PAGE
from functions.core.cluster import SINK_BINDING_LABEL
from functions.core.job import is_job
from functions.core.launch import TrialLaunch
from functions.core.log_context import about
from functions.core.ports import Strays
from functions.core.workload_labels import (
    STRAY_SELECTOR,
    attempt_of,
    selector_chunks,
    study_selector,
    trials_selector,
)

if TYPE_CHECKING:
    from functions.adapters.kubernetes_orphans import OrphanSweep

log = logging.getLogger("katuna.kubernetes")


class JobStops:
    """Deletes and suspensions of many trials' Jobs, each attempt's namespace and one Job's
    delete as ``jobs`` has them."""

    def __init__(self, api: client.ApiClient, jobs: TrialJobs) -> None:
        self._batch = client.BatchV1Api(api)
        self._jobs = jobs
        self._queues = KueueWorkloads(api)

    def stop(self, launches: Sequence[TrialLaunch], keep: bool) -> None:
        """Delete every Job of the trials with their pods (``propagationPolicy: Background``), in
        one collection delete per namespace and :data:`~functions.core.workload_labels.TRIALS_PER_SELECTOR`
        trials, whatever their count (a study's end stops a hundred in its transaction); none of
        an earlier study of the same name (their labels carry its uid). With ``keep`` (``retain``)
        their Jobs are listed once and suspended instead: Kubernetes terminates a suspended Job's
        running pods and makes no more, and the Job stays, with its status, as Katib keeps a
        retained trial's Job whatever its end; a Job Kueue manages is stopped by deactivating its
        Workload, as Kueue resumes one suspended alone (:mod:`~functions.adapters.kubernetes_kueue`).
        Workloads of other kinds are not Jobs: see
        :meth:`~functions.adapters.kubernetes_workloads.Workloads.delete_trial`."""
        for namespace, chunk in selector_chunks([launch for launch in launches if is_job(launch)], self._jobs.namespace):
            (self._suspend_jobs if keep else self._delete_jobs)(namespace, trials_selector(chunk), _trials(chunk))

    def drop(self, namespace: str, study: str, uid: str) -> None:
        """Delete every Job of the study (of ``uid``) in ``namespace`` with its pods, running,
        suspended or finished, in one request: its resource was deleted
        (:meth:`~functions.adapters.kubernetes_executor.KubernetesExecutor.drop_kept`)."""
        self._delete_jobs(namespace, study_selector(study, uid), f"study {study}")

    def _delete_jobs(self, namespace: str, selector: str, what: str) -> None:
        """Delete the Jobs ``selector`` selects (those of ``what``), with their pods, in one
        request; where katuna's grant lacks ``deletecollection`` (its namespace bound to a Role
        of an older katuna's manifests), listed and deleted one by one, as such a katuna did."""
        try:
            self._batch.delete_collection_namespaced_job(namespace, label_selector=selector, body=delete_options())
        except ApiException as exc:
            if exc.status != 403:
                raise translate(exc, f"delete the Jobs of {what}") from exc
            log.warning("katuna may not deletecollection jobs.batch in namespace %s (grant it, as the katuna-trials "
                        "ClusterRole does): the Jobs of %s are deleted one by one", namespace, what)
            for name, uid in self._jobs_listed(namespace, selector, what):
                self._jobs.delete(namespace, name, uid)
        except HTTPError as exc:
            raise translate(exc, f"delete the Jobs of {what}") from exc

    def stop_strays(self, namespace: str, wanted: Strays, orphans: OrphanSweep | None = None) -> None:
        """Delete each Job katuna made in ``namespace`` that still runs (neither finished nor
        suspended) and ``wanted`` calls a stray by its labels, with its pods, only while its uid
        is the one listed; suspend it instead where ``wanted`` says its study retains its Jobs (by
        deactivating its Workload where Kueue manages it). A suspended Job is left: stopped already,
        or kept, as a ``retain`` study's end keeps its Jobs, whichever study of its name is stored now.
        A Job of this installation whose study the store does not hold is deleted where ``orphans``
        takes it (:class:`~functions.adapters.kubernetes_orphans.OrphanSweep`)."""
        for job, (study, uid, number, attempt) in self._running_jobs(namespace):
            if not wanted.stray(study, uid, number, attempt):
                if orphans is not None and orphans.takes(job.metadata.labels, _created(job), study, uid):
                    log.warning("Job %s of study %s (uid %s) runs while the store holds no such study: deleted",
                                job.metadata.name, study, uid, extra=about(study))
                    self._jobs.delete(namespace, job.metadata.name, job.metadata.uid)
                continue
            kept = wanted.retained(study, uid)
            log.warning("Job %s of study %s runs while its trial is no longer wanted: %s", job.metadata.name, study,
                        "suspended" if kept else "deleted", extra=about(study))
            if not kept:
                self._jobs.delete(namespace, job.metadata.name, job.metadata.uid)
            elif not self._queues.deactivate(namespace, [job.metadata.uid], f"Job {job.metadata.name}"):
                self._suspend(namespace, job.metadata.name)

    def _running_jobs(self, namespace: str) -> list[tuple[Any, tuple[str, str, int, int]]]:
        """The Jobs katuna made for trials in ``namespace`` that are neither finished nor
        suspended, each with the attempt its labels name: read every page, keeping only those,
        as a ``retain`` study of thousands of trials keeps a finished Job for each."""
        def page(token: str) -> Any:
            return self._batch.list_namespaced_job(namespace, label_selector=STRAY_SELECTOR, limit=LIST_PAGE,
                                                   _continue=token or None)
        return call(lambda: all_pages(page, lambda listed: listed.metadata._continue, _running),
                    f"list katuna's Jobs in namespace {namespace}")

    def _suspend_jobs(self, namespace: str, selector: str, what: str) -> None:
        """Suspend each Job ``selector`` selects (those of ``what``), listed once: those Kueue
        manages by their Workloads (Kueue suspends them), the others themselves."""
        jobs = self._jobs_listed(namespace, selector, what)
        queued = self._queues.deactivate(namespace, [uid for _, uid in jobs if uid], what)
        for name, uid in jobs:
            if uid not in queued:
                self._suspend(namespace, name)

    def _jobs_listed(self, namespace: str, selector: str, what: str) -> list[tuple[str, str | None]]:
        """The name and uid of each Job ``selector`` selects (the uid a delete's precondition),
        read :data:`LIST_PAGE` at a time: a ``retain`` study's, deleted, may have thousands."""
        def page(token: str) -> Any:
            return self._batch.list_namespaced_job(namespace, label_selector=selector, limit=LIST_PAGE,
                                                   _continue=token or None)
        return call(lambda: all_pages(page, lambda listed: listed.metadata._continue, _named_jobs),
                    f"list the Jobs of {what}")

    def _suspend(self, namespace: str, name: str) -> None:
        """Suspend one Job (``spec.suspend: true``); one gone already is left. The same patch takes
        off :data:`SINK_BINDING_LABEL`, where a Job still has it
        (:meth:`~functions.adapters.kubernetes_jobs.TrialJobs.create`): the binding's webhook
        selects by the Job as patched, so it leaves the patch alone, where it would add to it
        what the binding has come to put in pods since the Job was made (refused: a Job's
        template is immutable), and the kept Job never holds the binding back."""
        body = {"metadata": {"labels": {SINK_BINDING_LABEL: None}}, "spec": {"suspend": True}}
        call(lambda: self._batch.patch_namespaced_job(name, namespace, body,
                                                      _content_type="application/merge-patch+json"),
             f"suspend Job {name}", tolerate=(404,))


def _finished(job: Any) -> bool:
    """Whether the Job has finished (a ``Complete`` or ``Failed`` condition that holds)."""
    conditions = (job.status.conditions if job.status else None) or []
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in conditions)


def _created(job: Any) -> float | None:
    """When the Job was created (seconds since the epoch)."""
    stamp = job.metadata.creation_timestamp
    return stamp.timestamp() if stamp is not None else None


def _named_jobs(listed: Any) -> list[tuple[str, str | None]]:
    """The name and uid of each Job of a page."""
    return [(job.metadata.name, job.metadata.uid) for job in listed.items if job.metadata and job.metadata.name]


def _running(listed: Any) -> list[tuple[Any, tuple[str, str, int, int]]]:
    """The Jobs of a page of katuna's that are neither finished nor suspended, each with the
    attempt its labels name (none labelled by hand with a trial number that is no number)."""
    return [(job, attempt) for job in listed.items if job.metadata and job.metadata.labels
            and (attempt := attempt_of(job.metadata.labels)) is not None
            and not (job.spec and job.spec.suspend) and not _finished(job)]


def _trials(launches: Sequence[TrialLaunch]) -> str:
    """The trials of ``launches``, as an error names them."""
    numbers = [str(launch.number) for launch in launches]
    return f"trial {numbers[0]}" if len(numbers) == 1 else f"trials {', '.join(numbers)}"
