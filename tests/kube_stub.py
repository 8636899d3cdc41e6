"""A stateful Kubernetes API on loopback, as strict as a real cluster for every call katuna
makes: Jobs, their pods and logs, study resources and their status, nodes, namespaces and
watches; with RBAC from ``knative/`` and the controllers behind them (tests/kube_standin/).

Objects live in namespaces that exist (``default`` and ``katuna``, plus the ones a test asks
for, where the manifests' Roles are bound as well). Pods wait for a node they fit: by default
one static node with ample room, else nodes an autoscaler adds to the pools a provider
reports. Scenarios come from the trial itself (tests/trials/objective.py --mode), from
``preempt_first_pod``/``disrupt``, and from :meth:`KubeStub.preempt_node`.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from http.server import ThreadingHTTPServer

from kube_standin.autoscaler import Autoscaler
from kube_standin.history import Change, History
from kube_standin.jobs import JobController, owned_pods
from kube_standin.kubelet import Kubelets, image_id
from kube_standin.nodes import STATIC_ALLOCATABLE, STATIC_NODE, NodePool, node
from kube_standin.objects import DNS_SUBDOMAIN, invalid, matches, merge, not_found, now, snapshot, status
from kube_standin.rbac import Authorizer, kustomization_objects
from kube_standin.server import KINDS, Call, handler

__all__ = ["KubeStub", "NodePool", "image_id"]

TICK_SECONDS = 0.02
"""How often the controllers pass over the cluster."""
PLURALS = {"Study": "studies", "Experiment": "experiments"}


class KubeStub:
    def __init__(self, namespaces: Iterable[str] = (), pools: Callable[[], Iterable[NodePool]] | None = None,
                 boot_seconds: float = 0.5, idle_seconds: float = 2.0, history: int = 1000) -> None:
        """``namespaces`` exist besides ``default`` and ``katuna``, katuna's Role bound in each;
        ``pools`` (a provider of :class:`NodePool`) replaces the static node with an autoscaler
        whose nodes boot in ``boot_seconds`` and go after ``idle_seconds`` without pods;
        ``history`` changes are kept for watches."""
        self.lock = threading.RLock()
        self.history = History(self.lock, history)
        self.authorizer = Authorizer(kustomization_objects())
        self.namespaces: dict[str, dict] = {}
        self.jobs: dict[tuple[str, str], dict] = {}
        self.pods: dict[tuple[str, str], dict] = {}
        self.nodes: dict[str, dict] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.resources: dict[tuple[str, str, str], dict] = {}
        self.deleted: list[tuple[str, str, str | None]] = []
        self.created: list[str] = []
        self.create_requests: list[tuple[str, str]] = []
        self.created_jobs: dict[str, dict] = {}
        self.status_writes: list[tuple[str, str, dict]] = []
        self.processes: list = []
        self.preempt_first_pod = False
        self.disrupt: Callable[[str, int], float | None] | None = None
        """``(job name, pod index)`` to seconds after which the pod is preempted, or None."""
        self.disrupted: list[tuple[str, int]] = []
        """(Job, pod index) of every pod the ``disrupt`` scenario preempted."""
        self.bookmark_seconds = 1.0
        self.pod_index: dict[str, int] = {}
        self.job_controller = JobController()
        self.kubelets = Kubelets(self._disruption)
        self.autoscaler = Autoscaler(pools, boot_seconds, idle_seconds) if pools is not None else None
        for name in ("default", "katuna", *namespaces):
            self.add_namespace(name)
        if pools is None:
            self.add_node(node(STATIC_NODE, {}, (), STATIC_ALLOCATABLE))
        self._running = True
        threading.Thread(target=self._control_loop, daemon=True).start()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._running = False
        self.history.close()
        with self.lock:
            for pod in list(self.pods.values()):
                self.kubelets.stop(pod)
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        self.server.shutdown()

    # settings a test may change while the cluster runs

    @property
    def image_pull_seconds(self) -> float:
        return self.kubelets.image_pull_seconds

    @image_pull_seconds.setter
    def image_pull_seconds(self, seconds: float) -> None:
        self.kubelets.image_pull_seconds = seconds

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
        """Create a namespace; ``grant`` binds the manifests' Roles there too (how an operator
        lets katuna run trials in another namespace)."""
        with self.lock:
            if name not in self.namespaces:
                self.namespaces[name] = {"apiVersion": "v1", "kind": "Namespace", "status": {"phase": "Active"},
                                         "metadata": {"name": name, "uid": str(uuid.uuid4()),
                                                      "creationTimestamp": now()}}
                self.history.record("ADDED", "namespaces", self.namespaces[name])
                if grant and name != "katuna":
                    self.authorizer.grant_in(name)

    def add_node(self, obj: dict) -> None:
        with self.lock:
            self.nodes[obj["metadata"]["name"]] = obj
            self.history.record("ADDED", "nodes", obj)

    def remove_node(self, name: str, reason: str = "TerminationByKubelet") -> None:
        """The node goes away (a preemption, a scale-down): its running pods are disrupted with
        ``reason`` and fail; the pod GC removes them."""
        with self.lock:
            obj = self.nodes.pop(name, None)
            if obj is None:
                return
            for pod in [p for p in self.pods.values() if p["spec"].get("nodeName") == name]:
                if pod["status"].get("phase") not in ("Succeeded", "Failed"):
                    self.kubelets.disrupt(self, pod, reason)
            self.history.record("DELETED", "nodes", obj)

    preempt_node = remove_node

    def preempt_pod(self, namespace: str, name: str, reason: str = "PreemptionByScheduler") -> None:
        with self.lock:
            self.kubelets.disrupt(self, self.pods[(namespace, name)], reason)

    def peak_nodes(self, pool: str | None = None) -> int:
        return self.autoscaler.peak(pool) if self.autoscaler else len(self.nodes)

    @property
    def timeline(self) -> list[tuple[float, dict[str, int]]]:
        """(seconds since start, Ready nodes per pool) at every change of the autoscaled pools."""
        return list(self.autoscaler.timeline) if self.autoscaler else []

    def changes_since(self, version: int, resource: str | None = None) -> list[Change]:
        """The changes after ``version`` (kept ones; :class:`kube_standin.history.Gone` when older)."""
        with self.lock:
            return self.history.since(version, resource)

    # custom resources: tests play kubectl through apply/delete, katuna reads and patches status

    def apply(self, obj: dict) -> dict:
        """Create the resource, or change its spec (a new generation when the spec changes)."""
        plural = PLURALS[obj["kind"]]
        metadata = obj["metadata"]
        key = (plural, metadata.get("namespace", "default"), metadata["name"])
        with self.lock:
            if key[1] not in self.namespaces:
                raise LookupError(f'namespaces "{key[1]}" not found')
            current = self.resources.get(key)
            if current is None:
                current = self.resources[key] = {
                    "apiVersion": obj["apiVersion"], "kind": obj["kind"], "spec": obj["spec"],
                    "metadata": {**metadata, "namespace": key[1], "uid": str(uuid.uuid4()), "generation": 1,
                                 "creationTimestamp": now()}}
                self.history.record("ADDED", plural, current)
            elif current["spec"] != obj["spec"]:
                current["spec"] = obj["spec"]
                current["metadata"]["generation"] += 1
                self.history.record("MODIFIED", plural, current)
            return snapshot(current)

    def delete(self, kind: str, namespace: str, name: str) -> dict:
        plural = PLURALS[kind]
        with self.lock:
            obj = self.resources.pop((plural, namespace, name))
            self.history.record("DELETED", plural, obj)
            return obj

    def get_resource(self, plural: str, namespace: str, name: str) -> tuple[int, dict]:
        with self.lock:
            obj = self.resources.get((plural, namespace, name))
            return (200, snapshot(obj)) if obj else not_found(f"{plural}.katuna.dev", name)

    def patch_status(self, plural: str, namespace: str, name: str, patch: dict) -> tuple[int, dict]:
        """Only ``status`` changes; a uid in the patch that is not the object's is refused."""
        with self.lock:
            obj = self.resources.get((plural, namespace, name))
            if obj is None:
                return not_found(f"{plural}.katuna.dev", name)
            uid = (patch.get("metadata") or {}).get("uid")
            if uid is not None and uid != obj["metadata"]["uid"]:
                return 422, status(422, "Invalid", f"metadata.uid: Invalid value: {uid!r}: field is immutable")
            merge(obj.setdefault("status", {}), patch.get("status") or {})
            self.history.record("MODIFIED", plural, obj)
            self.status_writes.append((plural, name, snapshot(obj["status"])))
            return 200, snapshot(obj)

    # what katuna calls, through the HTTP API

    def serve(self, call: Call) -> tuple[int, dict | str]:
        """Answer a non-watch request (already authorized)."""
        if call.resource == "jobs" and call.method == "POST":
            return self.create_job(call.namespace or "", call.body or {})
        if call.resource == "jobs" and call.method == "DELETE":
            options = call.body or {}
            return self.delete_job(call.namespace or "", call.name or "",
                                   options.get("propagationPolicy") or call.query.get("propagationPolicy"))
        if call.subresource == "log" and call.method == "GET":
            return self.read_log(call.namespace or "", call.name or "", call.query.get("container"))
        if call.subresource == "status" and call.method == "PATCH":
            if call.content_type != "application/merge-patch+json":
                return 415, status(415, "UnsupportedMediaType", "the body of the request was in an unknown format "
                                                                 "- accepted media types include: "
                                                                 "application/merge-patch+json")
            return self.patch_status(call.resource, call.namespace or "", call.name or "", call.body or {})
        if call.method == "GET" and not call.subresource:
            return self.read(call.resource, call.namespace, call.name, call.query.get("labelSelector"),
                             call.query.get("limit"), call.query.get("continue"))
        return 405, status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _table(self, resource: str) -> dict:
        return {"jobs": self.jobs, "pods": self.pods, "nodes": self.nodes, "namespaces": self.namespaces}[resource]

    def _objects(self, resource: str, namespace: str | None) -> list[dict]:
        if resource in PLURALS.values():
            return [o for (plural, ns, _), o in self.resources.items() if plural == resource and namespace in (None, ns)]
        return [o for o in self._table(resource).values() if namespace in (None, o["metadata"].get("namespace"))]

    def read(self, resource: str, namespace: str | None, name: str | None, selector: str | None,
             limit: str | None = None, token: str | None = None) -> tuple[int, dict]:
        """One object (404 when it is not there), or a list by namespace and name carrying the
        current resourceVersion, ``limit`` at a time with a ``continue`` token for the rest."""
        kind = KINDS[("katuna.dev" if resource in PLURALS.values() else "batch" if resource == "jobs" else "",
                      resource)]
        with self.lock:
            if name:
                found = [o for o in self._objects(resource, namespace) if o["metadata"]["name"] == name]
                group = kind.api_version.rpartition("/")[0]
                return (200, snapshot(found[0])) if found else not_found(f"{resource}.{group}".rstrip("."), name)
            items = sorted((o for o in self._objects(resource, namespace)
                            if matches(o["metadata"].get("labels") or {}, selector)), key=_key)
            metadata = {"resourceVersion": str(self.history.version)}
            if token:
                after = _continue_from(token)
                if after is None:
                    return 400, status(400, "BadRequest", "continue key is not valid: incorrect encoded start "
                                                          "resourceVersion (version meta.k8s.io/v1)")
                items = [o for o in items if _key(o) > after]
            if limit and 0 < int(limit) < len(items):
                items = items[:int(limit)]
                metadata["continue"] = _continue_token(_key(items[-1]), self.history.version)
            return 200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": metadata,
                         "items": [snapshot(o) for o in items]}

    def get_jobs(self, namespace: str, name: str | None, selector: str | None) -> tuple[int, dict]:
        return self.read("jobs", namespace, name, selector)

    def get_pods(self, namespace: str, name: str | None, log: bool, selector: str | None,
                 container: str | None = None) -> tuple[int, dict | str]:
        return self.read_log(namespace, name or "", container) if log else self.read("pods", namespace, name, selector)

    def watch(self, call: Call, until: float, bookmarks: float | None) -> Iterator[dict]:
        """Watch events of ``call``'s resource: ADDED for what exists when no version is given,
        then every change after the version, in order."""
        selector = call.query.get("labelSelector")
        version = call.query.get("resourceVersion") or "0"
        with self.lock:
            if version == "0":
                start = self.history.version
                current = [{"type": "ADDED", "object": snapshot(o)} for o in self._objects(call.resource, call.namespace)
                           if matches(o["metadata"].get("labels") or {}, selector)]
            else:
                start, current = int(version), []
                self.history.since(start)
        yield from current
        yield from self.history.follow(start, call.resource, call.namespace, selector, until, bookmarks)

    def read_log(self, namespace: str, name: str, container: str | None) -> tuple[int, dict | str]:
        """A pod's log: as the API server, a log names one of the pod's containers (400 otherwise),
        a pod not yet bound or a container not yet started has none (400), a pod that is gone
        has none (404)."""
        with self.lock:
            pod = self.pods.get((namespace, name))
            if pod is None:
                return not_found("pods", name)
            names = [c["name"] for c in pod["spec"]["containers"]]
            if container is not None and container not in names:
                return 400, status(400, "BadRequest", f"container {container} is not valid for pod {name}")
            if container is None and len(names) > 1:
                return 400, status(400, "BadRequest", f"a container name must be specified for pod {name}, "
                                                      f"choose one of: [{' '.join(names)}]")
            container = container or names[0]
            if not pod["spec"].get("nodeName"):
                return 400, status(400, "BadRequest", f"pod {name} does not have a host assigned")
            state = next((s["state"] for s in pod["status"].get("containerStatuses", []) if s["name"] == container),
                         {"waiting": {"reason": "ContainerCreating"}})
            if "waiting" in state:
                return 400, status(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: '
                                                      f'{state["waiting"]["reason"]}')
            return 200, self.logs.get((namespace, name)) or self.kubelets.log_of(pod)

    def create_job(self, namespace: str, job: dict) -> tuple[int, dict]:
        name = job.get("metadata", {}).get("name", "")
        with self.lock:
            self.create_requests.append((namespace, name))
            if namespace not in self.namespaces:
                return not_found("namespaces", namespace)
            problems = _job_problems(job)
            if problems:
                return invalid("Job", "jobs.batch", name, problems)
            if (namespace, name) in self.jobs:
                return 409, status(409, "AlreadyExists", f'jobs.batch "{name}" already exists',
                                   {"name": name, "group": "batch", "kind": "jobs"})
            job = snapshot(job)
            job["status"] = {}
            job["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=now(), namespace=namespace, generation=1)
            self.jobs[(namespace, name)] = job
            self.created.append(name)
            self.created_jobs[name] = job
            self.history.record("ADDED", "jobs", job)
            return 201, snapshot(job)

    def delete_job(self, namespace: str, name: str, policy: str | None) -> tuple[int, dict]:
        """Delete a Job; its pods go with ``Background``/``Foreground`` and stay (orphaned) with
        the default ``Orphan`` of ``batch/v1`` Jobs."""
        with self.lock:
            self.deleted.append((namespace, name, policy))
            return self.remove_job(namespace, name, policy)

    def remove_job(self, namespace: str, name: str, policy: str | None) -> tuple[int, dict]:
        with self.lock:
            job = self.jobs.pop((namespace, name), None)
            if job is None:
                return not_found("jobs.batch", name)
            for pod in owned_pods(self, job):
                if policy in ("Background", "Foreground"):
                    self.delete_pod(pod)
                else:
                    pod["metadata"]["ownerReferences"] = []
                    self.history.record("MODIFIED", "pods", pod)
            self.history.record("DELETED", "jobs", job)
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": {"name": name, "group": "batch", "kind": "jobs", "uid": job["metadata"]["uid"]}}

    # the controllers' side

    def add_pod(self, pod: dict, index: int) -> dict:
        pod["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=now())
        self.pods[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = pod
        self.pod_index[pod["metadata"]["uid"]] = index
        self.history.record("ADDED", "pods", pod)
        return pod

    def delete_pod(self, pod: dict) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if self.pods.pop(key, None) is not None:
            self.kubelets.stop(pod)
            self.logs.pop(key, None)
            self.history.record("DELETED", "pods", pod)

    def modified(self, resource: str, obj: dict) -> None:
        self.history.record("MODIFIED", resource, obj)

    def _disruption(self, job: str, index: int) -> tuple[float, bool] | None:
        if self.preempt_first_pod and index == 0:
            return 0.0, False
        seconds = self.disrupt(job, index) if self.disrupt is not None else None
        return None if seconds is None else (seconds, True)

    def _control_loop(self) -> None:
        while self._running:
            with self.lock:
                self.job_controller.step(self)
                self.kubelets.step(self)
                if self.autoscaler is not None:
                    self.autoscaler.step(self)
            time.sleep(TICK_SECONDS)


def _key(obj: dict) -> tuple[str, str]:
    """Where an object sits in the store's order: by namespace, then name."""
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _continue_token(after: tuple[str, str], version: int) -> str:
    """An opaque token for the rest of a list, as the API server's (base64 of JSON)."""
    return base64.urlsafe_b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": version,
                                                "start": "/".join(after)}).encode()).decode()


