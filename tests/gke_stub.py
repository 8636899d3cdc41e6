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
order, both per-zone and pool-wide or past GKE's 1,000 nodes per zone, an unknown machine type, spot and preemptible together,
resource labels GCE refuses, GPUs on a machine type that cannot carry them, an initial node
count above the maximum, a node service account that is no service account's email, a workload
metadata mode GKE does not know, or ``GKE_METADATA`` on a cluster without Workload Identity:
``workload_identity=False``) get 400
``INVALID_ARGUMENT``; a duplicate create 409 ``ALREADY_EXISTS``; a missing pool 404 ``NOT_FOUND``.
A list of a cluster's pools (``nodePools``) answers every one in one page, unfiltered, as GKE's
``ListNodePoolsResponse`` does (it has no page token, and its request no filter).

The stand-in holds the clusters a test adds (:meth:`GkeStub.add_cluster`: project, location and
name), each with its own pools; a request naming any other cluster (a typo, a zone given for a
regional cluster's region) gets GKE's 404 ``Not found: projects/P/locations/L/clusters/C.``,
and a request naming a location Google Cloud does not have (:func:`gke_checks.check_location`)
GKE's 400 ``Location "L" does not exist.``
:attr:`GkeStub.pools` and the autoscaler's view are those of the first cluster added.

Tests can fail the next operation with a message (``fail_next``: its pool is left ``ERROR``
with that ``statusMessage``, as GKE says why a pool is in error), refuse the next request
(``refuse_next``; of one method only with ``refuse_method``; with an ``ErrorInfo`` reason and other details
(``QuotaFailure``, ``PreconditionFailure``, ``RetryInfo``) if given, as GKE's 403
``CONCURRENT_OPERATIONS_QUOTA_EXCEEDED`` and 429 ``RATE_LIMIT_EXCEEDED`` carry one) or every poll
of an operation (``refused_operations``) or the next polls (``refused_polls``), carry out the next request of a method but lose its
answer (``lose_next_answer``: the connection closes unanswered, as a reset or a timeout leaves
the caller), and demand OAuth tokens (``tokens``: a request without
one of them is refused 401 ``UNAUTHENTICATED``); every request is recorded. Node pools get the
cluster's zones as their ``locations`` (three for a region), which per-zone autoscaling limits
count in each of. The same API is served over gRPC by :mod:`gke_stub_grpc`. :meth:`pool_bounds`,
:meth:`node_count` and :meth:`set_node_count` are what a simulated cluster autoscaler reads and does.

The requests are routed to pools and operations by :mod:`gke_operations`, and checked as GKE
checks them by :mod:`gke_checks`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any, NamedTuple

from gke_checks import TAINT_EFFECTS, node_gpus
from gke_operations import GkeOperations, Key
from kube_standin.clock import RealClock
from standin_server import StandInServer

DEFAULT_SECONDS = {"CREATE_NODE_POOL": 90.0, "DELETE_NODE_POOL": 60.0, "UPDATE_CLUSTER": 10.0,
                   "SET_NODE_POOL_SIZE": 60.0}
"""Stand-in seconds each kind of operation takes; a resize drains the nodes it removes (their
pods' grace period) and deletes their VMs within it."""
UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                   "or other valid authentication credential.")


class PoolBounds(NamedTuple):
    """What a cluster autoscaler reads of a pool: its limits and what its nodes would carry, and
    whether GKE is changing it (``RECONCILING``): then to how many nodes, if it is resizing it."""

    min_nodes: int
    max_nodes: int
    labels: dict[str, str]
    taints: list[dict[str, str]]
    reconciling: bool = False
    resizing: int | None = None
    gpus: int = 0
    """The GPUs (``nvidia.com/gpu``) each node offers once GKE's device plugin runs on it."""


GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
"""The taint GKE gives the nodes of a GPU pool in a cluster that has pools without GPUs (as
katuna's cluster has, for the service itself): only pods that request ``nvidia.com/gpu``
tolerate it, through the ExtendedResourceToleration admission plugin GKE enables."""


class GkeStub(GkeOperations):
    def __init__(self, seconds: Mapping[str, float] | None = None, speed: float = 0.0,
                 clock: RealClock | None = None, workload_identity: bool = True) -> None:
        self.workload_identity = workload_identity
        """Whether the cluster has Workload Identity (a workload pool): GKE_METADATA needs it."""
        self.service_accounts = {"katuna-nodes@proj-7.iam.gserviceaccount.com"}
        """The project's service accounts a pool's nodes may run as (besides ``default``): the one
        the IAM page has the operator make; GKE refuses a pool naming another."""
        self.clusters: dict[Key, dict[str, dict]] = {}
        """Each cluster's node pools by name; a cluster by its project, location and name."""
        self.operations: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.seconds = {**DEFAULT_SECONDS, **(seconds or {})}
        self.speed = speed
        self.fail_next: str | None = None
        self.refuse_next: tuple[Any, ...] | None = None
        """The next request's refusal: code, message, and if given its status, ``ErrorInfo``
        reason (or None) and other details (:func:`gke_checks.error`)."""
        self.refuse_method: str | None = None
        """The method (``POST``, ``GET``) whose next request ``refuse_next`` refuses; None: any."""
        self.lose_next_answer: str | None = None
        """The method (``POST``, ``DELETE``) of the next request carried out whose answer is lost."""
        self.refused_operations: dict[str, tuple[int, str]] = {}
        """Operations whose every poll is refused (say 403, once the caller lost the right to read them)."""
        self.refused_polls: list[tuple[int, str]] = []
        """The next polls of any operation refused, one refusal each, in order (a read quota hit)."""
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

        self.server = StandInServer(("127.0.0.1", 0), Handler)
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

    def update_master(self, seconds: float, busy: str = "master") -> str:
        """Start a control-plane upgrade of the cluster (the first added), as GKE does
        on its own schedule: for ``seconds`` of stand-in time every change to it is refused in the
        :data:`BUSY` wording named. The operation's number."""
        with self.lock:
            project, location, name = key = self.main
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
            gpus = node_gpus(config.get("machineType", ""), config.get("accelerators") or [])
            if gpus is not None:
                labels["cloud.google.com/gke-accelerator"] = gpus[0]
                taints.append(dict(GPU_TAINT))
            size = self._sizes.get((self.main, name))
            resizing = None if size is None else size * len(pool.get("locations") or [None])
            return PoolBounds(low, high, labels, taints, pool["status"] == "RECONCILING", resizing,
                              gpus[1] if gpus else 0)

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
