"""The GKE stand-in's routes (:class:`GkeOperations`, of :class:`gke_stub.GkeStub`): node pools
created, read, deleted, resized and given new autoscaling limits by operations that take
stand-in time, one at a time on a cluster (a change while another runs is refused in GKE's
words, :data:`BUSY`), and the operations polled."""

from __future__ import annotations

import re

from gke_checks import NODES_PER_ZONE, Refused, check_autoscaling, check_location, check_pool, error, invalid

CLUSTER = r"/v1/projects/([^/]+)/locations/([^/]+)/clusters/([^/]+)"
POOLS = re.compile(CLUSTER + r"/nodePools$")
POOL = re.compile(CLUSTER + r"/nodePools/([^/:]+)(:setAutoscaling|:setSize)?$")
OPERATION = re.compile(r"/v1/projects/([^/]+)/locations/([^/]+)/operations/([^/]+)$")
DOING = {"CREATE_NODE_POOL": "creating a node pool for cluster", "DELETE_NODE_POOL": "deleting a node pool for cluster",
         "UPDATE_CLUSTER": "updating cluster", "UPGRADE_MASTER": "upgrading cluster",
         "SET_NODE_POOL_SIZE": "setting the size of a node pool for cluster"}
"""What an operation is doing, in GKE's words for a busy cluster (``... is currently upgrading
cluster C.``, hashicorp/terraform-provider-google#3650; ``... creating a node pool for cluster C.``)."""
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
ZONES = ("a", "b", "c")
Key = tuple[str, str, str]
"""A cluster: its project, location and name."""


def _key(match: re.Match) -> Key:
    """The cluster a request's path names."""
    return match[1], match[2], match[3]


def zones(location: str) -> list[str]:
    """The zones of a cluster's location: a zone itself, or three of a region's."""
    return [location] if re.search(r"-[a-z]$", location) else [f"{location}-{zone}" for zone in ZONES]


class GkeOperations:
    """The requests GKE answers, routed to pools and operations of the stand-in's state."""

    error = staticmethod(error)

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
            self._location(path)
            return self._route(method, path, body or {})
        except Refused as refused:
            return refused.answer

    def _location(self, path: str) -> None:
        """GKE's 400 for a location Google Cloud does not have, before the cluster is looked for."""
        found = re.match(r"/v1/projects/[^/]+/locations/([^/]+)/", path)
        if found:
            check_location(found[1], {location for _, location, _ in self.clusters})

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
            where = pool.get("locations") or zones(match[2])
            check_pool(pool, self.workload_identity, where[0], len(where))
            account = (pool.get("config") or {}).get("serviceAccount", "default")
            if account not in {"default", *self.service_accounts}:
                raise Refused(400, f'Service account "{account}" does not exist.')
            if pool["name"] in pools:
                return self.error(409, f"Already exists: {path}/{pool['name']}.")
            self._idle(match)
            pools[pool["name"]] = {**pool, "locations": pool.get("locations") or zones(match[2]),
                                   "status": "PROVISIONING"}
            self._nodes[(_key(match), pool["name"])] = int(pool.get("initialNodeCount", 0))
            return self._operation(match, "CREATE_NODE_POOL", pool["name"], "RUNNING")
        if (match := POOLS.match(path)) and method == "GET":
            return 200, {"nodePools": list(self._cluster(match).values())}
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
                check_autoscaling(body.get("autoscaling", {}), "autoscaling", len(pools[name].get("locations") or [None]))
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
        if nodes > NODES_PER_ZONE:
            raise invalid("node_count", nodes, f"A node pool may have at most {NODES_PER_ZONE} nodes per zone.")
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
