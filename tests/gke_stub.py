"""A small stateful GKE API (container v1, REST) on loopback: the node-pool and operation
endpoints katuna uses, as strict as GKE on the fields katuna sends.

Operations run on the stand-in's own clock, not on polls: a create takes
``seconds["CREATE_NODE_POOL"]`` of stand-in time (configurable), and stand-in time moves by
:meth:`GkeStub.advance` and, if ``speed`` is set, by the ``clock``'s time times ``speed`` (the
machine's by default; a :class:`kube_standin.clock.SimulatedClock` is told when each operation
is due). While one
operation runs, any other change to the cluster is refused with 400 ``FAILED_PRECONDITION``, as
GKE does; :meth:`GkeStub.update_master` holds the cluster for a while as GKE's own control-plane
upgrades and cluster updates do, refused in one of the wordings GKE uses for them
(:data:`BUSY`). A resize (``setSize``) takes ``seconds["SET_NODE_POOL_SIZE"]``, the pool
``RECONCILING`` meanwhile: the autoscaler's view (:meth:`GkeStub.pool_bounds`) says to how many
nodes, and the simulated cluster drains and removes the nodes above it
(:mod:`kube_standin.resizes`). Requests GKE would refuse (a pool name it does not accept, autoscaling limits out of
order or both per-zone and pool-wide, an unknown machine type, spot and preemptible together,
resource labels GCE refuses, GPUs on a machine type that cannot carry them, an initial node
count above the maximum, a node service account that is no service account's email, a workload
metadata mode GKE does not know, or ``GKE_METADATA`` on a cluster without Workload Identity:
``workload_identity=False``) get 400
``INVALID_ARGUMENT``; a duplicate create 409 ``ALREADY_EXISTS``; a missing pool 404 ``NOT_FOUND``.

The stand-in holds the clusters a test adds (:meth:`GkeStub.add_cluster`: project, location and
name), each with its own pools; a request naming any other cluster (a typo, a zone given for a
regional cluster's region) gets GKE's 404 ``Not found: projects/P/locations/L/clusters/C.``
:attr:`GkeStub.pools` and the autoscaler's view are those of the first cluster added.

Tests can fail the next operation with a message (``fail_next``: its pool is left ``ERROR``
with that ``statusMessage``, as GKE says why a pool is in error), refuse the next request
(``refuse_next``; of one method only with ``refuse_method``; with an ``ErrorInfo`` reason if given, as GKE's 403
``CONCURRENT_OPERATIONS_QUOTA_EXCEEDED`` and 429 ``RATE_LIMIT_EXCEEDED`` carry one) or every poll
of an operation (``refused_operations``) or the next polls (``refused_polls``), carry out the next request of a method but lose its
answer (``lose_next_answer``: the connection closes unanswered, as a reset or a timeout leaves
the caller), and demand OAuth tokens (``tokens``: a request without
one of them is refused 401 ``UNAUTHENTICATED``); every request is recorded. Node pools get the
cluster's zones as their ``locations`` (three for a region), which per-zone autoscaling limits
count in each of. The same API is served over gRPC by :mod:`gke_stub_grpc`. :meth:`pool_bounds`,
:meth:`node_count` and :meth:`set_node_count` are what a simulated cluster autoscaler reads and does.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from kube_standin.clock import RealClock

CLUSTER = r"/v1/projects/([^/]+)/locations/([^/]+)/clusters/([^/]+)"
POOLS = re.compile(CLUSTER + r"/nodePools$")
POOL = re.compile(CLUSTER + r"/nodePools/([^/:]+)(:setAutoscaling|:setSize)?$")
OPERATION = re.compile(r"/v1/projects/([^/]+)/locations/([^/]+)/operations/([^/]+)$")
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS",
          429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
POOL_NAME = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
SERIES = "a2|a3|a4|a4x|c2|c2d|c3|c3d|c4|c4a|c4d|e2|g2|g4|h3|h4d|m1|m2|m3|m4|n1|n2|n2d|n4|n4a|n4d|t2a|t2d|x4|z3"
MACHINE_TYPE = re.compile(rf"f1-micro|g1-small|(?:(?:e2|n1|n2|n2d|n4|n4d)-)?custom-\d+-\d+(?:-ext)?"
                          rf"|(?:{SERIES})-(?:micro|small|medium)"
                          rf"|(?:{SERIES})-(?:standard|highmem|highcpu|highgpu|megagpu|ultragpu|edgegpu|megamem|ultramem|"
                          rf"hypermem)-\d+g?(?:-lssd|-highlssd|-standardlssd|-metal)?")
"""Compute Engine's machine types: predefined ones of its series (GPU types counting GPUs,
``a3-highgpu-8g``; Local SSD and bare-metal variants), shared-core ones (``e2-medium``,
``f1-micro``), and custom ones (``e2-custom-4-8192``, ``n2-custom-8-16384-ext``;
``custom-2-7680`` is N1's). A predefined type of a family in :data:`SIZES` must be one of its sizes."""
SIZES = {family: frozenset(sizes.split()) for family, sizes in {
    "e2-standard": "2 4 8 16 32", "e2-highmem": "2 4 8 16", "e2-highcpu": "2 4 8 16 32",
    "n1-standard": "1 2 4 8 16 32 64 96", "n1-highmem": "2 4 8 16 32 64 96", "n1-highcpu": "2 4 8 16 32 64 96",
    "n2-standard": "2 4 8 16 32 48 64 80 96 128", "n2-highmem": "2 4 8 16 32 48 64 80 96 128",
    "n2-highcpu": "2 4 8 16 32 48 64 80 96", "n2d-standard": "2 4 8 16 32 48 64 80 96 128 224",
    "n2d-highmem": "2 4 8 16 32 48 64 80 96", "n2d-highcpu": "2 4 8 16 32 48 64 80 96 128 224",
    "c2-standard": "4 8 16 30 60", "t2d-standard": "1 2 4 8 16 32 48 60", "g2-standard": "4 8 12 16 24 32 48 96",
    "a2-highgpu": "1g 2g 4g 8g", "a2-megagpu": "16g", "a2-ultragpu": "1g 2g 4g 8g",
    "a3-highgpu": "1g 2g 4g 8g", "a3-megagpu": "8g", "a3-edgegpu": "8g", "a3-ultragpu": "8g", "a4-highgpu": "8g",
}.items()}
"""The predefined sizes (vCPUs, or GPUs) of the families whose lists are Compute Engine's
documented ones (its machine-family pages); ``e2-standard-3`` is no machine type. Families not
listed are held to the shape of a name only."""
PREDEFINED = re.compile(r"([a-z0-9]+-[a-z]+)-(\d+g?)(-[a-z]+)?")
RESERVED_LABELS = re.compile(r"(^|\.)(kubernetes\.io|k8s\.io)$")
GKE_LABELS = re.compile(r"(^|\.)cloud\.google\.com$")
"""Node-label prefixes GKE refuses: Kubernetes' own namespaces and its own."""
K8S_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
K8S_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_CHARACTERS = 1024
"""``NodeConfig.labels``: "supports up to 1,024 total characters in a single request"."""
MIN_DISK_GB = 10
"""``NodeConfig.disk_size_gb``: "The smallest allowed disk size is 10GB"."""
GCE_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
GCE_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
N1_GPUS = {"nvidia-tesla-t4", "nvidia-tesla-v100", "nvidia-tesla-p100", "nvidia-tesla-p4"}
GPU_FAMILIES = {"g2-standard": "nvidia-l4", "a2-highgpu": "nvidia-tesla-a100", "a2-megagpu": "nvidia-tesla-a100",
                "a2-ultragpu": "nvidia-a100-80gb", "a3-highgpu": "nvidia-h100-80gb", "a3-edgegpu": "nvidia-h100-80gb",
                "a3-megagpu": "nvidia-h100-mega-80gb", "a3-ultragpu": "nvidia-h200-141gb", "a4-highgpu": "nvidia-b200"}
SERVICE_ACCOUNT = re.compile(r"default|[a-z0-9][a-z0-9-]{0,62}@[a-z0-9][a-z0-9.:-]*\.gserviceaccount\.com")
"""A node pool's ``service_account``: ``default`` or a service account's email."""
METADATA_MODES = {"MODE_UNSPECIFIED": 0, "GCE_METADATA": 1, "GKE_METADATA": 2, 0: 0, 1: 1, 2: 2}
"""``WorkloadMetadataConfig.Mode`` by name, and by number (the REST client sends enums as numbers)."""
TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "PREFER_NO_SCHEDULE": "PreferNoSchedule", "NO_EXECUTE": "NoExecute",
                 1: "NoSchedule", 2: "PreferNoSchedule", 3: "NoExecute"}
