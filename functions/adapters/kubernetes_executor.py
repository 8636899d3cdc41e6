"""The executor port on Kubernetes: each trial attempt a ``batch/v1`` Job; the resources
port: study resources read, their status written; and the nodes port: a pool's Node objects
listed (the only module importing the ``kubernetes`` client).

Creating a Job that exists already is success, so a retried launch is harmless. Ends are
learnt by asking (:meth:`KubernetesExecutor.poll`): from the Job events an ApiServerSource
delivers, and from the watcher's reconcile pass, so a lost event cannot leave a trial running.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from urllib3 import BaseHTTPResponse
from urllib3.exceptions import HTTPError

from functions.core import file_collector
from functions.core.cluster import STUDY_LABEL, TRIAL_LABEL, Cluster
from functions.core.errors import OutputLost, PermanentError, TemporaryError
from functions.core.events import Event, trial_finished
from functions.core.job import primary_container_name, render_trial
from functions.core.launch import TrialLaunch
from functions.core.lines import bounded_lines
from functions.core.log_cursor import Cursor, RunningLog
from functions.core.node_hours import NodeSeen
from functions.core.resources import GROUP, KATIB_API_VERSIONS, KINDS, PLURALS, VERSION, Ref

log = logging.getLogger("katuna.kubernetes")

CHUNK = 64 * 1024
"""Bytes of a pod log read at a time."""

CLOCK_ALLOWANCE = 2
"""Seconds a running trial's log is read from before the last line read: the API counts
``sinceSeconds`` back from its node's clock, which may run ahead of this one."""

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

    def _namespace(self, launch: TrialLaunch) -> str:
        """The launch's namespace, else the configured one, else Kubernetes' own default."""
        return (launch.cluster or Cluster()).with_defaults(self._defaults).namespace or "default"

    def launch(self, launch: TrialLaunch) -> None:
        """Create the Job; trials of studies with early stopping learn where to report progress."""
        if launch.progress is not None and self._report_url:
            launch = replace(launch, env={**launch.env, "KATUNA_REPORT_URL": self._report_url})
        job = render_trial(launch, self._defaults)
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
        return self._job(launch) is not None

    def stop(self, launch: TrialLaunch) -> None:
        """Delete every Job of the trial, with its pods (``propagationPolicy: Background``)."""
        namespace = self._namespace(launch)
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
        job = self._job(launch)
        ids = (launch.study, launch.uid, launch.number, launch.attempt)
        if job is None:
            return trial_finished(*ids, outcome="preempted", message=f"Job {launch.job_name} disappeared")
        condition = _final_condition(job)
        if condition is None:
            return self._timed_out(launch, job)
        pods = self._pods(launch)
        image_id = _image_id(pods, primary_container_name(launch))
        if condition.reason != "DeadlineExceeded" and not any(_ran(p) for p in pods):
            return trial_finished(*ids, outcome="preempted", message="every pod of its Job was disrupted" if pods else (
                f"the pods of Job {launch.job_name} are gone, and their logs with them (their node was removed "
                "before the end was read): the run is lost, not failed"))
        if condition.type == "Complete":
            return trial_finished(*ids, outcome="exited", exit_code=0, image_id=image_id)
        if condition.reason == "DeadlineExceeded":
            deadline = job.spec.active_deadline_seconds if job.spec else None
            return trial_finished(*ids, outcome="timeout", image_id=image_id, message=(
                f"its Job ran past its deadline ({deadline}s from the Job's start: the trial's timeout plus "
                f"the start allowance for waiting for a node, pulling the image and runs lost to preemption; "
                f"{condition.message})"))
        code, reason = _exit(pods)
        return trial_finished(*ids, outcome="exited", exit_code=code if code else 1,
                              message=f"Job failed: {condition.reason}: {condition.message}; {reason}",
                              image_id=image_id)

    def _timed_out(self, launch: TrialLaunch, job: Any) -> Event | None:
        """The ``timeout`` end of a running attempt whose container has run past the trial's
        timeout, else None. No pod is read while the Job itself is younger than the timeout."""
        if not launch.timeout:
            return None
        now = self._clock()
        created = job.metadata.creation_timestamp if job.metadata else None
        if created is not None and now - created.timestamp() < launch.timeout:
            return None
        pods = self._pods(launch)
        container = primary_container_name(launch)
        started, ended = _current_run(pods, container)
        if started is None or min(ended or now, now) - started < launch.timeout:
            return None
        return trial_finished(launch.study, launch.uid, launch.number, launch.attempt, outcome="timeout",
                              image_id=_image_id(pods, container), message=(
                                  f"ran past its timeout of {launch.timeout:g}s: its container started "
                                  f"{now - started:.0f}s ago"))

    def _pods(self, launch: TrialLaunch) -> list[Any]:
        try:
            pods = self._core.list_namespaced_pod(self._namespace(launch), label_selector=f"job-name={launch.job_name}")
        except (ApiException, HTTPError) as exc:
            raise _translate(exc, f"list the pods of Job {launch.job_name}") from exc
        return sorted(pods.items, key=_oldest_first)

    def output(self, launch: TrialLaunch) -> Iterator[str]:
        """Every pod's log of the attempt's Job, oldest pod first, from the trial's container,
        streamed: a log of any size is read in bounded memory. A pod whose container never
        started, or that is gone with its node, has no log; when no pod that ran to its end
        (and none still running) has one, the output is lost (:class:`OutputLost`)."""
        namespace, container = self._namespace(launch), primary_container_name(launch)
        pods, read = self._pods(launch), False
        for pod in pods:
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
            read = read or not _disrupted(pod)
            try:
                yield from bounded_lines(response.stream(CHUNK))
            except HTTPError as exc:
                raise _translate(exc, f"read the log of pod {pod.metadata.name}") from exc
            finally:
                response.release_conn()
        if not read:
            raise OutputLost(f"no log of Job {launch.job_name}'s last run is left: its pods are gone with their "
                             "node, or were never scheduled")

    def running_log(self, launch: TrialLaunch, after: Cursor | None, limit_bytes: int) -> RunningLog | None:
        """At most ``limit_bytes`` of the log of the trial's container in the attempt's running pod,
        each line behind the time it was written: from the start, or, when ``after`` is of that
        pod, from the whole second of its last line (less :data:`CLOCK_ALLOWANCE`: the API counts
        ``sinceSeconds`` back from its own clock). None when no pod of the attempt runs."""
        running = [p for p in self._pods(launch) if p.status and p.status.phase == "Running" and not _disrupted(p)]
        if not running:
            return None
        pod, namespace = running[-1], self._namespace(launch)
        since = None
        if after is not None and after.pod == pod.metadata.uid:
            since = max(1, math.ceil(self._clock() - after.since) + CLOCK_ALLOWANCE)
        try:
            response = cast(BaseHTTPResponse, self._core.read_namespaced_pod_log(
                pod.metadata.name, namespace, container=primary_container_name(launch), timestamps=True,
                limit_bytes=limit_bytes, since_seconds=since, _preload_content=False))
        except ApiException as exc:
            if exc.status in (400, 404):
                return None
            raise _translate(exc, f"read the log of pod {pod.metadata.name}") from exc
        except HTTPError as exc:
            raise _translate(exc, f"read the log of pod {pod.metadata.name}") from exc
        try:
            return RunningLog(pod.metadata.uid, list(bounded_lines(response.stream(CHUNK))))
        except HTTPError as exc:
            raise _translate(exc, f"read the log of pod {pod.metadata.name}") from exc
        finally:
            response.release_conn()

    def read_file(self, launch: TrialLaunch, path: str) -> Iterator[str]:
        """The metrics file's lines, as the wrapped trial container copied them to its log."""
        return file_collector.file_lines(self.output(launch))


