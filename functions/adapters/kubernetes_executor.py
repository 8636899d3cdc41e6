"""The executor port on Kubernetes: each trial attempt a ``batch/v1`` Job (or the workload of
its ``trialSpec``'s kind, see :mod:`functions.adapters.kubernetes_workloads`); and the resources
port: study resources read, their status written (the only module importing the ``kubernetes``
client).

Creating a Job that exists already is success, so a retried launch is harmless. Ends are
learnt by asking (:meth:`KubernetesExecutor.poll`): from the Job events an ApiServerSource
delivers, and from the watcher's reconcile pass, so a lost event cannot leave a trial running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from functools import partial
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from urllib3 import BaseHTTPResponse
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_status import (
    current_run,
    disrupted,
    exit_of,
    final_condition,
    image_of,
    oldest_first,
)
from functions.adapters.kubernetes_workloads import Workloads, created_at, pod_selector
from functions.adapters.kubernetes_workloads import end as workload_end
from functions.core.cluster import STUDY_LABEL, TRIAL_LABEL, Cluster
from functions.core.errors import PermanentError, TemporaryError
from functions.core.events import Event, trial_finished
from functions.core.job import is_job, own_conditions, primary_container_name, render_job
from functions.core.launch import TrialLaunch
from functions.core.lines import bounded_lines
from functions.core.resources import GROUP, PLURALS, VERSION, Ref

log = logging.getLogger("katuna.kubernetes")

CHUNK = 64 * 1024
"""Bytes of a pod log read at a time."""

RETRYABLE = {408, 409, 429, 500, 502, 503, 504}

LIST_PAGE = 500
"""Study resources asked for in one list request (the API's ``limit``; ``continue`` asks for more)."""


def api_client(host: str | None = None) -> client.ApiClient:
    """A client for ``host``, else in-cluster configuration, else the local kubeconfig."""
    if host:
        configuration = client.Configuration()
        configuration.host = host
        return client.ApiClient(configuration)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def _translate(exc: Exception, doing: str) -> Exception:
    if isinstance(exc, ApiException) and exc.status not in RETRYABLE:
        return PermanentError(f"Kubernetes refused to {doing}: {exc.status} {exc.reason}: {exc.body}")
    return TemporaryError(f"could not {doing}: {exc}")


def _read(read: Callable[[], Any], doing: str) -> Any | None:
    """What ``read`` returns, or None when the object is not there."""
    try:
        return read()
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise _translate(exc, doing) from exc
    except HTTPError as exc:
        raise _translate(exc, doing) from exc


class KubernetesExecutor:
    """Implements :class:`functions.core.ports.Executor` with Jobs."""

    def __init__(self, defaults: Cluster, api: client.ApiClient, report_url: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._defaults = defaults
        self._report_url = report_url
        self._clock = clock
        self._batch = client.BatchV1Api(api)
        self._core = client.CoreV1Api(api)
        self._workloads = Workloads(api, _translate)

    def _namespace(self, launch: TrialLaunch) -> str:
        """The launch's namespace, else the configured one, else Kubernetes' own default."""
        return (launch.cluster or Cluster()).with_defaults(self._defaults).namespace or "default"

    def launch(self, launch: TrialLaunch) -> None:
        """Create the Job; trials of studies with early stopping learn where to report progress."""
        if launch.progress is not None and self._report_url:
            launch = replace(launch, env={**launch.env, "KATUNA_REPORT_URL": self._report_url})
        job = render_job(launch, self._defaults)
        if not is_job(launch):
            self._workloads.create(self._namespace(launch), job)
            return
        try:
            # The client sends a plain dict as it is; the Job is rendered as one by the pure core.
            self._batch.create_namespaced_job(self._namespace(launch), cast(client.V1Job, job))
        except ApiException as exc:
            if exc.status != 409:
                raise _translate(exc, f"create Job {launch.job_name}") from exc
        except HTTPError as exc:
            raise _translate(exc, f"create Job {launch.job_name}") from exc

    def _job(self, launch: TrialLaunch) -> Any | None:
        return _read(lambda: self._batch.read_namespaced_job(launch.job_name, self._namespace(launch)),
                     f"read Job {launch.job_name}")

    def exists(self, launch: TrialLaunch) -> bool:
        if not is_job(launch):
            return self._workloads.get(launch, self._namespace(launch)) is not None
        return self._job(launch) is not None

    def stop(self, launch: TrialLaunch) -> None:
        """Delete every Job (or workload) of the trial, with its pods (``propagationPolicy: Background``)."""
        namespace = self._namespace(launch)
        if not is_job(launch):
            self._workloads.delete_trial(launch, namespace)
            return
        selector = f"{STUDY_LABEL}={launch.study},{TRIAL_LABEL}={launch.number}"
        try:
            jobs = self._batch.list_namespaced_job(namespace, label_selector=selector).items
            for name in [job.metadata.name for job in jobs if job.metadata and job.metadata.name]:
                try:
                    self._batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
                except ApiException as exc:
                    if exc.status != 404:
                        raise
        except (ApiException, HTTPError) as exc:
            raise _translate(exc, f"delete the Jobs of trial {launch.number}") from exc

    def running(self, study: str) -> int:
        """Jobs run on the cluster, not in this process."""
        return 0

    def poll(self, launch: TrialLaunch) -> Event | None:
        """The attempt's end, read from its Job and pods, with the image digest its pod reports.

        A trial's timeout counts from the start of its container in the Job's current pod (the
        latest one not disrupted): a running trial past it is reported as timed out (the
        ``trial.finished`` handler reads its log, then deletes the Job). A preempted pod's
        replacement starts a fresh timeout. The Job's own deadline is only a backstop (the
        timeout plus the start allowance, see :func:`functions.core.job.job_deadline`).
        """
        if not is_job(launch) or own_conditions(launch):
            return self._poll_workload(launch)
        job = self._job(launch)
        ids = (launch.study, launch.uid, launch.number, launch.attempt)
        if job is None:
            return trial_finished(*ids, outcome="preempted", message=f"Job {launch.job_name} disappeared")
        condition = final_condition(job)
        if condition is None:
            created = job.metadata.creation_timestamp if job.metadata else None
            return self._timed_out(launch, created.timestamp() if created is not None else None)
        pods = self._pods(launch)
        image_id = image_of(pods, primary_container_name(launch))
        if condition.type == "Complete":
            return trial_finished(*ids, outcome="exited", exit_code=0, image_id=image_id)
        if condition.reason == "DeadlineExceeded":
            deadline = job.spec.active_deadline_seconds if job.spec else None
            return trial_finished(*ids, outcome="timeout", image_id=image_id, message=(
                f"its Job ran past its deadline ({deadline}s from the Job's start: the trial's timeout plus "
                f"the start allowance for waiting for a node, pulling the image and runs lost to preemption; "
                f"{condition.message})"))
        if pods and all(disrupted(p) for p in pods):
            return trial_finished(*ids, outcome="preempted", message="every pod of its Job was disrupted")
        code, reason = exit_of(pods)
        return trial_finished(*ids, outcome="exited", exit_code=code if code else 1,
                              message=f"Job failed: {condition.reason}: {condition.message}; {reason}",
                              image_id=image_id)

    def _poll_workload(self, launch: TrialLaunch) -> Event | None:
        """The end of an attempt whose workload is another kind than Job: by the study's (else
        the kind's) success and failure conditions, as Katib reads them; the exit code and image
        from the primary pods."""
        ids = (launch.study, launch.uid, launch.number, launch.attempt)
        workload = self._workloads.get(launch, self._namespace(launch))
        kind = (launch.trial_spec or {}).get("kind")
        if workload is None:
            return trial_finished(*ids, outcome="preempted", message=f"{kind} {launch.job_name} disappeared")
        ended = workload_end(launch, workload)
        if ended is None:
            return self._timed_out(launch, created_at(workload))
        pods = self._pods(launch)
        image_id = image_of(pods, primary_container_name(launch))
        if ended.succeeded:
            return trial_finished(*ids, outcome="exited", exit_code=0, image_id=image_id)
        code, reason = exit_of(pods)
        return trial_finished(*ids, outcome="exited", exit_code=code if code else 1, image_id=image_id,
                              message=f"{kind} failed: {ended.reason}: {ended.message}; {reason}")

    def _timed_out(self, launch: TrialLaunch, created: float | None) -> Event | None:
        """The ``timeout`` end of a running attempt whose container has run past the trial's
        timeout, else None. No pod is read while the workload itself is younger than the timeout."""
        if not launch.timeout:
            return None
        now = self._clock()
        if created is not None and now - created < launch.timeout:
            return None
        pods = self._pods(launch)
        container = primary_container_name(launch)
        started, ended = current_run(pods, container)
        if started is None or min(ended or now, now) - started < launch.timeout:
            return None
        return trial_finished(launch.study, launch.uid, launch.number, launch.attempt, outcome="timeout",
                              image_id=image_of(pods, container), message=(
                                  f"ran past its timeout of {launch.timeout:g}s: its container started "
                                  f"{now - started:.0f}s ago"))

    def _pods(self, launch: TrialLaunch) -> list[Any]:
        try:
            selector = f"job-name={launch.job_name}" if launch.trial_spec is None else pod_selector(launch)
            pods = self._core.list_namespaced_pod(self._namespace(launch), label_selector=selector)
        except (ApiException, HTTPError) as exc:
            raise _translate(exc, f"list the pods of Job {launch.job_name}") from exc
        return sorted(pods.items, key=oldest_first)

    def output(self, launch: TrialLaunch) -> Iterator[str]:
        """Every pod's log of the attempt's Job, oldest pod first, from the trial's container,
        streamed: a log of any size is read in bounded memory. A pod whose container never
        started, or that is gone with its node, has no log."""
        namespace, container = self._namespace(launch), primary_container_name(launch)
        for pod in self._pods(launch):
            try:
                # Unread (_preload_content=False), the log comes back as urllib3's response, not a str.
                response = cast(BaseHTTPResponse, self._core.read_namespaced_pod_log(
                    pod.metadata.name, namespace, container=container, _preload_content=False))
            except ApiException as exc:
                if exc.status in (400, 404):
                    log.warning("no log from pod %s (container %s): %s", pod.metadata.name, container, exc.reason)
                    continue
                raise _translate(exc, f"read the log of pod {pod.metadata.name}") from exc
            except HTTPError as exc:
                raise _translate(exc, f"read the log of pod {pod.metadata.name}") from exc
            try:
                yield from bounded_lines(response.stream(CHUNK))
            except HTTPError as exc:
                raise _translate(exc, f"read the log of pod {pod.metadata.name}") from exc
            finally:
                response.release_conn()

    def read_file(self, launch: TrialLaunch, path: str) -> Iterator[str]:
        """Files inside a trial's pod are out of reach; the file collector is for local trials."""
        return iter(())


class KubernetesResources:
    """Implements :class:`functions.core.ports.Resources` with the custom objects API; the
    client is made at first use."""

    def __init__(self, connect: Callable[[], client.ApiClient]) -> None:
        self._connect = connect
        self._api: client.CustomObjectsApi | None = None

    def _objects(self) -> client.CustomObjectsApi:
        if self._api is None:
            try:
                self._api = client.CustomObjectsApi(self._connect())
            except config.ConfigException as exc:
                raise TemporaryError(f"no Kubernetes API to reach study resources: {exc}") from exc
        return self._api

    def get(self, ref: Ref) -> Mapping[str, Any] | None:
        return _read(lambda: self._objects().get_namespaced_custom_object(GROUP, VERSION, ref.namespace, ref.plural,
                                                                          ref.name), f"read {ref}")

    def write_status(self, ref: Ref, uid: str, status: Mapping[str, Any]) -> bool:
        """Replace the status subresource, guarded by the resource's uid: a JSON patch whose first
        operation tests ``/metadata/uid``, so the API refuses the whole patch (422) for a resource
        deleted and made again under the same name. (A merge patch cannot guard: the status
        subresource ignores ``metadata`` in it.) Keys whose value is None are left out. False
        when the resource is gone or is another one of the same name."""
        patch: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": uid},
                 {"op": "add", "path": "/status", "value": {k: v for k, v in status.items() if v is not None}}]
        try:
            self._objects().patch_namespaced_custom_object_status(
                GROUP, VERSION, ref.namespace, ref.plural, ref.name, patch, _content_type="application/json-patch+json")
        except ApiException as exc:
            if exc.status == 404 or (exc.status == 422 and not self._is(ref, uid)):
                return False
            raise _translate(exc, f"write the status of {ref}") from exc
        except HTTPError as exc:
            raise _translate(exc, f"write the status of {ref}") from exc
        return True

    def _is(self, ref: Ref, uid: str) -> bool:
        """Whether the resource at ``ref`` is the one with ``uid``: the API's answer to a failed
        ``test`` operation (422, "the server rejected our request due to an error in our
        request") does not say which operation failed."""
        current = self.get(ref)
        return current is not None and (current.get("metadata") or {}).get("uid") == uid

    def list(self, namespace: str) -> list[Mapping[str, Any]]:
        """Every Study and Experiment in ``namespace``, read page by page (each item with its
        ``apiVersion`` and ``kind``); none of a kind whose definition is not installed (404)."""
        found: list[Mapping[str, Any]] = []
        for kind, plural in PLURALS.items():
            token = ""
            while True:
                page = _read(partial(self._page, namespace, plural, token), f"list the {plural} in namespace {namespace}")
                if page is None:
                    break
                found += [{**item, "apiVersion": f"{GROUP}/{VERSION}", "kind": kind} for item in page.get("items") or []]
                token = (page.get("metadata") or {}).get("continue") or ""
                if not token:
                    break
        return found

    def _page(self, namespace: str, plural: str, token: str) -> Any:
        """One page of a list, from where ``token`` (the last page's ``continue``) left off."""
        if token:
            return self._objects().list_namespaced_custom_object(GROUP, VERSION, namespace, plural, limit=LIST_PAGE,
                                                                 _continue=token)
        return self._objects().list_namespaced_custom_object(GROUP, VERSION, namespace, plural, limit=LIST_PAGE)
