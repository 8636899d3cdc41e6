"""The Kubernetes API client every ``kubernetes_*`` adapter uses, and the translation of its
errors into katuna's: a refusal the API will repeat is permanent, anything else (a timeout
included) temporary, so its event is delivered again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any, TypeVar, overload

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError, ReadTimeoutError

from functions.adapters.kubernetes_answers import check_answer
from functions.core.errors import PermanentError, Problem, QuotaFull, RefusedWorkload, TemporaryError
from functions.core.timeouts import REMOTE_TIMEOUT

RETRYABLE = {408, 409, 410, 429, 500, 502, 503, 504}
"""Statuses a later try may not get: 410 Gone is a resourceVersion or ``continue`` token the API
server compacted away, which a list started again gets past (:func:`all_pages`)."""
UNAUTHORIZED = 401
"""The API server's answer to a request whose credentials it did not take: a token rotated or
expired since it was read, an authenticator (a webhook's, an OIDC issuer's) away, a kubeconfig's
or a proxy's credentials run out. Nothing in the request is to blame (the API server
authenticates before it reads the request), so it is refused for now, not for good: a study is
never failed, nor a submission refused as invalid, for credentials the operator renews."""
GONE = 410
REQUEST_TOO_LARGE = 413
FORBIDDEN = 403
OVER_QUOTA = "exceeded quota"
"""What the API server's ResourceQuota admission says of a create past its namespace's quota (a
403 Forbidden, ``jobs.batch "x" is forbidden: exceeded quota: ...``): refused for now, not for
good, as the quota frees when Jobs end (finished ones count until deleted). Only a 403 says so:
the words may be anywhere in another refusal's body (a 422 quoting a value of the object)."""


T = TypeVar("T")
Translate = Callable[[Exception, str], Exception]
"""What makes katuna's error of a failed API call, given what katuna was doing (:func:`translate`)."""


class BoundedApiClient(client.ApiClient):
    """An API client none of whose requests can wait for ever: each waits at most ``timeout``
    seconds to connect, and as long again for each read of the answer. That is a bound per read,
    not on the whole answer, so a long pod log streams for as long as its chunks keep coming.
    An answer no API server gives is refused before it is read (:func:`check_answer`), naming
    ``source``: the address and where it was configured. ``served`` keeps, for the client's
    life, the resource the API server's discovery lists for each added kind, by group, version
    and kind (:mod:`functions.adapters.kubernetes_discovery`): a client is one API server's, and
    its threads share the dict without a lock, each read and write of it being atomic."""

    def __init__(self, configuration: client.Configuration, timeout: float, source: str) -> None:
        super().__init__(configuration)
        self.timeout = timeout
        self.source = source
        self.served: dict[tuple[str, str, str], str] = {}

    def call_api(self, method: str, url: str, header_params: Any = None, body: Any = None,
                 post_params: Any = None, _request_timeout: Any = None) -> Any:
        """The request, with the client's (connect, read) timeouts unless the call names its own."""
        return super().call_api(method, url, header_params, body, post_params,
                                _request_timeout=_request_timeout or (self.timeout, self.timeout))

    def response_deserialize(self, response_data: Any, response_types_map: Any = None) -> Any:
        """The answer read as the client reads it, once it is known to be an API server's."""
        check_answer(response_data, (response_types_map or {}).get(str(response_data.status)), self.source)
        return super().response_deserialize(response_data, response_types_map)


APIS = ("CoreV1Api", "BatchV1Api", "CustomObjectsApi", "AuthorizationV1Api", "EventsV1Api")
"""The client's API classes that katuna's adapters call."""


def load_apis() -> None:
    """Build the API classes katuna calls now, rather than at first use. The client builds each
    lazily, and ``CoreV1Api`` with its hundreds of validated methods takes most of a second of
    CPU: ``katuna serve`` calls this before it forks, so its workers share one build instead of
    each making its own."""
    for name in APIS:
        getattr(client, name)


def api_client(host: str | None = None, timeout: float = REMOTE_TIMEOUT) -> client.ApiClient:
    """A client for ``host``, else in-cluster configuration, else the local kubeconfig. ``host``
    (``KATUNA_K8S_API``) gets no credentials: it is a proxy that adds them (``kubectl proxy``),
    since the API server itself refuses a request without them as ``system:anonymous``'s. Each
    request is bounded by ``timeout`` (:class:`BoundedApiClient`) and never retried by the client
    itself (a failed call is a temporary error, and its event is delivered again), so one call
    costs one timeout to connect and one per read at most."""
    configuration = client.Configuration()
    if host:
        configuration.host, source = host, "KATUNA_K8S_API"
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
            source = "the in-cluster configuration's API server"
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)
            source = "the kubeconfig's server"
    configuration.retries = False
    return BoundedApiClient(configuration, timeout, f"{source} ({configuration.host})")