class KubernetesResources:
    """Implements :class:`functions.core.ports.Resources` with the custom objects API; the
    client is made at first use."""

    def __init__(self, connect: Callable[[], client.ApiClient], katib_api: bool = False) -> None:
        self._connect = connect
        self._api: client.CustomObjectsApi | None = None
        self.katib_api = katib_api

    def _objects(self) -> client.CustomObjectsApi:
        if self._api is None:
            try:
                self._api = client.CustomObjectsApi(self._connect())
            except config.ConfigException as exc:
                raise TemporaryError(f"no Kubernetes API to reach study resources: {exc}") from exc
        return self._api

    def get(self, ref: Ref) -> Mapping[str, Any] | None:
        return _read(lambda: self._objects().get_namespaced_custom_object(ref.group, ref.version, ref.namespace,
                                                                          ref.plural, ref.name), f"read {ref}")

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
                ref.group, ref.version, ref.namespace, ref.plural, ref.name, patch,
                _content_type="application/json-patch+json")
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
        for kind in KINDS[f"{GROUP}/{VERSION}"]:
            plural, token = PLURALS[kind], ""
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


    def list_katib(self) -> Sequence[Mapping[str, Any]]:
        """Every Katib Experiment and StudyJob in every namespace the service may list (one
        request per kind; none of a kind whose definition is not installed)."""
        found: list[Mapping[str, Any]] = []
        if not self.katib_api:
            return found
        for api_version in KATIB_API_VERSIONS:
            group, _, version = api_version.partition("/")
            for kind in KINDS[api_version]:
                page = _read(partial(self._objects().list_cluster_custom_object, group, version, PLURALS[kind]),
                             f"list the {PLURALS[kind]}.{group}")
                found += [{**item, "apiVersion": api_version, "kind": kind} for item in (page or {}).get("items") or []]
        return found

    def put_trials(self, owner: Ref, trials: Sequence[Mapping[str, Any]]) -> None:
        """Create the missing Trials of the Experiment at ``owner``, then write each status that
        differs from the API's (one list, then only the writes that change something)."""
        api = self._objects()
        group, version = owner.group, owner.version
        listed = _read(partial(api.list_namespaced_custom_object, group, version, owner.namespace, "trials",
                               label_selector=f"katib.kubeflow.org/experiment={owner.name}"), f"list the trials of {owner}")
        current = {item["metadata"]["name"]: item for item in (listed or {}).get("items") or []}
        for trial in trials:
            name = trial["metadata"]["name"]
            body = {k: v for k, v in trial.items() if k != "status"}
            try:
                if name not in current:
                    current[name] = api.create_namespaced_custom_object(group, version, owner.namespace, "trials", body)
                if current[name].get("status") != trial["status"]:
                    api.patch_namespaced_custom_object_status(group, version, owner.namespace, "trials", name,
                                                              {"status": trial["status"]},
                                                              _content_type="application/merge-patch+json")
            except ApiException as exc:
                if exc.status != 409:
                    raise _translate(exc, f"write the Trial {name} of {owner}") from exc
            except HTTPError as exc:
                raise _translate(exc, f"write the Trial {name} of {owner}") from exc