DOING = {"CREATE_NODE_POOL": "creating a node pool for cluster", "DELETE_NODE_POOL": "deleting a node pool for cluster",
         "UPDATE_CLUSTER": "updating cluster", "UPGRADE_MASTER": "upgrading cluster",
         "SET_NODE_POOL_SIZE": "setting the size of a node pool for cluster"}
"""What an operation is doing, in GKE's words for a busy cluster (``... is currently upgrading
cluster C.``, hashicorp/terraform-provider-google#3650; ``... creating a node pool for cluster C.``)."""
DEFAULT_SECONDS = {"CREATE_NODE_POOL": 90.0, "DELETE_NODE_POOL": 60.0, "UPDATE_CLUSTER": 10.0,
                   "SET_NODE_POOL_SIZE": 60.0}
"""Stand-in seconds each kind of operation takes; a resize drains the nodes it removes (their
pods' grace period) and deletes their VMs within it."""
MAX_NODES_PER_ZONE = 1000
"""GKE's documented limit of nodes per node pool zone (its quotas and limits page)."""
BUSY = {
    "operation": "Operation {number} is currently {doing} {cluster}. Please wait and try again once it is done.",
    "incompatible": "Cluster is running incompatible operation {number}.",
    "master": "Master is being updated.",
    "cluster": "Cluster is being updated.",
    "not-ready": "Cluster is not ready for operation.",
}
"""How GKE refuses a change while the cluster is held by another operation: the first is the
node-pool operations' own, seen as 400 ``failedPrecondition`` (hashicorp/terraform-provider-google
#3650, #10366); the others are the 400s Google's terraform-google-kubernetes-engine module retries
(``RetryableTransientErrors``) during control-plane upgrades and cluster updates, whose status is
not published: they get ``FAILED_PRECONDITION`` too, the code Google's Terraform provider retries
node-pool changes on as "an incompatible operation already running on the cluster"."""
UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                   "or other valid authentication credential.")
ZONES = ("a", "b", "c")
Key = tuple[str, str, str]
"""A cluster: its project, location and name."""


