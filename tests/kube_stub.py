"""A stateful Kubernetes API on loopback, as strict as a real cluster for every call katuna
makes: Jobs, their pods and logs, study resources and their status, nodes, namespaces and
watches; with RBAC from ``knative/`` and the controllers behind them (tests/kube_standin/).

Objects live in namespaces that exist (``default`` and ``katuna``, plus the ones a test asks
for, where the ``katuna-trials`` ClusterRole is bound to katuna). Pods wait for a node they fit: by default
one static node with ample room, else nodes an autoscaler adds to the pools a provider
reports. Scenarios come from the trial itself (tests/trials/objective.py --mode), from
``preempt_first_pod``/``disrupt``/``exhaust``, and from :meth:`KubeStub.preempt_node`.

Time is the ``clock``'s (:mod:`kube_standin.clock`). On the machine's clock the controllers pass
over the cluster in a background thread; on a simulated clock nothing moves until the driver
calls :meth:`KubeStub.settle` and advances the clock, and the containers should be simulated too
(``kubelets.containers``, :mod:`kube_standin.containers`).
"""

from __future__ import annotations

import copy
import math
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from kube_standin import (
    admission,
    configmaps,
    events,
    katib_api,
    kueue,
    limit_ranges,
    patches,
    pod_validation,
    quota_usage,
    secrets,
)
from kube_standin.api import PLURALS, ApiServer
from kube_standin.autoscaler import Autoscaler
from kube_standin.clock import RealClock, rfc3339
from kube_standin.faults import Faults
from kube_standin.history import Change, History
from kube_standin.jobs import JobController
from kube_standin.kubelet import Kubelets
from kube_standin.logs import Line
from kube_standin.names import label_problems
from kube_standin.nodes import STATIC_ALLOCATABLE, STATIC_NODE, NodePool, node
from kube_standin.objects import AlreadyExists, generated_name, invalid, not_found, snapshot
from kube_standin.operators import JobSetController, Trainer, TrainingOperator
from kube_standin.pipelines import Argo, Tekton
from kube_standin.pod_runs import image_id
from kube_standin.pod_stops import grace_of
from kube_standin.rbac import ANONYMOUS, MANIFESTS, Authorizer, Request, kustomization_objects
from kube_standin.server import KATUNA_USER, KINDS, handler
from kube_standin.sink_bindings import JobBinding
from kube_standin.structural import Refused, admitted
from kube_standin.workloads import Workloads
from kubernetes import client
from standin_server import StandInServer

from functions.adapters.kubernetes_client import api_client

__all__ = ["KubeStub", "NodePool", "Refused", "image_id"]

TICK_SECONDS = 0.02
"""How often the controllers pass over the cluster."""


CONTROLLERS = {"training-operator": (TrainingOperator,), "trainer": (Trainer, JobSetController),
               "jobset": (JobSetController,), "argo": (Argo,), "tekton": (Tekton,), "kueue": (kueue.Kueue,)}
"""The controllers each operator's installation runs."""


def _marks(current: dict, given: dict | None = None, applied: dict | None = None) -> dict:
    """The labels and annotations of a resource (``current``'s metadata), or, with ``given``, as
    ``kubectl apply`` of the metadata ``given`` leaves them (its three-way merge: ``given``'s keys
    set, those of the last apply (``applied``) that ``given`` drops removed, any other key, such
    as one ``kubectl label`` set, kept). A change of them alone is no new generation."""
    marks = {key: dict(current.get(key) or {}) for key in ("labels", "annotations")}
    if given is None:
        return marks
    for key, values in marks.items():
        for dropped in set((applied or {}).get(key) or {}) - set(given.get(key) or {}):
            values.pop(dropped, None)
        values.update(given.get(key) or {})
    return marks


