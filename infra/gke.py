"""GKE node pools through ``google-cloud-container``: the module that calls it.

It sends the requests :mod:`infra.gke_requests` builds, translates GKE's errors into
katuna's, and judges the pools it finds (:mod:`infra.gke_found`). Long-running changes return the operation's full name
(``projects/P/locations/L/operations/ID``: GKE answers with the id only) to check later.
A pool katuna creates for a study carries the study's uid as a resource label
(:data:`functions.core.nodepool.OWNER_KEY`); any other pool found is adopted, and its
autoscaling settings as found are what :meth:`GkeNodePools.scale_back` gives back. A shared
pool katuna made is emptied at once when its last study is done (:meth:`GkeNodePools.empty`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from typing import Any

from infra.gke_errors import (
    API_ERRORS,
    NO_LOCATION,
    SUPPORT_NOTICES,
    message,
    no_cluster,
    no_pool,
    status_name,
    translate,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=FutureWarning, module=SUPPORT_NOTICES)
    from google.api_core import exceptions as google_errors
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import container_v1

from functions.core.errors import TemporaryError
from functions.core.nodepool import (
    GKE,
    INSTALLATION_KEY,
    OWNER_KEY,
    NodePool,
    NodePoolFailed,
    OperationStatus,
    PoolChange,
    PoolStatus,
)
from functions.core.timeouts import REMOTE_TIMEOUT
from infra.gke_found import (
    PENDING,
    POOL_TOKEN,
    autoscaling_settings,
    existing,
    per_zone,
    pool_limits,
    status_of,
)
from infra.gke_requests import (
    CLUSTER_SETTINGS,
    LOCATION_SETTING,
    GkeCluster,
    autoscaling_request,
    create_request,
    list_request,
    name_request,
    size_request,
)
from infra.polling import until_done
from infra.verdict import Verdict

GONE_TOKEN = "gone:"
"""An operation that is a pool's deletion found under way (another's delete): done once the pool is absent."""


def client(endpoint: str | None = None) -> container_v1.ClusterManagerClient:
    """Application Default Credentials; a plain-HTTP endpoint (a local stand-in) gets anonymous
    ones. The scheme is read as URLs read it, whatever its case (``HTTP://``), and handed to the
    client in lower case, the only case its transport reads as a scheme."""
    try:
        if endpoint is None:
            return container_v1.ClusterManagerClient()
        scheme, found, rest = endpoint.partition("://")
        endpoint = f"{scheme.lower()}://{rest}" if found else endpoint
        credentials = AnonymousCredentials() if endpoint.startswith("http://") else None
        return container_v1.ClusterManagerClient(transport="rest", credentials=credentials,
                                                 client_options=ClientOptions(api_endpoint=endpoint))
    except DefaultCredentialsError as exc:
        raise NodePoolFailed(f"no Google Cloud credentials (Application Default Credentials): {exc}") from exc


class GkeNodePools:
    """Implements :class:`functions.core.ports.NodePools` for one GKE cluster."""

    provider = GKE

    def __init__(self, cluster: GkeCluster, api: container_v1.ClusterManagerClient,
                 timeout: float = REMOTE_TIMEOUT, clock: Callable[[], float] = time.time) -> None:
        self.cluster = cluster
        self.api = api
        self.timeout = timeout
        """Seconds each call may take, its own retries included (the ``timeout`` of every call)."""
        self.clock = clock
        """The time a pool katuna creates for a study is labelled with (:data:`CREATED_KEY`)."""

    def _call(self, method: str, request: dict[str, Any]) -> Any:
        try:
            return getattr(self.api, method)(request=request, timeout=self.timeout)
        except API_ERRORS as exc:
            raise self._refusal(exc) from exc

    def _refusal(self, exc: Exception) -> Exception:
        """katuna's error for one GKE raised: a location Google Cloud does not have, or a cluster
        GKE does not have, is the settings' fault (a typo, or a zone given for a regional
        cluster), never an absent pool."""
        where = self.cluster
        if isinstance(exc, google_errors.GoogleAPICallError) and NO_LOCATION.match(message(exc)):
            return NodePoolFailed(f"Google Cloud has no location {where.location} (expected a region, such as "
                                  f"europe-west4, or one of its zones): {message(exc)}", LOCATION_SETTING)
        if no_cluster(exc):
            return NodePoolFailed(f"GKE has no cluster {where.cluster} in location {where.location} of project "
                                  f"{where.project} (a regional cluster's location is its region, not one of its "
                                  f"zones): {message(exc)}", CLUSTER_SETTINGS)
        return translate(exc)

    def _operation(self, operation: Any) -> PoolChange:
        return PoolChange(self.cluster.operation_path(operation.name))

    def _get(self, name: str) -> container_v1.NodePool | None:
        """The pool, or None when the cluster has no pool by that name."""
        try:
            return self.api.get_node_pool(request=name_request(self.cluster, name), timeout=self.timeout)
        except API_ERRORS as exc:
            if no_pool(exc):
                return None
            raise self._refusal(exc) from exc

    def ensure(self, pool: NodePool, owner: str | None = None, *, request_id: str | None = None,
               raising: bool = True) -> PoolChange:
        try:
            request = create_request(self.cluster, pool, owner, self.clock())
            operation = self.api.create_node_pool(request=request, timeout=self.timeout)
            return PoolChange(self.cluster.operation_path(operation.name), created=True, owned=owner is not None)
        except API_ERRORS as exc:
            if not (isinstance(exc, google_errors.GoogleAPICallError) and status_name(exc) == "ALREADY_EXISTS"):
                raise self._refusal(exc) from exc
        current = self._get(pool.name)
        if current is None:
            raise TemporaryError(f"GKE: node pool {pool.name} exists and is gone again; try again")
        verdict = existing(self.cluster, current, pool, owner)
        if verdict.request is None:
            return verdict.whose
        if not raising:
            return replace(verdict.whose, operation=POOL_TOKEN + pool.name)
        raised = self._call("set_node_pool_autoscaling", verdict.request)
        return replace(verdict.whose, operation=self.cluster.operation_path(raised.name))

    def judge(self, pool: NodePool) -> Verdict:
        """What :meth:`ensure` would do with the pool for the provisioning script (no study
        owns it), from a read of it alone: create it, wait for it, raise its maximum, or nothing;
        a pool it would refuse is refused in its words, one being deleted is refused for now."""
        current = self._get(pool.name)
        if current is None:
            return Verdict(PoolChange(created=True), "create_node_pool", create_request(self.cluster, pool))
        return existing(self.cluster, current, pool, None)

    def scale_back(self, pool: NodePool, adopted: Mapping[str, Any] | None = None, *,
                   request_id: str | None = None) -> PoolChange:
        current = self._get(pool.name)
        if current is None:
            return PoolChange()
        if adopted is not None:
            if autoscaling_settings(current) == dict(adopted):
                return PoolChange()
            return self._operation(self._call("set_node_pool_autoscaling", {
                "name": self.cluster.pool_path(pool.name), "autoscaling": dict(adopted)}))
        kept = (0, pool_limits(current)[1] if per_zone(current) else pool.max_nodes)
        if current.autoscaling.enabled and pool_limits(current) == kept:
            return PoolChange()
        if per_zone(current):
            lowered = {"name": self.cluster.pool_path(pool.name), "autoscaling": {**autoscaling_settings(current),
                                                                                  "min_node_count": 0}}
        else:
            lowered = autoscaling_request(self.cluster, pool, pool.max_nodes)
        return self._operation(self._call("set_node_pool_autoscaling", lowered))

    def delete(self, name: str) -> PoolChange:
        """Delete the pool. GKE refuses a second delete while the first runs (the cluster is busy
        with it): a pool found being deleted then is waited for (:data:`GONE_TOKEN`)."""
        try:
            return self._operation(self.api.delete_node_pool(request=name_request(self.cluster, name),
                                                              timeout=self.timeout))
        except API_ERRORS as exc:
            if no_pool(exc):
                return PoolChange()
            refusal = self._refusal(exc)
            busy = isinstance(exc, google_errors.GoogleAPICallError) and status_name(exc) == "FAILED_PRECONDITION"
            if busy and isinstance(refusal, TemporaryError) and self._being_deleted(name):
                return PoolChange(GONE_TOKEN + name)
            raise refusal from exc

    def empty(self, name: str) -> PoolChange:
        """Resize the pool to 0 nodes (``setSize``, which GKE takes on a pool with autoscaling
        on, as its console does): GKE drains the nodes and deletes their VMs within the
        operation, and the autoscaler grows the pool again for the next trials. An absent pool
        is no change; a cluster busy with another operation is refused for now."""
        try:
            return self._operation(self.api.set_node_pool_size(request=size_request(self.cluster, name, 0),
                                                               timeout=self.timeout))
        except API_ERRORS as exc:
            if no_pool(exc):
                return PoolChange()
            raise self._refusal(exc) from exc

    def _being_deleted(self, name: str) -> bool:
        current = self._get(name)
        return current is not None and status_of(current).state == "STOPPING"

    def check(self, operation: str) -> OperationStatus:
        if operation.startswith(GONE_TOKEN):
            return self._gone(operation[len(GONE_TOKEN):])
        if operation.startswith(POOL_TOKEN):
            current = self._get(operation[len(POOL_TOKEN):])
            if current is None:
                return OperationStatus(True, "the node pool disappeared while it was being created")
            state = container_v1.NodePool.Status(current.status).name
            if state == "ERROR":
                return OperationStatus(True, current.status_message or "the node pool is in error")
            return OperationStatus(state not in PENDING)
        found = self._call("get_operation", {"name": operation})
        if found.status != container_v1.Operation.Status.DONE:
            return OperationStatus(False)
        error = found.error.message if found.error and found.error.message else found.status_message
        return OperationStatus(True, error or None)

    def _gone(self, name: str) -> OperationStatus:
        """A deletion found under way: done once the pool is gone, failed if it stops being deleted."""
        current = self._get(name)
        if current is None:
            return OperationStatus(True)
        state = status_of(current).state
        if state == "STOPPING":
            return OperationStatus(False)
        return OperationStatus(True, f"node pool {name} is {state}, no longer being deleted: "
                                     f"{current.status_message or 'no message'}")

    def wait(self, operation: str, interval: float = 5.0, timeout: float = 1800.0) -> OperationStatus:
        """Poll an operation until it is done (for the provisioning script, never a request); a
        poll refused for now is polled again (:func:`infra.polling.until_done`)."""
        return until_done(self.check, operation, interval, timeout)

    def describe(self, name: str) -> PoolStatus | None:
        current = self._get(name)
        return None if current is None else status_of(current)

    def made(self, skip: Collection[str] = ()) -> list[PoolStatus]:
        """The pools this installation created for studies, but those in ``skip``: one
        ``list_node_pools``, which answers every pool of the cluster, filtered by their resource
        labels (GKE's list takes no filter). None outside the service (no installation)."""
        installation = self.cluster.installation
        if installation is None:
            return []
        listed = self._call("list_node_pools", list_request(self.cluster))
        return [status_of(pool) for pool in listed.node_pools if pool.name not in skip
                and pool.config.resource_labels.get(INSTALLATION_KEY) == installation
                and pool.config.resource_labels.get(OWNER_KEY)]

    def tidy(self, before: float) -> list[str]:
        """Nothing: katuna makes nothing beside a GKE pool, which takes all it made with it."""
        return []

    def node_service_account(self, name: str) -> str | None:
        """The service account the pool's nodes run as (``default``: the cluster's default, as
        GKE names it), None when there is no such pool or it is being deleted (a pool created
        again once it is gone takes the account asked for)."""
        current = self._get(name)
        if current is None or status_of(current).state == "STOPPING":
            return None
        return current.config.service_account or "default"
