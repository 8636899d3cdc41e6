"""GKE's answers in katuna's terms, for :mod:`infra.gke`: a refusal for good
(:class:`~functions.core.nodepool.NodePoolFailed`, naming the study field or the service's setting
to fix where one is to blame) or for now (:class:`~functions.core.errors.TemporaryError`, asked
again), judged by the canonical status and reasons so that gRPC and REST answers are judged alike.
"""

from __future__ import annotations

import json
import re
import warnings
from typing import TypeGuard

SUPPORT_NOTICES = r"google\.api_core\._python_(version|package)_support"
"""Where google-api-core warns, as it and google-cloud-container are imported, of the Python
and dependency versions Google will stop supporting (``FutureWarning``): news for whoever builds
the image, not for the provisioning script's user, whose stderr carries only errors and warnings
of the pool, nor for the service's log. Only those warnings, only while importing, are ignored."""

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=FutureWarning, module=SUPPORT_NOTICES)
    from google.api_core import exceptions as google_errors
    from google.auth.exceptions import GoogleAuthError, TransportError

from functions.core.errors import TemporaryError
from functions.core.nodepool import NodePoolFailed
from infra.gke_lasting import lasting
from infra.gke_requests import CLUSTER_SETTINGS, NODE_ACCOUNT_SETTING, SERVICE_SIGN_IN

API_ERRORS = (google_errors.GoogleAPICallError, google_errors.RetryError, OSError, GoogleAuthError)
"""What a call to GKE raises: the API's refusal, the client's retries running out, the network,
or the credentials (a token refresh, which Workload Identity makes at the metadata server)."""
_TEMPORARY_STATUSES = frozenset({"ABORTED", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "INTERNAL",
                                 "FAILED_PRECONDITION"})
"""Canonical codes that retrying may help. GKE answers a change to a cluster held by another
operation (its own control-plane upgrades and updates included) ``FAILED_PRECONDITION``, in
wordings it does not publish, and Google's Terraform provider retries node-pool changes on that
code alone: so does katuna, for at most ``KATUNA_POOL_WAIT``, after which the study fails with
GKE's last words. Unless the refusal's details or words say it lasts (:func:`infra.gke_lasting.lasting`:
a resource quota used up, an organization policy), or it is an Autopilot cluster's
(:data:`_AUTOPILOT`): then it fails at once, naming the quota, location or policy."""
_TEMPORARY_REASONS = frozenset({"CONCURRENT_OPERATIONS_QUOTA_EXCEEDED", "RATE_LIMIT_EXCEEDED", "rateLimitExceeded",
                                "userRateLimitExceeded"})
"""``ErrorInfo`` reasons of a refusal (a 403 among them) that clears as operations finish or the minute turns."""
_BUSY = re.compile(r"is being updated|incompatible operation|not ready for operation|quota metric .* per minute"
                   r"|currently being created, deleted, updated or repaired|Please wait and try again")
"""GKE's wordings for a busy cluster (as Google's own GKE module retries them; the next to last
as GKE answers a change while the cluster itself is changing; the last as it ends ``Operation
operation-… is currently upgrading cluster C. Please wait and try again once it is done.``,
hashicorp/terraform-provider-google#3650 and #10366) and for a per-minute quota: temporary
whatever code they come with."""
_PASSING = re.compile(r"try again later|concurrent operations quota|GCE_STOCKOUT|ZONE_RESOURCE_POOL_EXHAUSTED"
                      r"|currently unavailable in the \S+ zone", re.IGNORECASE)
"""Words of a refusal of a code that may pass (:data:`_TEMPORARY_STATUSES`) that passes whatever its details: the cluster's concurrent operations
(``Too many operations: cluster "C" hits the concurrent operations quota 5, please try again
later.``, hashicorp/terraform-provider-google#15205) and a zone short of the machines asked
for now (Compute Engine's stockout: ``ZONE_RESOURCE_POOL_EXHAUSTED``, ``A e2-standard-2 VM
instance is currently unavailable in the europe-west4-a zone``)."""
_AUTOPILOT = re.compile(r"\bAutopilot\b", re.IGNORECASE)
"""GKE's refusal of node-pool calls on an Autopilot cluster (``Autopilot node pools cannot be
accessed or modified.``, as turbot/steampipe-plugin-gcp#591 quotes it): the cluster setting to fix."""
_NO_SERVICE_ACCOUNT = re.compile(r'Service account "[^"]*" does not exist')
"""How GKE's 400 begins for a node service account the project does not have (``Service account
"x@p.iam.gserviceaccount.com" does not exist.``, as sassoftware/viya4-iac-gcp#148 quotes it):
``KATUNA_GKE_NODE_SERVICE_ACCOUNT`` to fix."""
_NO_MACHINE_TYPE = re.compile(r"Invalid machine type\b")
"""How GKE's 400 begins for a machine type Compute Engine has not in the pool's zones
(``Invalid machine type "e2-standard-3" in zone "europe-west4-a": GCE_NOT_FOUND``, as
keras-team/kinetic#305 quotes it): the study's ``nodePool.machineType`` to fix."""
_NO_CLUSTER = re.compile(r"/clusters/[^/\s]+\.?$")
"""How GKE's ``NOT_FOUND`` ends when the cluster is missing (``Not found:
projects/P/locations/L/clusters/C.``); a missing pool's names the pool (``…/nodePools/N.``)."""
NO_LOCATION = re.compile(r'Location "[^"]*" does not exist')
"""How GKE's 400 begins for a region or zone Google Cloud does not have (``Location
"europe-west99" does not exist.``, as terraform-google-modules/terraform-google-kubernetes-engine
#444 quotes it), where a cluster missing from a location it has is a 404: the location to fix."""
_HTTP_STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
                  504: "DEADLINE_EXCEEDED"}


