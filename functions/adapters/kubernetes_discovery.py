"""The resource an operator's added workload kind (``KATUNA_TRIAL_KINDS``) is served at, as the
API server's discovery lists it (``GET /apis/GROUP/VERSION``: each resource's name and kind),
which is how Katib's controller finds the resource of a kind of its ``trialResources`` (its
client's REST mapper). A kind's plural is its CustomResourceDefinition's choice: lower case plus
``s`` by convention, but ``NetworkPolicy`` is ``networkpolicies`` and a ``BatchProcess``
``batchprocesses``, which a guess would create, read and delete at a path the API does not serve.

A kind katuna knows (:data:`functions.core.trial_kinds.KINDS`) has its plural written down and
asks nothing. The answer is kept by the client that asked (:class:`BoundedApiClient`'s
``served``; a service makes one a process), as a kind's resource does not change while its CRD
stands: a client made since (a configuration loaded again) asks afresh, and a client of another
class keeps nothing. A group and version the API does not serve (404: the operator is not
installed), or a list without the kind, keeps the conventional plural
(:func:`functions.core.trial_kinds.resource`), whose requests then answer 404 as before, naming
it; it is asked again next time, as the operator may be installed since. Every account may read
discovery (Kubernetes' ``system:discovery`` ClusterRole), so katuna's Role grants nothing for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

from functions.adapters.kubernetes_client import BoundedApiClient, Translate, call, translate
from functions.core import trial_kinds


def served_resource(objects: client.CustomObjectsApi, workload: Mapping[str, Any],
                    translator: Translate = translate) -> tuple[str, str, str]:
    """``(group, version, plural)`` of the workload (a ``trialSpec``), its plural as the API
    server's discovery lists its kind for an added kind; an API error other than 404 is
    translated (a temporary one retried as any call's)."""
    group, version, guessed = trial_kinds.resource(workload)
    if trial_kinds.kind_of(workload) is not None or not group:
        return group, version, guessed
    kind = str(workload.get("kind", ""))
    api = objects.api_client
    served: dict[tuple[str, str, str], str] = api.served if isinstance(api, BoundedApiClient) else {}
    found = served.get((group, version, kind))
    if found is None:
        listed = call(lambda: objects.get_api_resources(group, version),
                      f"read the resources the API serves in {group}/{version}", tolerate=(404,), translator=translator)
        found = next((resource.name for resource in (listed.resources if listed is not None else [])
                      if resource.kind == kind and "/" not in resource.name), None)
        if found is None:
            return group, version, guessed
        served[(group, version, kind)] = found
    return group, version, found
