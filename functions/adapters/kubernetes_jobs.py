"""The Job and pods of one trial attempt as the Kubernetes executor reads, makes and deletes
them: each read selects the study's uid too (Job names carry none, so one left by an earlier
study of the same name is never taken for the attempt's own). Stopping many trials' Jobs at once
(a study's end, its resource deleted, strays) is :mod:`functions.adapters.kubernetes_job_stops`.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import (
    call,
    client_refusals,
    delete_options,
    oversized_workload,
    read_or_none,
    translate,
)
from functions.adapters.kubernetes_fields import kind_label, strict_refusals
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
from functions.core.launch import TrialLaunch
from functions.core.naming import OWN
from functions.core.pod_selectors import pod_selector, workload_pod_selector
from functions.core.trial_spec import PATH as TRIAL_SPEC
from functions.core.trial_spec import template_field
from functions.core.workload_labels import (
    holder,
)

log = logging.getLogger("katuna.kubernetes")


class TrialJobs:
    """Reads, creates and deletes of an attempt's Job and pods, the reads within
    :meth:`Together.reading` answered from its lists."""

    def __init__(self, defaults: Cluster, api: client.ApiClient, workloads: Workloads, together: Together) -> None:
        self._defaults = defaults
        self._batch = client.BatchV1Api(api)
        self._core = client.CoreV1Api(api)
        self._workloads = workloads
        self._together = together

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