class KubeStub(ApiServer, Workloads):
    """The cluster: its objects, the controllers that move them, and the HTTP server at ``url``."""

    def __init__(self, namespaces: Iterable[str] = (), pools: Callable[[], Iterable[NodePool]] | None = None,
                 boot_seconds: float = 0.5, idle_seconds: float = 2.0, history: int = 10000,
                 resize: Callable[[str, int], None] | None = None, clock: RealClock | None = None,
                 delay_after_add: float | None = None) -> None:
        """``namespaces`` exist besides ``default`` and ``katuna``, ``katuna-trials`` bound in each;
        ``pools`` (a provider of :class:`NodePool`) replaces the static node with an autoscaler
        whose nodes boot in ``boot_seconds`` and go once unneeded for ``idle_seconds`` (empty, or
        under-used with pods that may move), never within ``delay_after_add`` (by default
        ``idle_seconds``) of a scale-up (:mod:`kube_standin.scale_down`), and
        which tells ``resize`` each pool's new node count; ``history`` changes are kept for
        watches; ``clock`` is the machine's unless given."""
        self.clock = clock or RealClock()
        self.lock = threading.RLock()
        self.history = History(self.lock, history, self.clock)
        self.authorizer = Authorizer(kustomization_objects())
        self.kinds = dict(KINDS)
        """What the API serves, by (group, plural); :func:`kube_standin.katib_api.install` adds Katib's."""
        self.namespaces: dict[str, dict] = {}
        self.deployed_labels, self.service_accounts = admission.deployed(MANIFESTS)
        """The labels ``knative/`` gives its namespaces (``katuna``'s Pod Security level), and the
        ServiceAccounts (namespace, name) that exist: those ``knative/`` deploys, each namespace's
        ``default``, and those a test adds (:meth:`add_service_account`)."""
        self.quotas: dict[str, dict[str, int | str]] = {}
        """Each namespace's ResourceQuota, its hard limits (:meth:`set_quota`)."""
        self.limit_ranges: dict[tuple[str, str], dict] = {}
        """LimitRanges by (namespace, name) (:meth:`set_limit_range`)."""
        self.configmaps: dict[tuple[str, str], dict] = {}
        self.secrets: dict[tuple[str, str], dict] = {}
        self.claims: dict[tuple[str, str], dict] = {}
        """PersistentVolumeClaims, each a folder of :attr:`volumes_dir` (:mod:`kube_standin.claims`)."""
        self.volumes_dir = Path(tempfile.mkdtemp(prefix="kube-standin-volumes-"))
        self.jobs: dict[tuple[str, str], dict] = {}
        self.sink_bindings: list[JobBinding] = []
        """Knative's SinkBindings of Jobs by label, whose webhook binds each Job created or
        updated (:mod:`kube_standin.sink_bindings`)."""
        self.faults = Faults()
        """Answers held after their change was made, or refused before it (:mod:`kube_standin.faults`)."""
        self.pods: dict[tuple[str, str], dict] = {}
        self.nodes: dict[str, dict] = {}
        self.unreachable: dict[str, float] = {}
        """Nodes whose VM stopped while their Node stays (a GKE spot VM), by when: the API server
        cannot reach their kubelet."""
        self.logs: dict[tuple[str, str], list[Line]] = {}
        self.lost_logs: set[tuple[str, str]] = set()
        """Pods (namespace, name) whose container's log file is gone from their node (removed by
        hand or by a disk cleanup) while the pod stays: the kubelet cannot open it."""
        self.on_log_read: Callable[[str, dict[str, str]], None] | None = None
        """Called with the pod and query of each read of a pod's log, before the API answers it."""
        self.resources: dict[tuple[str, str, str], dict] = {}
        self.applied: dict[tuple[str, str, str], dict] = {}
        """The labels and annotations each resource was last applied with (kubectl's
        ``last-applied-configuration``)."""
        self.terminating: dict[tuple[str, str], float] = {}
        """Pods deleted while running, by (namespace, name): when their grace period ends."""
        self.gc_seconds = 0.0
        """How long the garbage collector takes to delete what a deleted custom resource owned."""
        self.garbage: list[tuple[float, str, str]] = []
        """(when, namespace, owner uid) of each owner gone whose dependents the collector has yet to delete."""
        self.deleted: list[tuple[str, str, str | None]] = []
        """(namespace, name, propagation policy) of each Job deleted, alone or in a collection."""
        self.audit: list[tuple[str, str, str, str]] = []
        """(verb, resource, namespace, name) of every request to a resource, as the API server's audit log."""
        self.authorized: list[Request] = []
        """Every request to a resource RBAC allowed, as the authorizer saw it (its user, verb, API
        group, resource and subresource): what a walk of a client's calls checks its grants by."""
        self.refused: list[Request] = []
        """Every request to a resource RBAC refused (403), as the authorizer saw it: one a client
        takes as best effort (an Event it could not record) shows here, not in its answers."""
        self.collection_deletes: list[tuple[str, str | None, str | None]] = []
        """(namespace, label selector, propagation policy) of each DeleteCollection of Jobs."""
        self.created: list[str] = []
        self.late_creates: set[str] = set()
        """Names of Jobs (or workloads) whose next create is answered 504 and stored later (:meth:`answer_late`)."""
        self.held_creates: list[tuple[str, dict, str | None]] = []
        """(namespace, object, fieldValidation) of each create answered 504 and not stored yet."""
        self.create_requests: list[tuple[str, str]] = []
        self.created_jobs: dict[str, dict] = {}
        self.status_writes: list[tuple[str, str, dict]] = []
        self.processes: list = []
        self.preempt_first_pod = False
        self.disrupt: Callable[[str, int], float | None] | None = None
        """``(job name, pod index)`` to seconds after which the pod is preempted, or None."""
        self.disrupted: list[tuple[str, int]] = []
        """(Job, pod index) of every pod the ``disrupt`` scenario preempted."""
        self.exhaust: Callable[[str, int], tuple[float, str] | None] | None = None
        """``(job name, pod index)`` to ``(seconds after its container starts, the resource it then
        runs short of: memory or ephemeral-storage)``, or None (:meth:`Kubelets.exhaust`)."""
        self.events: list[dict] = []
        self.similar_events: events.Similar = {}
        """The event recorders' record of similar events, which they combine (:mod:`kube_standin.events`)."""
        """The controllers' Events (:meth:`record_event`): a create they were refused, for one."""
        self.bookmark_seconds = 1.0
        self.pod_index: dict[str, int] = {}
        self.job_controller = JobController(self.clock)
        self.crds: dict = {}
        self.schemas = katib_api.schemas(MANIFESTS / "crds.yaml")
        """The structural schema of each custom resource the API serves, by the stand-in's key."""
        self.warnings: list[str] = []
        """What :meth:`apply` was warned of (``Warn`` field validation)."""
        self.workloads: dict[tuple[str, str, str], dict] = {}
        self.operators: set[str] = set()
        self.operator_controllers: dict[type, object] = {}
        self.kubelets = Kubelets(self._disruption, self.clock)
        self.autoscaler = Autoscaler(pools, boot_seconds, idle_seconds, resize, self.clock, delay_after_add) \
            if pools is not None else None
        for name in ("default", "katuna", *namespaces):
            self.add_namespace(name)
        if pools is None:
            self.add_node(node(STATIC_NODE, {}, (), STATIC_ALLOCATABLE, self.clock.stamp()))
        self._running = True
        self._controllers = threading.Thread(target=self._control_loop, daemon=True)
        if not self.clock.simulated:
            self._controllers.start()
        self.servers = [StandInServer(("127.0.0.1", 0), handler(self, user)) for user in (ANONYMOUS, KATUNA_USER)]
        for server in self.servers:
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        api, proxy = (f"http://127.0.0.1:{server.server_address[1]}" for server in self.servers)
        self.api_url = api
        """The API server itself: a request without a bearer token is ``system:anonymous``'s."""
        self.url = proxy
        """A ``kubectl proxy`` in front of it run with katuna's credentials, what ``KATUNA_K8S_API``
        names: it adds them to a request without a token and passes a request's own token on."""
        self._clients: list[client.ApiClient] = []

    def api_client(self, user: str | None = None) -> client.ApiClient:
        """katuna's client of this API (:func:`functions.adapters.kubernetes_client.api_client`),
        else, with ``user``, a client as that user (:meth:`configuration`); closed as the stand-in
        closes, so that no connection to it is left open to the test process's later tests."""
        made = client.ApiClient(self.configuration(user)) if user else api_client(self.url)
        self._clients.append(made)
        return made

    def close(self) -> None:
        for made in self._clients:
            made.close()
        self._running = False
        if self._controllers.is_alive():
            self._controllers.join(timeout=10)
        self.history.close()
        with self.lock:
            for pod in list(self.pods.values()):
                self.kubelets.stop(pod)
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for server in self.servers:
            server.shutdown()
            server.server_close()
        shutil.rmtree(self.kubelets.logs_dir, ignore_errors=True)
        shutil.rmtree(self.volumes_dir, ignore_errors=True)
        for controller in self.operator_controllers.values():
            if hasattr(controller, "close"):
                controller.close()

    def configuration(self, user: str | None = None) -> client.Configuration:
        """A client's configuration for this API, as ``user`` (its bearer token names it), else
        through the proxy as katuna's ServiceAccount."""
        configuration = client.Configuration()
        configuration.host = self.url
        if user:
            configuration.api_key = {"authorization": user}
            configuration.api_key_prefix = {"authorization": "Bearer"}
        return configuration

    # settings a test may change while the cluster runs

    @property
    def image_pull_seconds(self) -> float:
        return self.kubelets.image_pull_seconds

    @image_pull_seconds.setter
    def image_pull_seconds(self, seconds: float) -> None:
        self.kubelets.image_pull_seconds = seconds

    @property
    def backoff_seconds(self) -> float:
        return self.job_controller.backoff_seconds

    @backoff_seconds.setter
    def backoff_seconds(self, seconds: float) -> None:
        """The Job controller's first back-off before it replaces a failed pod (0: at once)."""
        self.job_controller.backoff_seconds = seconds

    @property
    def pod_gc_seconds(self) -> float | None:
        return self.kubelets.pod_gc_seconds

    @pod_gc_seconds.setter
    def pod_gc_seconds(self, seconds: float | None) -> None:
        """Terminated pods are deleted this long after they end (None: kept, as below the
        real PodGC's threshold)."""
        self.kubelets.pod_gc_seconds = seconds

    # what tests do as a cluster admin (kubectl)

    def add_namespace(self, name: str, grant: bool = True) -> None:
        """Create a namespace; ``grant`` binds the ``katuna-trials`` ClusterRole to katuna there
        (how an operator lets katuna run trials in another namespace)."""
        with self.lock:
            if name not in self.namespaces:
                self.namespaces[name] = {"apiVersion": "v1", "kind": "Namespace", "status": {"phase": "Active"},
                                         "metadata": {"name": name, "uid": str(uuid.uuid4()),
                                                      "creationTimestamp": self.clock.stamp(),
                                                      "labels": dict(self.deployed_labels.get(name, {}))}}
                self.service_accounts.add((name, "default"))
                self.history.record("ADDED", "namespaces", self.namespaces[name])
                if grant and name != "katuna":
                    self.authorizer.grant_in(name)

    def add_service_account(self, namespace: str, name: str) -> None:
        """Create a ServiceAccount (``kubectl create serviceaccount``), which trial pods may name."""
        with self.lock:
            self.service_accounts.add((namespace, name))

    def label_namespace(self, name: str, labels: dict[str, str]) -> None:
        """Set labels on a namespace (``kubectl label namespace``): its Pod Security level, say."""
        with self.lock:
            self.namespaces[name]["metadata"]["labels"].update(labels)

    def set_quota(self, namespace: str, hard: dict[str, int | str]) -> None:
        """Give ``namespace`` a ResourceQuota (its hard ``pods`` and ``count/jobs.batch``, and the
        cpu and memory it tracks, whose every container must ask for them:
        :mod:`kube_standin.admission`); an empty one removes it."""
        with self.lock:
            self.quotas[namespace] = dict(hard)

    def quota_used(self, namespace: str) -> dict[str, str]:
        """The ResourceQuota's ``status.used``: what the pods of ``namespace`` not yet ended count
        of each resource it tracks (:mod:`kube_standin.quota_usage`), and its Jobs."""
        with self.lock:
            hard = self.quotas.get(namespace) or {}
            used = self._pods_usage(namespace)
            used["count/jobs.batch"] = (Decimal(sum(1 for where, _ in self.jobs if where == namespace)), False)
            return {name: quota_usage.shown(*used.get(name, (Decimal(0), False))) for name in hard}

    def _pods_usage(self, namespace: str) -> quota_usage.Usage:
        """What the pods of ``namespace`` that have not ended count towards its quota."""
        return quota_usage.added(quota_usage.pod_usage(pod["spec"]) for (where, _), pod in self.pods.items()
                                 if where == namespace
                                 and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"))

    def set_limit_range(self, namespace: str, name: str, limits: list[dict]) -> None:
        """Give ``namespace`` the LimitRange ``name`` with the items ``limits`` (each with its
        ``type``, ``min``, ``max``, ``default``, ``defaultRequest``, ``maxLimitRequestRatio``:
        :mod:`kube_standin.limit_ranges`); no items removes it."""
        with self.lock:
            if not limits:
                self.limit_ranges.pop((namespace, name), None)
                return
            self.limit_ranges[(namespace, name)] = {
                "apiVersion": "v1", "kind": "LimitRange", "spec": {"limits": limit_ranges.made(limits)},
                "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                             "creationTimestamp": self.clock.stamp()}}

    def add_node(self, obj: dict) -> None:
        with self.lock:
            self.nodes[obj["metadata"]["name"]] = obj
            self.history.record("ADDED", "nodes", obj)

    def remove_node(self, name: str, reason: str = "DeletionByPodGC") -> None:
        """The node goes away (a preemption, a scale-down): its running pods are disrupted with
        ``reason`` and fail; the pod GC removes them. By default its Node object goes with no
        notice to its pods (a spot instance reclaimed with no handler, a pool deleted under
        them): the pod GC marks each ``DisruptionTarget`` (``DeletionByPodGC``, "PodGC: node no
        longer exists", ``gcOrphaned`` in pkg/controller/podgc) and deletes it."""
        with self.lock:
            obj = self.nodes.pop(name, None)
            self.unreachable.pop(name, None)
            if obj is None:
                return
            for pod in [p for p in self.pods.values() if p["spec"].get("nodeName") == name]:
                if pod["status"].get("phase") not in ("Succeeded", "Failed"):
                    self.kubelets.disrupt(self, pod, reason)
            self.history.record("DELETED", "nodes", obj)

    preempt_node = remove_node

    def restart_node(self, name: str) -> None:
        """The node's VM stopped and came back under the same name before its kubelet could tell
        the API (a GKE spot VM preempted, its graceful shutdown cut short, recreated by its
        managed instance group): the kubelet, started again, fails the pods it finds bound there
        that the API says run, having lost their containers (:meth:`~kube_standin.pod_ends.PodEnds.lose`)."""
        with self.lock:
            for pod in [p for p in self.pods.values() if p["spec"].get("nodeName") == name]:
                if pod["status"].get("phase") not in ("Succeeded", "Failed"):
                    self.kubelets.lose(self, pod)

    def preempt_pod(self, namespace: str, name: str, reason: str = "PreemptionByScheduler") -> None:
        with self.lock:
            self.kubelets.disrupt(self, self.pods[(namespace, name)], reason)

    def peak_nodes(self, pool: str | None = None) -> int:
        return self.autoscaler.peak(pool) if self.autoscaler else len(self.nodes)

    @property
    def timeline(self) -> list[tuple[float, dict[str, int]]]:
        """(seconds since start, Ready nodes per pool) at every change of the autoscaled pools."""
        return list(self.autoscaler.timeline) if self.autoscaler else []

    def follow(self, resource: str, version: int, seconds: float, namespace: str | None = None,
               selector: str | None = None) -> Iterator[dict]:
        """Watch events of ``resource`` after ``version`` for ``seconds``, as a watch over HTTP
        streams them (:class:`kube_standin.history.Gone` when ``version`` is too old)."""
        return self.history.follow(version, resource, namespace, selector, self.clock.monotonic() + seconds)

    def changes_since(self, version: int, resource: str | None = None) -> list[Change]:
        """The changes after ``version`` (kept ones; :class:`kube_standin.history.Gone` when older)."""
        with self.lock:
            return self.history.since(version, resource)

    def create_config_map(self, namespace: str, name: str, data: dict) -> dict:
        """Create a ConfigMap as a cluster admin (``kubectl create configmap``), with the API's checks."""
        code, body = configmaps.create(self, namespace, {"metadata": {"name": name}, "data": data})
        if code != 201:
            raise LookupError(body["message"])
        return body

    def create_secret(self, namespace: str, name: str, data: dict[str, str]) -> dict:
        """Create a Secret of ``data`` as a cluster admin (``kubectl create secret generic
        --from-literal``), with the API's checks."""
        code, body = secrets.create(self, namespace, {"metadata": {"name": name}, "stringData": data})
        if code != 201:
            raise LookupError(body["message"])
        return body

    def install_operator(self, operator: str, grant: bool = True) -> None:
        """Install an operator (its CRDs and controllers); ``grant`` enables its component in
        ``knative/trial-kinds/`` (katuna's and the source's ClusterRoles gain its kinds)."""
        self.install(operator)
        if grant:
            with self.lock:
                self.authorizer.enable(MANIFESTS / "trial-kinds" / operator)
                self.service_accounts |= admission.deployed(MANIFESTS / "trial-kinds" / operator)[1]

    # custom resources: tests play kubectl through apply/delete, katuna reads and patches status

    def apply(self, obj: dict, field_validation: str = "Strict") -> dict:
        """Create the resource, or change its spec (a new generation when the spec changes), as
        ``kubectl apply`` does: with its default ``Strict`` field validation against the CRD's
        schema (:func:`kube_standin.structural.admitted`), raising :class:`Refused` with the API's
        400 or 422 where the API refuses the object (labels it would not take included); unknown
        fields pruned otherwise."""
        plural = katib_api.key_of(obj.get("apiVersion", ""), obj["kind"], PLURALS)
        key = (plural, obj["metadata"].get("namespace", "default"), obj["metadata"]["name"])
        with self.lock:
            if key[1] not in self.namespaces:
                raise LookupError(f'namespaces "{key[1]}" not found')
            if plural not in self.schemas:
                raise LookupError("the server could not find the requested resource")
            obj, warnings = admitted(self.schemas[plural], obj, katib_api.qualified(plural), field_validation)
            self.warnings.extend(warnings)
            metadata = obj["metadata"]
            refused = label_problems(metadata.get("labels"), "metadata.labels")
            if refused:
                raise Refused(*invalid(obj["kind"], katib_api.qualified(plural), metadata["name"], refused))
            current = self.resources.get(key)
            if current is None:
                current = self.resources[key] = {
                    "apiVersion": obj["apiVersion"], "kind": obj["kind"], "spec": obj["spec"],
                    "metadata": {**metadata, "namespace": key[1], "uid": str(uuid.uuid4()), "generation": 1,
                                 "creationTimestamp": self.clock.stamp()}}
                self.history.record("ADDED", plural, current)
            elif current["spec"] != obj["spec"] or _marks(current["metadata"], metadata, self.applied.get(key)) \
                    != _marks(current["metadata"]):
                if current["spec"] != obj["spec"]:
                    current["metadata"]["generation"] += 1
                current["spec"] = obj["spec"]
                current["metadata"].update(_marks(current["metadata"], metadata, self.applied.get(key)))
                self.history.record("MODIFIED", plural, current)
            self.applied[key] = _marks(metadata)
            return snapshot(current)

    def delete(self, kind: str, namespace: str, name: str, api_version: str = "katuna.dev/v1",
               cascade: str = "background") -> dict:
        """Delete the resource as ``kubectl delete --cascade=<cascade>`` does: what it owns goes
        by the garbage collector (``background``, ``foreground``) or stays (``orphan``)."""
        plural = katib_api.key_of(api_version, kind, PLURALS)
        code, body = katib_api.delete(self, plural, namespace, name, policy=cascade.capitalize())
        if code != 200:
            raise LookupError(body["message"])
        return body

    def get_resource(self, plural: str, namespace: str, name: str) -> tuple[int, dict]:
        with self.lock:
            obj = self.resources.get((plural, namespace, name))
            return (200, snapshot(obj)) if obj else not_found(katib_api.qualified(plural), name)

    def patch_status(self, plural: str, namespace: str, name: str, patch: object,
                     content_type: str = "application/merge-patch+json", directive: str | None = None,
                     dry_run: bool = False) -> tuple[int, dict]:
        """PATCH of the status subresource of a custom resource (:mod:`kube_standin.patches`):
        the patch (merge, or JSON patch with ``test`` operations) applies to the whole object,
        then only its ``status`` is kept, so ``metadata`` in a merge patch changes nothing. A
        JSON patch that fails (a ``test`` that does not hold, a path that is not there) is
        refused whole with the API's 422, whose message does not say why (its one cause does);
        a ``resourceVersion`` other than the object's is a 409 conflict; a ``dry_run`` is answered
        alike and writes nothing. Each write taken is kept in ``status_writes``."""
        with self.lock:
            code, body = patches.patch(self, plural, katib_api.qualified(plural), namespace, name, patch, content_type,
                                       directive, subresource="status", dry_run=dry_run)
            if code == 200 and not dry_run:
                self.status_writes.append((plural, name, snapshot(body.get("status") or {})))
            return code, body

    @property
    def queued(self) -> bool:
        """Whether Kueue is installed (:meth:`install_kueue`): every Job is created suspended."""
        return "kueue" in self.operators

    def install_kueue(self, versions: tuple[str, ...] = kueue.VERSIONS) -> None:
        """Install Kueue with ``manageJobsWithoutQueueName`` (:mod:`kube_standin.kueue`), its
        Workloads served at ``versions``: every Job is created suspended, and runs once its
        queue admits it (:meth:`admit`)."""
        with self.lock:
            self.crds[(kueue.GROUP, kueue.PLURAL)] = kueue.crd(versions)
            self.operators.add("kueue")

    def admit(self, namespace: str, job: str) -> None:
        """A ClusterQueue admits the Workload Kueue made of the Job (a LookupError before it has
        made one): Kueue then resumes the Job."""
        with self.lock:
            workload = kueue.workload_of(self, self.jobs[(namespace, job)])
            if workload is None:
                raise LookupError(f"Kueue has made no Workload of Job {job} yet")
            kueue.admit(self, workload)

    def set_suspended(self, namespace: str, name: str, suspended: bool) -> None:
        """Suspend or resume a Job (``spec.suspend``), as Kueue patches it when its queue admits
        the Job, or takes its admission back to preempt it; or as anyone may patch it."""
        with self.lock:
            job = self.jobs[(namespace, name)]
            job["spec"]["suspend"] = suspended
            job["metadata"]["generation"] += 1
            self.history.record("MODIFIED", "jobs", job)

    # the controllers' side

    def add_pod(self, pod: dict, index: int) -> dict:
        """Create a pod a controller makes, as the API creates it: refused as its mutating
        admission plugin refuses it, then named by its ``generateName`` where it has no name,
        then refused as invalid for a pod (:class:`admission.Invalid`) or as its validating
        plugins refuse it (:class:`admission.Forbidden`: :mod:`kube_standin.admission`), or (:class:`AlreadyExists`, nothing stored) where a pod
        holds its name, a Terminating one included."""
        metadata = pod["metadata"]
        namespace = metadata["namespace"]
        refused = admission.account_refusal(self.service_accounts, pod)
        if refused is None:
            if not metadata.get("name"):
                metadata["name"] = generated_name(metadata["generateName"], lambda name: (namespace, name) in self.pods)
            ranges = [o["spec"]["limits"] for (where, _), o in sorted(self.limit_ranges.items()) if where == namespace]
            if ranges:
                limit_ranges.default(pod, ranges)
            admission.tolerate_extended_resources(pod)
            problems = pod_validation.create_problems(pod)
            if problems:
                raise admission.Invalid(f'Pod "{metadata["name"]}" is invalid: '
                                        + "; ".join(f"{field}: {message}" for field, message in problems))
            refused = admission.pod_refusal(self.namespaces[namespace], pod, self.quotas.get(namespace),
                                            self._pods_usage(namespace), ranges)
        if refused is not None:
            raise admission.Forbidden(refused)
        if (namespace, metadata["name"]) in self.pods:
            raise AlreadyExists("pods", metadata["name"])
        metadata.update(uid=str(uuid.uuid4()), creationTimestamp=self.clock.stamp())
        self.pods[(namespace, metadata["name"])] = pod
        self.pod_index[pod["metadata"]["uid"]] = index
        self.history.record("ADDED", "pods", pod)
        return pod

    def add_job(self, job: dict) -> dict:
        """Create a Job a controller makes (a JobSet's), as the API creates it: refused
        (:class:`AlreadyExists`, nothing stored) where a Job holds its name."""
        key = (job["metadata"]["namespace"], job["metadata"]["name"])
        if key in self.jobs:
            raise AlreadyExists("jobs.batch", key[1])
        job["metadata"].update(creationTimestamp=self.clock.stamp(), generation=1)
        self.jobs[key] = job
        self.history.record("ADDED", "jobs", job)
        return job

    def keep_completed_jobs(self, job: dict, count: int, numbered_by: str) -> None:
        """``count`` copies of ``job`` (a Job as katuna renders one, its namespace set) as the Job
        controller leaves one that completed, numbered by their name's suffix and the label
        ``numbered_by``: the finished Jobs a ``retain`` study keeps, stored at once."""
        stamp = self.clock.stamp()
        done = {"conditions": [{"type": "Complete", "status": "True", "lastProbeTime": stamp,
                                "lastTransitionTime": stamp}], "succeeded": 1, "startTime": stamp,
                "completionTime": stamp}
        base = job["metadata"]["name"].rpartition("-")[0]
        with self.lock:
            for number in range(count):
                made = {**copy.deepcopy(job), "status": copy.deepcopy(done)}
                made["metadata"].update(name=f"{base}-{number}", uid=str(uuid.uuid4()), creationTimestamp=stamp)
                made["metadata"]["labels"][numbered_by] = str(number)
                self.jobs[(made["metadata"]["namespace"], made["metadata"]["name"])] = made

    def record_event(self, obj: dict, kind: str, reason: str, message: str, component: str = "") -> None:
        """A controller's Event about ``obj``, as its event recorder (``component``'s) writes it:
        one repeated (same object, reason and message) counts up on the first, and similar ones
        (differing by message) are combined past ten (:func:`kube_standin.events.record`)."""
        events.record(self.events, self.similar_events, obj, kind, reason, message, self.clock.stamp(), component)

    def events_of(self, kind: str, name: str) -> list[dict]:
        """The Events recorded about the object ``kind``/``name`` (as ``kubectl describe`` lists them)."""
        with self.lock:
            return [snapshot(e) for e in self.events
                    if (e["involvedObject"]["kind"], e["involvedObject"]["name"]) == (kind, name)]

    def described(self, obj: dict) -> list[dict]:
        """The Events ``kubectl describe`` shows of ``obj``: listed through ``v1`` as it lists
        them (a field selector on the involved object's name, namespace, kind and uid), by katuna's
        account, oldest first as it sorts them (``SortableEvents``: by the ``series``'
        ``lastObservedTime``, else the ``lastTimestamp``, else the ``eventTime``). Events of one
        time are in no set order there: here, in the order listed (by name)."""
        meta = obj["metadata"]
        selector = ",".join(f"involvedObject.{key}={value}" for key, value in (
            ("name", meta["name"]), ("namespace", meta["namespace"]), ("kind", obj["kind"]), ("uid", meta["uid"])))
        api = client.CoreV1Api(client.ApiClient(self.configuration(KATUNA_USER)))
        listed = api.api_client.sanitize_for_serialization(
            api.list_namespaced_event(meta["namespace"], field_selector=selector))["items"]
        return sorted(listed, key=described_time)

    def delete_pod(self, pod: dict) -> None:
        """Delete a pod: one whose containers run stays ``Terminating`` (its ``deletionTimestamp``
        set) while its kubelet stops them, SIGTERM then SIGKILL once its grace period
        (``terminationGracePeriodSeconds``, 30 unless set) is over
        (:meth:`~kube_standin.pod_stops.PodStops.terminate`); it ends as they exited, and goes
        with its log; one with nothing running goes at once. One on a node whose kubelet is
        unreachable stays ``Terminating`` until the kubelet is back, or the node gone. A Job's pod
        deleted by its disruption (:data:`kube_standin.pod_ends.DELETING`) goes once its Job
        controller has seen it end (its tracking finalizer holds it until then)."""
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        pod = self.pods.get(key)
        if pod is None:
            return
        if key not in self.terminating and self.kubelets.stoppable(pod):
            grace = grace_of(pod)
            self.terminating[key] = self.clock.monotonic() + grace
            pod["metadata"].update(deletionTimestamp=rfc3339(self.clock.time() + grace),
                                   deletionGracePeriodSeconds=math.ceil(grace))
            if pod["spec"].get("nodeName") not in self.unreachable:
                self.kubelets.terminate(self, pod, grace)
            self.history.record("MODIFIED", "pods", pod)
            return
        if key in self.terminating and pod["status"].get("phase") not in ("Succeeded", "Failed"):
            return
        if pod["metadata"]["uid"] in self.kubelets.deleting:
            self.terminating.pop(key, None)
            if pod["status"].get("phase") not in ("Succeeded", "Failed"):
                self.kubelets.kill(self, pod)
            return
        self._remove_pod(key)

    def _remove_pod(self, key: tuple[str, str]) -> None:
        pod = self.pods.pop(key, None)
        self.terminating.pop(key, None)
        if pod is not None:
            self.kubelets.stop(pod)
            self.logs.pop(key, None)
            self.lost_logs.discard(key)
            self.history.record("DELETED", "pods", pod)

    def _end_terminating(self) -> None:
        """The API server's side of graceful deletion: a Terminating pod goes once its kubelet
        ended it and its Job controller has seen it end (its tracking finalizer holds it until
        then; one a disruption deleted goes by the pod GC: :meth:`delete_pod`)."""
        for key in list(self.terminating):
            pod = self.pods.get(key)
            if pod is None:
                self.terminating.pop(key, None)
            elif pod["status"].get("phase") in ("Succeeded", "Failed") and pod["metadata"]["uid"] \
                    not in self.kubelets.deleting and self.job_controller.seen(self, pod):
                self._remove_pod(key)

    def modified(self, resource: str, obj: dict) -> None:
        self.history.record("MODIFIED", resource, obj)

    def _disruption(self, job: str, index: int) -> tuple[float, bool, str] | None:
        if self.preempt_first_pod and index == 0:
            return 0.0, False, "PreemptionByScheduler"
        seconds = self.disrupt(job, index) if self.disrupt is not None else None
        if seconds is not None:
            return seconds, True, "PreemptionByScheduler"
        exhausted = self.exhaust(job, index) if self.exhaust is not None else None
        return None if exhausted is None else (exhausted[0], False, exhausted[1])

    def step(self) -> None:
        """One pass of every controller over the cluster: the background thread's on the machine's
        clock, the driver's on a simulated one."""
        pools = self.autoscaler.scan() if self.autoscaler is not None else {}
        with self.lock:
            for operator in sorted(self.operators):
                for controller in CONTROLLERS[operator]:
                    if controller not in self.operator_controllers:
                        self.operator_controllers[controller] = controller()
                    self.operator_controllers[controller].step(self)  # type: ignore[attr-defined]
            katib_api.collect_due(self)
            secrets.collect(self)
            self._end_terminating()
            self.job_controller.step(self)
            self.kubelets.step(self)
            if self.autoscaler is not None:
                self.autoscaler.step(self, pools)

    def settle(self, passes: int = 1000) -> None:
        """Pass over the cluster until a pass changes nothing (a simulated clock's driver does
        this at each moment, before it moves the clock on)."""
        for _ in range(passes):
            version = self.history.version
            self.step()
            if self.history.version == version:
                return
        raise RuntimeError(f"the cluster still changes after {passes} passes")

    def run_until(self, done: Callable[[], object], moments: int = 1000) -> None:
        """On a simulated clock: settle the cluster at each due moment, moving the clock on to the
        next, until ``done`` (an AssertionError when nothing is left to wait for first)."""
        for _ in range(moments):
            self.settle()
            if done():
                return
            assert self.clock.advance(), "nothing left to wait for"
        raise AssertionError(f"not done after {moments} moments")

    def _control_loop(self) -> None:
        while self._running:
            self.step()
            time.sleep(TICK_SECONDS)


def described_time(event: dict) -> datetime:
    """The time ``kubectl describe`` sorts an Event by (``eventTime`` in its ``SortableEvents``)."""
    given = (event.get("series") or {}).get("lastObservedTime") or event.get("lastTimestamp") or event.get("eventTime")
    return datetime.fromisoformat(str(given).replace("Z", "+00:00")) if given else datetime.min.replace(tzinfo=UTC)


def serving_katib(namespace: str, user: str) -> Iterator[KubeStub]:
    """A cluster serving Katib's API, where ``user`` may edit Katib's resources in ``namespace``
    (``katuna-katib-edit``): for a fixture to ``yield from``, which closes it after its tests."""
    cluster = KubeStub(namespaces=(namespace,))
    katib_api.install(cluster)
    katib_api.bind(cluster, user, "katuna-katib-edit", namespace)
    yield cluster
    cluster.close()