class Refused(Exception):
    """A request GKE answers with an error."""

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.answer = GkeStub.error(code, message, status)


def _key(match: re.Match) -> Key:
    """The cluster a request's path names."""
    return match[1], match[2], match[3]


def zones(location: str) -> list[str]:
    """The zones of a cluster's location: a zone itself, or three of a region's."""
    return [location] if re.search(r"-[a-z]$", location) else [f"{location}-{zone}" for zone in ZONES]


class PoolBounds(NamedTuple):
    """What a cluster autoscaler reads of a pool: its limits and what its nodes would carry, and
    whether GKE is changing it (``RECONCILING``): then to how many nodes, if it is resizing it."""

    min_nodes: int
    max_nodes: int
    labels: dict[str, str]
    taints: list[dict[str, str]]
    reconciling: bool = False
    resizing: int | None = None


class GkeStub:
    def __init__(self, seconds: Mapping[str, float] | None = None, speed: float = 0.0,
                 clock: RealClock | None = None, workload_identity: bool = True) -> None:
        self.workload_identity = workload_identity
        """Whether the cluster has Workload Identity (a workload pool): GKE_METADATA needs it."""
        self.clusters: dict[Key, dict[str, dict]] = {}
        """Each cluster's node pools by name; a cluster by its project, location and name."""
        self.operations: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.seconds = {**DEFAULT_SECONDS, **(seconds or {})}
        self.speed = speed
        self.fail_next: str | None = None
        self.refuse_next: tuple[int, str] | tuple[int, str, str] | tuple[int, str, str, str] | None = None
        self.refuse_method: str | None = None
        """The method (``POST``, ``GET``) whose next request ``refuse_next`` refuses; None: any."""
        self.lose_next_answer: str | None = None
        """The method (``POST``, ``DELETE``) of the next request carried out whose answer is lost."""
        self.refused_operations: dict[str, tuple[int, str]] = {}
        self.refused_polls: list[tuple[int, str]] = []
        """The next polls of any operation refused, one refusal each, in order (a read quota hit)."""
        """Operations whose every poll is refused (say 403, once the caller lost the right to read them)."""
        self.tokens: set[str] | None = None
        """OAuth access tokens the API takes (``Authorization: Bearer``); None takes any request."""
        self.lock = threading.RLock()
        self.clock = clock or RealClock()
        self._offset = 0.0
        self._started = self.clock.monotonic()
        self._nodes: dict[tuple[Key, str], int] = {}
        self._sizes: dict[tuple[Key, str], int] = {}
        """The node count each resize (``setSize``) under way takes its pool to."""
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                code, answer = stub.answer(method, self.path.split("?")[0], body, self.headers.get("Authorization"))
                if stub.answer_lost(method):
                    self.close_connection = True
                    return
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def do_DELETE(self) -> None:
                self._answer("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_cluster(self, project: str, location: str, name: str) -> dict[str, dict]:
        """Hold a cluster (with no pools yet): only the clusters added are served. Its pools."""
        with self.lock:
            return self.clusters.setdefault((project, location, name), {})

    @property
    def main(self) -> Key:
        """The first cluster added: the one :attr:`pools` and the autoscaler's view speak of."""
        if not self.clusters:
            raise LookupError("the stand-in holds no cluster: add_cluster first")
        return next(iter(self.clusters))

    @property
    def pools(self) -> dict[str, dict]:
        """The node pools of the first cluster added, by name."""
        return self.clusters[self.main]

    def answer(self, method: str, path: str, body: dict | None, authorization: str | None) -> tuple[int, dict]:
        """One request, recorded, from either transport: the status code and the JSON answer."""
        with self.lock:
            self.requests.append((method, path, body))
            if self.tokens is not None and authorization not in {f"Bearer {token}" for token in self.tokens}:
                return self.error(401, UNAUTHENTICATED)
            return self.route(method, path, body)

    def answer_lost(self, method: str) -> bool:
        """Whether the answer to this request, carried out, is lost (``lose_next_answer``)."""
        with self.lock:
            if self.lose_next_answer != method:
                return False
            self.lose_next_answer = None
            return True

    # the stand-in's clock

    def now(self) -> float:
        """Stand-in seconds since it started."""
        return self._offset + (self.clock.monotonic() - self._started) * self.speed

    def advance(self, seconds: float) -> None:
        """Move the stand-in's clock on; operations due by then finish."""
        with self.lock:
            self._offset += seconds
            self._settle()

    def update_master(self, seconds: float, busy: str = "master", cluster: Key | None = None) -> str:
        """Start a control-plane upgrade of the cluster (the first added by default), as GKE does
        on its own schedule: for ``seconds`` of stand-in time every change to it is refused in the
        :data:`BUSY` wording named. The operation's number."""
        with self.lock:
            project, location, name = key = cluster or self.main
            number = f"operation-{len(self.operations) + 1}"
            self.operations[number] = {
                "name": number, "operationType": "UPGRADE_MASTER", "status": "RUNNING", "pool": None,
                "cluster": key, "due": self.now() + seconds, "error": None, "on_done": "RUNNING", "busy": busy,
                "selfLink": f"projects/{project}/locations/{location}/operations/{number}"}
            return number

    # what a cluster autoscaler sees and does

    def pool_bounds(self, name: str) -> PoolBounds | None:
        """A running or reconciling pool's autoscaling limits (pool-wide; per-zone ones count in
        each of its zones), and the labels and taints its nodes get; None while it is absent,
        being created or being deleted. A reconciling pool says so, and the node count a resize
        under way takes it to (in all its zones)."""
        with self.lock:
            self._settle()
            pool = self.pools.get(name)
            if pool is None or pool["status"] not in ("RUNNING", "RECONCILING"):
                return None
            scaling, config = pool.get("autoscaling") or {}, pool.get("config") or {}
            if not scaling.get("enabled"):
                fixed = self._nodes.get((self.main, name), int(pool.get("initialNodeCount", 0)))
                low, high = fixed, fixed
            elif scaling.get("totalMaxNodeCount"):
                low, high = int(scaling.get("totalMinNodeCount", 0)), int(scaling["totalMaxNodeCount"])
            else:
                count = len(pool.get("locations") or [None])
                low, high = int(scaling.get("minNodeCount", 0)) * count, int(scaling.get("maxNodeCount", 0)) * count
            labels = {**config.get("labels", {}), "cloud.google.com/gke-nodepool": name}
            if config.get("spot"):
                labels["cloud.google.com/gke-spot"] = "true"
            if config.get("preemptible"):
                labels["cloud.google.com/gke-preemptible"] = "true"
            taints = [{"key": t["key"], "value": t.get("value", ""), "effect": TAINT_EFFECTS[t["effect"]]}
                      for t in config.get("taints", [])]
            size = self._sizes.get((self.main, name))
            resizing = None if size is None else size * len(pool.get("locations") or [None])
            return PoolBounds(low, high, labels, taints, pool["status"] == "RECONCILING", resizing)

    def node_count(self, name: str) -> int:
        """How many nodes the pool has now."""
        with self.lock:
            pool = self.pools.get(name, {})
            return self._nodes.get((self.main, name), int(pool.get("initialNodeCount", 0)))

    def set_node_count(self, name: str, nodes: int) -> None:
        """Resize a running pool within its limits, as the cluster autoscaler does."""
        bounds = self.pool_bounds(name)
        if bounds is None or not bounds.min_nodes <= nodes <= bounds.max_nodes:
            raise ValueError(f"pool {name} cannot have {nodes} nodes: {bounds}")
        with self.lock:
            self._nodes[(self.main, name)] = nodes

    # requests

    def calls(self, method: str | None = None, suffix: str = "") -> list[tuple[str, str, dict | None]]:
        """Recorded requests, of one method and path ending, without the operation polls."""
        return [r for r in self.requests if (method is None or r[0] == method) and r[1].endswith(suffix)
                and "/operations/" not in r[1]]

    @staticmethod
    def error(code: int, message: str, status: str | None = None, reason: str | None = None) -> tuple[int, dict]:
        """GKE's JSON error: code, message, canonical status, and the ``ErrorInfo`` reason if any."""
        error: dict[str, Any] = {"code": code, "message": message, "status": status or STATUS.get(code, "UNKNOWN")}
        if reason is not None:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                                 "domain": "googleapis.com", "metadata": {"service": "container.googleapis.com"}}]
        return code, {"error": error}

    def route(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        self._settle()
        if self.refuse_next is not None and "/operations/" not in path and self.refuse_method in (None, method):
            refusal, self.refuse_next, self.refuse_method = self.refuse_next, None, None
            return self.error(*refusal)
        if self.refused_polls and "/operations/" in path:
            return self.error(*self.refused_polls.pop(0))
        refused_poll = self.refused_operations.get(path.rpartition("/operations/")[2])
        if refused_poll is not None and "/operations/" in path:
            return self.error(*refused_poll)
        try:
            return self._route(method, path, body or {})
        except Refused as refused:
            return refused.answer

    def _cluster(self, match: re.Match) -> dict[str, dict]:
        """The pools of the cluster a request names; GKE's 404 for a cluster it does not hold."""
        pools = self.clusters.get((match[1], match[2], match[3]))
        if pools is None:
            raise Refused(404, f"Not found: projects/{match[1]}/locations/{match[2]}/clusters/{match[3]}.")
        return pools

    def _route(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        if (match := POOLS.match(path)) and method == "POST":
            pools = self._cluster(match)
            pool = body.get("nodePool", {})
            check_pool(pool, self.workload_identity, (pool.get("locations") or zones(match[2]))[0])
            if pool["name"] in pools:
                return self.error(409, f"Already exists: {path}/{pool['name']}.")
            self._idle(match)
            pools[pool["name"]] = {**pool, "locations": pool.get("locations") or zones(match[2]),
                                   "status": "PROVISIONING"}
            self._nodes[(_key(match), pool["name"])] = int(pool.get("initialNodeCount", 0))
            return self._operation(match, "CREATE_NODE_POOL", pool["name"], "RUNNING")
        if match := POOL.match(path):
            pools, name = self._cluster(match), match[4]
            if name not in pools:
                return self.error(404, f"Not found: {path[len('/v1/'):]}.")
            if method == "GET":
                return 200, pools[name]
            self._idle(match)
            if method == "DELETE":
                pools[name]["status"] = "STOPPING"
                return self._operation(match, "DELETE_NODE_POOL", name, "deleted")
            if match[5] == ":setSize" and method == "POST":
                return self._resize(match, pools[name], int(body.get("nodeCount", 0)))
            if match[5] and method == "POST":
                check_autoscaling(body.get("autoscaling", {}), "autoscaling")
                pools[name]["autoscaling"] = body.get("autoscaling", {})
                pools[name]["status"] = "RECONCILING"
                return self._operation(match, "UPDATE_CLUSTER", name, "RUNNING")
        if (match := OPERATION.match(path)) and method == "GET":
            return self._poll(match[3])
        return self.error(404, f"no route for {method} {path}")

    def _resize(self, match: re.Match, pool: dict, nodes: int) -> tuple[int, dict]:
        """``setSize``: the node count in each of the pool's zones, which GKE takes on a pool with
        autoscaling on (its console resizes such pools too) and reaches within the operation,
        draining and deleting the nodes it removes; the autoscaler leaves the pool alone
        meanwhile (``RECONCILING``). A negative count, or one above GKE's nodes per pool zone, is
        refused; so is a pool that is not running (its status, in the stand-in's words)."""
        if nodes < 0:
            raise invalid("node_count", nodes, "Must be >= 0.")
        if nodes > MAX_NODES_PER_ZONE:
            raise invalid("node_count", nodes, f"A node pool may have at most {MAX_NODES_PER_ZONE} nodes per zone.")
        if pool["status"] != "RUNNING":
            raise Refused(400, f"Node pool {pool['name']} is not running (its status is {pool['status']}).",
                          "FAILED_PRECONDITION")
        pool["status"] = "RECONCILING"
        self._sizes[(_key(match), pool["name"])] = nodes
        code, answer = self._operation(match, "SET_NODE_POOL_SIZE", pool["name"], "RUNNING")
        self.operations[answer["name"]]["size"] = nodes
        return code, answer

    def _idle(self, match: re.Match) -> None:
        """Refuse a change while another operation runs on the cluster, as GKE does."""
        for number, operation in self.operations.items():
            if operation["status"] == "RUNNING" and operation["cluster"] == _key(match):
                wording = BUSY[operation.get("busy", "operation")]
                raise Refused(400, wording.format(number=number, doing=DOING[operation["operationType"]],
                                                  cluster=match[3]), "FAILED_PRECONDITION")

    def _operation(self, match: re.Match, kind: str, pool: str, on_done: str) -> tuple[int, dict]:
        number = f"operation-{len(self.operations) + 1}"
        error, self.fail_next = self.fail_next, None
        if self.speed:
            self.clock.wake_at(self.clock.monotonic() + self.seconds[kind] / self.speed)
        self.operations[number] = {
            "name": number, "operationType": kind, "status": "RUNNING", "pool": pool, "cluster": _key(match),
            "due": self.now() + self.seconds[kind], "error": error, "on_done": on_done,
            "selfLink": f"projects/{match[1]}/locations/{match[2]}/operations/{number}"}
        return 200, {"name": number, "operationType": kind, "status": "RUNNING"}

    def _settle(self) -> None:
        """Finish every operation whose time has come, in the order they started."""
        now = self.now()
        for operation in self.operations.values():
            if operation["status"] != "RUNNING" or operation["due"] > now:
                continue
            operation["status"] = "DONE"
            pool, pools = operation["pool"], self.clusters[operation["cluster"]]
            if operation["error"]:
                if pool in pools:
                    pools[pool].update(status="ERROR", statusMessage=operation["error"])
            elif operation["on_done"] == "deleted":
                pools.pop(pool, None)
                self._nodes.pop((operation["cluster"], pool), None)
            size = self._sizes.pop((operation["cluster"], pool), None)
            if operation["error"] or operation["on_done"] == "deleted":
                continue
            if size is not None and pool in pools:
                self._nodes[(operation["cluster"], pool)] = size * len(pools[pool].get("locations") or [None])
            if pool in pools:
                pools[pool]["status"] = operation["on_done"]

    def _poll(self, number: str) -> tuple[int, dict]:
        operation = self.operations.get(number)
        if operation is None:
            return self.error(404, f"operation {number} not found")
        answer = {k: operation[k] for k in ("name", "operationType", "status", "selfLink")}
        if operation["status"] == "DONE" and operation["error"]:
            answer["error"] = {"code": 8, "message": operation["error"]}
        return 200, answer


def invalid(field: str, value: Any, expected: str) -> Refused:
    return Refused(400, f"Invalid value for field \"{field}\": {json.dumps(value)}. {expected}")


def machine_exists(machine: str) -> bool:
    """Whether Compute Engine has the machine type (:data:`MACHINE_TYPE`, :data:`SIZES`)."""
    predefined = PREDEFINED.fullmatch(machine)
    if predefined and predefined[1] in SIZES:
        return predefined[2] in SIZES[predefined[1]] and not predefined[3]
    return MACHINE_TYPE.fullmatch(machine) is not None


def check_pool(pool: dict, workload_identity: bool = True, zone: str = "us-central1-a") -> None:
    """What GKE validates in a node pool it is asked to create in ``zone`` (a zone of its
    cluster's): a machine type Compute Engine does not have is refused in GKE's words (as
    keras-team/kinetic#305 quotes them: ``Invalid machine type "e2-standard-4" in zone
    "us-central2-b": GCE_NOT_FOUND``)."""
    name = pool.get("name", "")
    if not POOL_NAME.fullmatch(name):
        raise invalid("node_pool.name", name, "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?)' "
                      "(only lowercase alphanumerics and '-' allowed, must start with a letter and end with an "
                      "alphanumeric, and must be no longer than 40 characters).")
    config = pool.get("config", {})
    machine = config.get("machineType", "e2-medium")
    if not machine_exists(machine):
        raise Refused(400, f'Invalid machine type "{machine}" in zone "{zone}": GCE_NOT_FOUND')
    check_accelerators(machine, config.get("accelerators") or [], "machineType" in config)
    if config.get("spot") and config.get("preemptible"):
        raise Refused(400, "Spot VMs and preemptible VMs cannot both be enabled on a node pool.")
    for key, value in config.get("resourceLabels", {}).items():
        if not GCE_LABEL_KEY.fullmatch(key) or not GCE_LABEL_VALUE.fullmatch(value):
            raise invalid(f"node_pool.config.resource_labels[{key}]", value,
                          "Label keys and values may hold lowercase letters, digits, '_' and '-' (at most 63).")
    check_labels(config.get("labels") or {})
    disk = int(config.get("diskSizeGb") or 0)
    if disk and disk < MIN_DISK_GB:
        raise invalid("node_pool.config.disk_size_gb", disk, f"The smallest allowed disk size is {MIN_DISK_GB}GB.")
    for taint in config.get("taints", []):
        if taint.get("effect") not in TAINT_EFFECTS or not taint.get("key"):
            raise invalid("node_pool.config.taints", taint, "A taint needs a key and an effect.")
    check_identity(config, workload_identity)
    scaling = pool.get("autoscaling", {})
    check_autoscaling(scaling, "node_pool.autoscaling")
    initial = int(pool.get("initialNodeCount", 0))
    if initial < 0:
        raise invalid("node_pool.initial_node_count", initial, "Must be >= 0.")
    if scaling.get("enabled") and initial > int(scaling.get("maxNodeCount") or scaling.get("totalMaxNodeCount", 0)):
        raise invalid("node_pool.initial_node_count", initial, "Must not exceed the autoscaling maximum.")


def check_labels(labels: dict[str, str]) -> None:
    """Node labels in Kubernetes' own namespaces or in GKE's, in GKE's wordings (seen in
    hashicorp/terraform-provider-google#6003 and GoogleCloudPlatform/magic-modules#11878); keys
    and values outside Kubernetes' syntax, and more than 1,024 characters of them in all, as
    ``NodeConfig.labels`` says (those refusals' texts are this stand-in's own)."""
    if sum(len(key) + len(value) for key, value in labels.items()) > LABEL_CHARACTERS:
        raise invalid("node_pool.config.labels", labels, f"Labels may hold up to {LABEL_CHARACTERS} characters in all.")
    for key, value in labels.items():
        namespace, _, name = key.rpartition("/")
        if not (K8S_LABEL_NAME.fullmatch(name) and (not namespace or (
                len(namespace) <= 253 and K8S_LABEL_PREFIX.fullmatch(namespace)))):
            raise invalid(f"node_pool.config.labels[{key}]", key, "Label keys must follow Kubernetes' syntax.")
        if value and not K8S_LABEL_NAME.fullmatch(value):
            raise invalid(f"node_pool.config.labels[{key}]", value, "Label values must follow Kubernetes' syntax.")
        if RESERVED_LABELS.search(namespace):
            raise Refused(400, f"Applying kubernetes label is not allowed: {key}")
        if GKE_LABELS.search(namespace):
            raise Refused(400, f'Node labels with key "{key}" are managed by GKE or Kubernetes and must not be '
                               "manually specified")


def check_identity(config: dict, workload_identity: bool) -> None:
    """The nodes' service account and what the metadata server shows pods. The ``GKE_METADATA``
    refusal follows the API reference ("can only be enabled if Workload Identity is enabled at
    the cluster level"); its exact text is this stand-in's own, with GKE's code and status."""
    account = config.get("serviceAccount")
    if account is not None and not SERVICE_ACCOUNT.fullmatch(account):
        raise invalid("node_pool.config.service_account", account,
                      "Expected 'default' or a service account's email (NAME@PROJECT_ID.iam.gserviceaccount.com).")
    mode = (config.get("workloadMetadataConfig") or {}).get("mode", 0)
    if mode not in METADATA_MODES:
        raise invalid("node_pool.config.workload_metadata_config.mode", mode,
                      "Expected one of MODE_UNSPECIFIED, GCE_METADATA, GKE_METADATA.")
    if METADATA_MODES[mode] == METADATA_MODES["GKE_METADATA"] and not workload_identity:
        raise Refused(400, "Workload Identity must be enabled on the cluster (a workload pool) to run the GKE "
                           "metadata server (GKE_METADATA) on a node pool.")


def check_accelerators(machine: str, accelerators: list[dict], chosen: bool) -> None:
    """GPUs only on machines that carry them: N1 types take the attachable models, the
    accelerator-optimized families (g2, a2, a3) only the model they come with, other series none.

    The refusal of GPUs on the default machine type is GKE's own wording (seen in
    hashicorp/terraform-provider-google#8387); for the other cases the exact text GKE answers is
    not verified, so the message is this stand-in's own, with GKE's code and status."""
    for accelerator in accelerators:
        kind = accelerator.get("acceleratorType", "")
        if not chosen:
            raise Refused(400, f"Cannot use default machine type ({machine}) with GPUs; choose a different machine type.")
        family = "-".join(machine.split("-")[:2])
        allowed = N1_GPUS if machine.startswith("n1-") else {GPU_FAMILIES[family]} if family in GPU_FAMILIES else set()
        if kind not in allowed:
            raise invalid("node_pool.config.accelerators", kind,
                          f"Accelerator type {kind} is not supported with machine type {machine}.")


def check_autoscaling(scaling: dict, field: str) -> None:
    """Autoscaling limits: per-zone or pool-wide, never both; minimum at most maximum; a maximum."""
    if not scaling.get("enabled"):
        return
    zone = int(scaling.get("minNodeCount", 0)), int(scaling.get("maxNodeCount", 0))
    total = int(scaling.get("totalMinNodeCount", 0)), int(scaling.get("totalMaxNodeCount", 0))
    if any(zone) and any(total):
        raise Refused(400, f"{field}: per-zone limits (min_node_count, max_node_count) and total limits "
                           "(total_min_node_count, total_max_node_count) cannot be used together.")
    if not zone[1] and not total[1]:
        raise Refused(400, f"{field}.max_node_count and {field}.total_max_node_count cannot be both set to zero.")
    for low, high, names in ((*zone, "min_node_count"), (*total, "total_min_node_count")):
        if low < 0 or (high and low > high):
            raise invalid(f"{field}.{names}", low, "Must be >= 0 and <= the maximum node count.")