def configuration_problem(host: str | None = None, wanted_by: str = "--executor kubernetes") -> str | None:
    """Why no client for the cluster can be made here (no API address, not in a cluster, no usable
    kubeconfig), or None: said once at start, where each worker would otherwise fail to boot;
    ``wanted_by`` names what asked for the cluster."""
    try:
        api_client(host).close()
    except (config.ConfigException, OSError, ValueError, yaml.YAMLError) as exc:
        return (f"no Kubernetes configuration for {wanted_by}: not in a cluster and no usable kubeconfig "
                f"({' '.join(str(exc).split())}); set KUBECONFIG, or KATUNA_K8S_API to the address of a proxy "
                "that adds the credentials, such as `kubectl proxy`'s")
    return None


TOO_LARGE = "etcdserver: request is too large"
"""What the API server answers (a 500, its message etcd's: kubernetes/kubernetes#112152) when
the object written would be past etcd's ``--max-request-bytes`` (1.5 MiB by default): the same
write is refused again however often it is tried."""


def translate(exc: Exception, doing: str) -> Exception:
    """The katuna error for a failed API call: permanent for a refusal the API will repeat (an
    object too large for etcd among them, :data:`TOO_LARGE`), temporary (retried) otherwise, a
    call that timed out, a quota full and credentials not taken (:data:`UNAUTHORIZED`) included."""
    if isinstance(exc, ApiException) and exc.status == UNAUTHORIZED:
        return TemporaryError(f"could not {doing}: the Kubernetes API server did not take katuna's credentials "
                              f"(401 Unauthorized: a token rotated, expired or revoked, or its authenticator away); "
                              f"tried again later: renew them (the service account's token, the kubeconfig, or "
                              f"KATUNA_K8S_API's proxy)")
    if isinstance(exc, ApiException) and too_large(exc):
        return PermanentError(f"Kubernetes refused to {doing}: the object would be larger than etcd stores "
                              f"(--max-request-bytes, 1.5 MiB by default): {exc.status} {exc.reason}: {exc.body}")
    if isinstance(exc, ApiException) and exc.status not in RETRYABLE and not over_quota(exc):
        return PermanentError(f"Kubernetes refused to {doing}: {exc.status} {exc.reason}: {exc.body}")
    if isinstance(exc, ApiException) and exc.status not in RETRYABLE:
        return QuotaFull(f"Kubernetes refused to {doing} for now, its namespace's quota full: {exc.status} "
                         f"{exc.reason}: {exc.body}", _refusal(exc))
    if isinstance(exc, ReadTimeoutError):
        return TemporaryError(f"could not {doing}: the Kubernetes API did not answer within KATUNA_REMOTE_TIMEOUT: {exc}")
    return TemporaryError(f"could not {doing}: {exc}")


def _refusal(exc: ApiException) -> str:
    """The API server's words refusing a request, after ``is forbidden: `` (its Status's
    ``message``; the body as it came where it is none)."""
    try:
        message = str(json.loads(exc.body or "").get("message") or "")
    except (ValueError, AttributeError):
        message = str(exc.body or "")
    return message.partition(" is forbidden: ")[2] or message


def all_pages(page: Callable[[str], Any], next_token: Callable[[Any], str],
              kept: Callable[[Any], list[Any]] | None = None) -> list[Any]:
    """Every page of a list, ``page(token)`` asked from the first (``""``) on with the last
    page's ``continue`` token (``next_token``) until a page has none; given ``kept``, what it
    keeps of each page instead, each page let go before the next is asked for: a sweep of
    thousands of objects holds one page of them at a time, and what it keeps. A token the API
    server compacted away before the list ended (410 Gone: "The provided continue parameter is
    too old to display a consistent list result. You can start a new list without the continue
    parameter", kubernetes/kubernetes staging/src/k8s.io/apiserver/pkg/storage/etcd3/errors.go)
    starts the list again, once, what was read dropped: the API's other remedy, the token its
    answer carries, would go on at a later version and give an inconsistent list. A second 410
    is raised, for :func:`translate` to make temporary: the event is delivered again."""
    try:
        return _pages(page, next_token, kept or _whole)
    except ApiException as exc:
        if exc.status != GONE:
            raise
    return _pages(page, next_token, kept or _whole)


def _pages(page: Callable[[str], Any], next_token: Callable[[Any], str], kept: Callable[[Any], list[Any]]) -> list[Any]:
    """What ``kept`` keeps of each page of one list, from its first page to its last."""
    found: list[Any] = []
    token = ""
    while True:
        listed = page(token)
        found += kept(listed)
        token = next_token(listed)
        del listed
        if not token:
            return found


