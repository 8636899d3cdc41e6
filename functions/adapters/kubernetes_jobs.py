"""The Jobs and pods of trial attempts as the Kubernetes executor reads, makes and deletes them:
each read selects the study's uid too (Job names carry none, so one left by an earlier study of
the same name is never taken for the attempt's own), and a study's end deletes its trials' Jobs
in one collection delete per hundred trials (:meth:`TrialJobs.stop`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import (
    all_pages,
    call,
    client_refusals,
    delete_options,
    oversized_workload,
    read_or_none,
    translate,
)
from functions.adapters.kubernetes_fields import kind_label, strict_refusals
from functions.adapters.kubernetes_kueue import KueueWorkloads
from functions.adapters.kubernetes_resources import LIST_PAGE
from functions.adapters.kubernetes_status import oldest_first
from functions.adapters.kubernetes_together import Together
from functions.adapters.kubernetes_workloads import (
    Workloads,
    made_by,
    own_pods,
    settle_conflict,
)
from functions.core.cluster import SINK_BINDING_LABEL, Cluster
from functions.core.errors import RefusedWorkload
from functions.core.job import is_job
from functions.core.launch import TrialLaunch
from functions.core.log_context import about
from functions.core.naming import OWN
from functions.core.pod_selectors import pod_selector, workload_pod_selector
from functions.core.ports import Strays
from functions.core.trial_spec import PATH as TRIAL_SPEC
from functions.core.trial_spec import template_field
from functions.core.workload_labels import (
    STRAY_SELECTOR,
    attempt_of,
    holder,
    selector_chunks,
    study_selector,
    trials_selector,
)

if TYPE_CHECKING:
    from functions.adapters.kubernetes_orphans import OrphanSweep

log = logging.getLogger("katuna.kubernetes")


class TrialJobs:
    """Reads, creates and deletes of the attempts' Jobs and pods, the reads within
    :meth:`Together.reading` answered from its lists."""

    def __init__(self, defaults: Cluster, api: client.ApiClient, workloads: Workloads, together: Together) -> None:
        self._defaults = defaults
        self._batch = client.BatchV1Api(api)
        self._core = client.CoreV1Api(api)
        self._workloads = workloads
        self._together = together
        self._queues = KueueWorkloads(api)

    def cluster(self, launch: TrialLaunch) -> Cluster:
        """The launch's cluster settings over the configured ones."""
        return (launch.cluster or Cluster()).with_defaults(self._defaults)

    def namespace(self, launch: TrialLaunch) -> str:
        """The launch's namespace, else the configured one, else Kubernetes' own default."""
        return self.cluster(launch).namespace or "default"

    def create(self, namespace: str, job: dict[str, Any], launch: TrialLaunch) -> str:
        """Create the attempt's Job; its uid (the one there already when the launch was
        delivered before). A Job the client refuses before sending it (a value of a type its
        model does not take, which a parameter put there: the submission's dry run passed), that
        the cluster refuses as larger than it stores (:func:`oversized_workload`), or, from a
        ``trialSpec``, holding a field the cluster's Job does not have (strict field validation,
        as the dry run's), is a :class:`RefusedWorkload` naming the field. The Job, bound by a
        SinkBinding as it is made, leaves its selection then (:meth:`_unbind`)."""
        made = self._made(namespace, job, launch)
        self._unbind(namespace, made)
        return cast(str, made.metadata.uid)

    def _made(self, namespace: str, job: dict[str, Any], launch: TrialLaunch) -> Any:
        """The attempt's Job as created, or as found where an earlier delivery made it (:meth:`create`)."""
        try:
            # The client checks the dict against its V1Job model, then sends it as it is; a
            # trialSpec's strictly, as its dry run was (a field this cluster's Job lacks refused).
            return self._batch.create_namespaced_job(namespace, cast(client.V1Job, job),
                                                     field_validation="Strict" if launch.trial_spec else None)
        except ApiException as exc:
            oversized = oversized_workload(exc, TRIAL_SPEC if launch.trial_spec else "trialTemplate",
                                           f"Job {launch.job_name}")
            if oversized is not None:
                raise oversized from exc
            if unknown := strict_refusals(exc, TRIAL_SPEC, kind_label(job), template_field):
                raise RefusedWorkload(unknown) from exc
            if exc.status != 409:
                raise translate(exc, f"create Job {launch.job_name}") from exc
            found = self._named(launch)
            settle_conflict(launch, f"Job {launch.job_name}", None if found is None else (
                found.metadata.labels or {}, found.metadata.uid), partial(self.delete, namespace, launch.job_name))
            return found
        except HTTPError as exc:
            raise translate(exc, f"create Job {launch.job_name}") from exc
        except ValidationError as exc:
            refused = f"Kubernetes' client refuses Job {launch.job_name} before sending it"
            raise RefusedWorkload(client_refusals(exc, TRIAL_SPEC if launch.trial_spec else "trialTemplate",
                                                  refused)) from exc

    def _unbind(self, namespace: str, job: Any) -> None:
        """Take :data:`SINK_BINDING_LABEL` off the Job made, which its SinkBinding's webhook bound
        as it was created: the label's only use. Kept, it would have Knative's reconciler
        patch the Job's template, which the API server refuses, each time what the binding puts
        in pods changes, and leave the binding failed, its OIDC token no longer renewed, until the
        Job is gone; and the webhook would add the change to katuna's own updates of the Job. The
        token reaches the pods all the same: it is a Secret the binding renews in place. Only while
        the Job's uid is the one made (a merge patch naming it); a Job gone or replaced since is
        left, and so is one katuna may not patch, said in a warning, its trial running on."""
        labels = job.metadata.labels or {}
        if SINK_BINDING_LABEL not in labels:
            return
        name, body = job.metadata.name, {"metadata": {"uid": job.metadata.uid, "labels": {SINK_BINDING_LABEL: None}}}
        try:
            self._batch.patch_namespaced_job(name, namespace, body, _content_type="application/merge-patch+json")
        except ApiException as exc:
            if exc.status == 403:
                log.warning("katuna may not patch jobs.batch in namespace %s (grant it, as the katuna-trials "
                            "ClusterRole does): Job %s keeps its label %s, and a change to SinkBinding %s fails "
                            "on it until it is gone", namespace, name, SINK_BINDING_LABEL, labels[SINK_BINDING_LABEL])
            elif exc.status not in (404, 409):
                raise translate(exc, f"take label {SINK_BINDING_LABEL} off Job {name}") from exc
        except HTTPError as exc:
            raise translate(exc, f"take label {SINK_BINDING_LABEL} off Job {name}") from exc

    def _named(self, launch: TrialLaunch) -> Any | None:
        """The Job of the launch's name, whoever's it is; None when there is none."""
        return read_or_none(lambda: self._batch.read_namespaced_job(launch.job_name, self.namespace(launch)),
                            f"read Job {launch.job_name}")

    def job(self, launch: TrialLaunch) -> Any | None:
        """The attempt's Job; None when there is none, or when the one of its name is another's
        (an earlier study's of the same name)."""
        listed, job = self._together.job(self.namespace(launch), launch)
        if not listed:
            job = self._named(launch)
        return job if job is not None and holder(job.metadata.labels, launch) == OWN else None

    def pods(self, launch: TrialLaunch, every: bool = False, fresh: bool = False) -> list[Any]:
        """The attempt's primary pods (``every``: all of its workload's pods), oldest first (none
        an earlier study's of the same name): by the study's uid among their labels, or, for a
        TrainJob's, by their owners (:meth:`~functions.adapters.kubernetes_workloads.Workloads.makers`);
        ``fresh``: listed now, never from the lists read together before."""
        namespace = self.namespace(launch)
        makers = None if launch.trial_spec is None else self._workloads.makers(launch, namespace)
        if makers is not None and not makers:
            return []
        selector = f"job-name={launch.job_name}" if launch.trial_spec is None else (
            workload_pod_selector(launch) if every else pod_selector(launch))
        listed = None if fresh else self._together.pods(namespace, launch, selector)
        items = listed if listed is not None else call(
            lambda: self._core.list_namespaced_pod(namespace, label_selector=selector).items,
            f"list the pods of Job {launch.job_name}")
        own = own_pods(launch, items, lambda pod: pod.metadata.labels if pod.metadata else None)
        return sorted(own if makers is None else made_by(own, makers), key=oldest_first)

    def delete(self, namespace: str, name: str, uid: str | None = None) -> None:
        """Delete one Job with its pods (``Background``), only while ``uid`` is its uid (when
        given); one gone already, or replaced since (409), is left."""
        call(lambda: self._batch.delete_namespaced_job(name, namespace, body=delete_options(uid)),
             f"delete Job {name}", tolerate=(404, 409))

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
        for namespace, chunk in selector_chunks([launch for launch in launches if is_job(launch)], self.namespace):
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
                self.delete(namespace, name, uid)
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
                    self.delete(namespace, job.metadata.name, job.metadata.uid)
                continue
            kept = wanted.retained(study, uid)
            log.warning("Job %s of study %s runs while its trial is no longer wanted: %s", job.metadata.name, study,
                        "suspended" if kept else "deleted", extra=about(study))
            if not kept:
                self.delete(namespace, job.metadata.name, job.metadata.uid)
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
        off :data:`SINK_BINDING_LABEL`, where a Job still has it (:meth:`_unbind`): the binding's
        webhook selects by the Job as patched, so it leaves the patch alone, where it would add
        to it what the binding has come to put in pods since the Job was made (refused: a Job's
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