class KubernetesNodes:
    """Implements :class:`functions.core.ports.Nodes` with the core API's node list (a cluster
    scope read: katuna's ClusterRole grants ``list nodes``); the client is made at first use."""

    def __init__(self, connect: Callable[[], client.ApiClient]) -> None:
        self._connect = connect
        self._api: client.CoreV1Api | None = None

    def _core(self) -> client.CoreV1Api:
        if self._api is None:
            try:
                self._api = client.CoreV1Api(self._connect())
            except config.ConfigException as exc:
                raise TemporaryError(f"no Kubernetes API to list nodes: {exc}") from exc
        return self._api

    def list(self, labels: Mapping[str, str]) -> list[NodeSeen]:
        """The nodes carrying every one of ``labels``, page by page."""
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        found: list[NodeSeen] = []
        token = ""
        while True:
            try:
                page: Any = (self._core().list_node(label_selector=selector, limit=LIST_PAGE, _continue=token) if token
                        else self._core().list_node(label_selector=selector, limit=LIST_PAGE))
            except (ApiException, HTTPError) as exc:
                raise _translate(exc, f"list the nodes labelled {selector}") from exc
            found += [NodeSeen(node.metadata.name, node.metadata.creation_timestamp.timestamp())
                      for node in page.items or []]
            token = page.metadata._continue or ""
            if not token:
                return found


def _final_condition(job: Any) -> Any | None:
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition
    return None


def _ran(pod: Any) -> bool:
    """Whether the pod ran its containers to an end of their own (not disrupted), so its log
    holds the attempt's output."""
    return not _disrupted(pod) and any(
        status.state is not None and status.state.terminated is not None
        for status in (pod.status.container_statuses or []))


def _disrupted(pod: Any) -> bool:
    return any(c.type == "DisruptionTarget" and c.status == "True" for c in (pod.status.conditions or []))


def _oldest_first(pod: Any) -> tuple[str, bool, str]:
    """By creation time (whole seconds), a disrupted pod before its replacement created in the
    same second, then by name (real pod names end in random characters)."""
    created = pod.metadata.creation_timestamp
    stamp = created.isoformat() if hasattr(created, "isoformat") else str(created or "")
    return stamp, not _disrupted(pod), pod.metadata.name


def _current_run(pods: list[Any], container: str) -> tuple[float | None, float | None]:
    """When the trial's container in the current pod (the latest one not disrupted) started
    and, if it has, ended (seconds since the epoch); None for a container not started yet."""
    current = next((pod for pod in reversed(pods) if not _disrupted(pod)), None)
    statuses = (current.status.container_statuses or []) if current is not None and current.status else []
    for status in statuses:
        if status.name != container or status.state is None:
            continue
        running, terminated = status.state.running, status.state.terminated
        if running is not None and running.started_at is not None:
            return running.started_at.timestamp(), None
        if terminated is not None and terminated.started_at is not None:
            ended = terminated.finished_at.timestamp() if terminated.finished_at is not None else None
            return terminated.started_at.timestamp(), ended
    return None, None


def _image_id(pods: list[Any], container: str) -> str | None:
    """The trial container's image as the kubelet resolved it (``imageID``: the digest), from
    the latest pod that reports one."""
    for pod in reversed(pods):
        for status in pod.status.container_statuses or []:
            if status.name == container and status.image_id:
                return status.image_id
    return None


def _exit(pods: list[Any]) -> tuple[int | None, str]:
    for pod in reversed(pods):
        for status in pod.status.container_statuses or []:
            terminated = status.state.terminated if status.state else None
            if terminated is not None:
                return terminated.exit_code, f"container exited with code {terminated.exit_code} ({terminated.reason})"
    return None, "no container status"