def _continue_from(token: str) -> tuple[str, str] | None:
    try:
        start = json.loads(base64.urlsafe_b64decode(token.encode()))["start"]
    except (ValueError, KeyError, TypeError):
        return None
    namespace, _, name = start.partition("/")
    return namespace, name


def _job_problems(job: dict) -> list[tuple[str, str]]:
    """What the API server's Job validation refuses, of what katuna could send wrong."""
    problems = []
    name = job.get("metadata", {}).get("name", "")
    if not DNS_SUBDOMAIN.match(name or ""):
        problems.append(("metadata.name", f"Invalid value: {json.dumps(name)}: a lowercase RFC 1123 subdomain must "
                                          "consist of lower case alphanumeric characters, '-' or '.'"))
    elif len(name) > 63:
        problems.append(("metadata.name", f"Invalid value: {json.dumps(name)}: must be no more than 63 characters"))
    pod = (job.get("spec", {}).get("template") or {}).get("spec") or {}
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append(("spec.template.spec.restartPolicy", f"Unsupported value: {json.dumps(pod.get('restartPolicy'))}"
                                                              ': supported values: "OnFailure", "Never"'))
    if not pod.get("containers"):
        problems.append(("spec.template.spec.containers", "Required value"))
    if job.get("metadata", {}).get("resourceVersion"):
        problems.append(("metadata.resourceVersion", "resourceVersion should not be set on objects to be created"))
    return problems