def status_name(exc: google_errors.GoogleAPICallError) -> str:
    """The canonical status (``FAILED_PRECONDITION``) whatever the transport: a REST answer's
    body names it, a gRPC error carries it; a bare HTTP answer is read by its code."""
    try:
        return str(json.loads(exc.response.text)["error"]["status"])
    except (AttributeError, KeyError, TypeError, ValueError):
        pass
    if exc.grpc_status_code is not None:
        return str(exc.grpc_status_code.name)
    return _HTTP_STATUSES.get(exc.code or 0, "UNKNOWN")


def _reasons(exc: google_errors.GoogleAPICallError) -> set[str]:
    """The refusal's reasons: ``ErrorInfo`` details (JSON over REST, messages over gRPC) and a
    REST answer's legacy ``errors[].reason``."""
    found = set()
    for item in (*exc.details, *exc.errors):
        reason = item.get("reason") if isinstance(item, dict) else getattr(item, "reason", None)
        if isinstance(reason, str):
            found.add(reason)
    return found


def message(exc: google_errors.GoogleAPICallError) -> str:
    """The cloud's own message (a REST error's ``message`` names the URL first)."""
    try:
        return str(json.loads(exc.response.text)["error"]["message"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return str(exc.message)


def _auth_temporary(exc: GoogleAuthError) -> bool:
    """A credentials error retrying may help: the token endpoint or metadata server not reached
    (``TransportError``, which Compute Engine and Workload Identity credentials re-raise as the
    cause of a ``RefreshError``), or one google-auth marks ``retryable`` (a 5xx or
    ``temporarily_unavailable`` answer). A refusal of the credentials themselves (revoked,
    deleted account, ``invalid_grant``) is permanent."""
    return (isinstance(exc, TransportError) or exc.retryable
            or isinstance(exc.__cause__, TransportError) or isinstance(exc.__context__, TransportError))


def translate(exc: Exception) -> Exception:
    """Throttling, server errors, an unreachable API or token endpoint, and a cluster busy with
    another operation are temporary; every other refusal is permanent, with the cloud's message.
    Judged by the canonical status and reasons, so gRPC and REST answers are judged alike."""
    if isinstance(exc, google_errors.GoogleAPICallError):
        said = message(exc)
        if _AUTOPILOT.search(said):
            return NodePoolFailed(f"GKE refused the request: {said}; the cluster is an Autopilot cluster, whose "
                                  "node pools GKE alone manages: name a Standard cluster, or leave nodePool out of "
                                  "the study", CLUSTER_SETTINGS)
        field = "nodePool.machineType" if _NO_MACHINE_TYPE.match(said) else \
            NODE_ACCOUNT_SETTING if _NO_SERVICE_ACCOUNT.match(said) else None
        if (exc.code or 0) >= 500 or _reasons(exc) & _TEMPORARY_REASONS or _BUSY.search(said):
            return TemporaryError(f"GKE: {said}")
        if status_name(exc) in _TEMPORARY_STATUSES and field is None:
            lasts = None if _PASSING.search(said) else lasting(exc, said)
            if lasts is None:
                return TemporaryError(f"GKE: {said}")
            return NodePoolFailed(f"GKE refused the request: {said}; it lasts: {lasts}")
        return NodePoolFailed(f"GKE refused the request: {said}", field)
    if isinstance(exc, GoogleAuthError):
        if _auth_temporary(exc):
            return TemporaryError(f"GKE: Google Cloud credentials could not be refreshed now: {exc}")
        return NodePoolFailed(f"GKE: the Google Cloud credentials were refused: {exc}; {SERVICE_SIGN_IN}")
    return TemporaryError(f"GKE is unreachable: {exc}")


def no_cluster(exc: Exception) -> TypeGuard[google_errors.NotFound]:
    """GKE's ``NOT_FOUND`` for the cluster a request names."""
    return isinstance(exc, google_errors.NotFound) and bool(_NO_CLUSTER.search(message(exc).strip()))


def no_pool(exc: Exception) -> bool:
    """GKE's ``NOT_FOUND`` for a pool of a cluster it has."""
    return isinstance(exc, google_errors.NotFound) and not no_cluster(exc)