def _whole(listed: Any) -> list[Any]:
    """A page kept whole."""
    return [listed]


def delete_options(uid: str | None = None) -> client.V1DeleteOptions:
    """A delete's options: what the object owns goes with it (``Background``), and only while
    ``uid`` is its uid (when given). Always a body: the API server reads a delete's query
    parameters only when it has none, so a ``propagationPolicy`` in the query beside a body is
    lost, and a Job's pods would be left (``batch/v1`` Jobs orphan them by default)."""
    return client.V1DeleteOptions(propagation_policy="Background",
                                  preconditions=client.V1Preconditions(uid=uid) if uid else None)


def status_body(exc: ApiException) -> dict[str, Any]:
    """The ``Status`` the API server answered with; empty where the body is none."""
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def unrouted(exc: ApiException) -> bool:
    """Whether a 404 is the API server's for a path it does not route, not for an object that is
    not there: the object's is a ``Status`` naming it (``experiments.kubeflow.org "x" not
    found``), the path's is Go's plain ``404 page not found`` (no ``Status``; a proxy's, or an
    older server's, a ``Status`` naming nothing). A custom resource's path goes unrouted while
    its definition is gone or no longer serves that version, and, for a moment, on an API server
    that has not loaded every definition after a restart (kubernetes/kubernetes#115241), while
    the resource is there."""
    if exc.status != 404:
        return False
    details = status_body(exc).get("details")
    return not (isinstance(details, dict) and details.get("name"))


def read_or_none(read: Callable[[], T], doing: str) -> T | None:
    """What ``read`` returns, or None when the object is not there."""
    return call(read, doing, tolerate=(404,))


@overload
def call(make: Callable[[], T], doing: str, *, translator: Translate = ...) -> T: ...


@overload
def call(make: Callable[[], T], doing: str, tolerate: Collection[int], translator: Translate = ...) -> T | None: ...


def call(make: Callable[[], T], doing: str, tolerate: Collection[int] = (),
         translator: Translate = translate) -> T | None:
    """What ``make``, a call of the API, returns, or None where the API answers one of the
    statuses it may ``tolerate`` (404: not there; 409: there already, or replaced since); any
    other refusal or failure is raised as ``translator`` makes it (:func:`translate`), saying
    what katuna was ``doing``, with the client's error as its cause (where a reader may look for
    its status): the adapters' calls whose failure means no more than that."""
    try:
        return make()
    except (ApiException, HTTPError) as exc:
        if isinstance(exc, ApiException) and exc.status in tolerate:
            return None
        raise translator(exc, doing) from exc


def client_refusals(exc: ValidationError, prefix: str, refused: str) -> list[Problem]:
    """The typed client's reasons for refusing a workload before sending it (a value of a type
    its model does not take), each at its field under ``prefix``, followed by what was
    ``refused``: so a workload the client will never send is a clear permanent refusal, not
    an error retried for ever."""
    problems = []
    for error in exc.errors():
        steps = error["loc"][1:] if error["loc"] and isinstance(error["loc"][0], int) else error["loc"]
        path = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in steps)
        problems.append(Problem(prefix + path, f"{error['msg']}, got {error.get('input')!r}: {refused}"))
    return problems or [Problem(prefix, f"{exc}: {refused}")]


def over_quota(exc: ApiException) -> bool:
    """Whether the API server refused for a quota full (:data:`OVER_QUOTA`): a 403 saying so."""
    return exc.status == FORBIDDEN and OVER_QUOTA in str(exc.body or "")


def too_large(exc: ApiException) -> bool:
    """Whether the API server refused the write as larger than etcd stores (:data:`TOO_LARGE`),
    or its body as larger than it decodes (413, 3 MiB)."""
    return exc.status == REQUEST_TOO_LARGE or (exc.status == 500 and TOO_LARGE in str(exc.body or ""))


def oversized_workload(exc: ApiException, field: str, what: str) -> RefusedWorkload | None:
    """The refusal of a trial's workload that its parameters made larger than the cluster stores
    (:func:`too_large`; a placeholder a template repeats, filled with a long value): that trial
    fails, naming ``field``, rather than its launch tried for ever. None for any other refusal."""
    if not too_large(exc):
        return None
    return RefusedWorkload([Problem(field, f"{what}, as the trial's parameters fill it, is larger than the cluster "
                                           "stores (etcd's --max-request-bytes, 1.5 MiB by default; 3 MiB of request "
                                           f"body): {exc.status} {exc.reason}")])
