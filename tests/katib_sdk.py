"""Katib's SDK client (``kubeflow-katib`` 0.19) as its users get it, with the two shims that let
it run on ``kubernetes`` 37: katuna sees the requests the SDK makes with an older ``kubernetes``.

Kept apart from the tests so that only a test process that uses the SDK imports it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from kubeflow.katib import KatibClient
from kubeflow.katib.api_client import ApiClient as KatibApiClient
from kubernetes import client


class ModelBodies(client.CustomObjectsApi):
    """The custom objects API as ``kubernetes`` < 37 offered it to Katib's SDK: a model object
    as a request body is serialised by its own ``attribute_map`` (the SDK's ``ApiClient``
    does exactly that) rather than refused.

    ``kubeflow-katib`` 0.19 hands ``create_namespaced_custom_object`` a ``V1beta1Experiment``
    (``tune()`` always does), and ``patch_namespaced_custom_object`` one too
    (``edit_experiment_budget``); ``kubernetes`` 37, which katuna pins and which the SDK's own
    requirement (``kubernetes>=27.2.0``) also installs, validates bodies client-side and
    refuses anything but a dict before sending a byte, against any cluster, Katib's too. This
    restores the older client's behaviour in the client process; nothing of katuna's changes.
    """

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **kwargs):
        body = KatibApiClient().sanitize_for_serialization(body)
        return super().create_namespaced_custom_object(group, version, namespace, plural, body, **kwargs)

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body, **kwargs):
        """``edit_experiment_budget`` hands over the ``V1beta1Experiment`` it read, edited: sent
        whole as a merge patch (its resourceVersion and status included), as before 37."""
        body = KatibApiClient().sanitize_for_serialization(body)
        return super().patch_namespaced_custom_object(group, version, namespace, plural, name, body, **kwargs)


class TypeNames(KatibApiClient):
    """The SDK's deserialiser reading ``kubernetes`` 37's model type names: the SDK's models hold
    ``kubernetes`` models (``V1ObjectMeta``), whose ``openapi_types`` now say ``Dict[str, str]``
    and ``List[...]`` where the SDK's reader knows ``dict(str, str)`` and ``list[...]``; it fails
    on any object with labels (every Trial Katib makes has them) whatever the cluster."""

    def _ApiClient__deserialize(self, data, klass):  # noqa: N802 - the name-mangled method it replaces
        if isinstance(klass, str):
            klass = re.sub(r"^Dict\[(\w+), (.*)\]$", r"dict(\1, \2)", re.sub(r"^List\[(.*)\]$", r"list[\1]", klass))
        return super()._ApiClient__deserialize(data, klass)


@contextmanager
def client_for(configuration: client.Configuration, namespace: str) -> Iterator[KatibClient]:
    """Katib's client for the user ``configuration`` names, in ``namespace``, with the two
    shims (:class:`ModelBodies`, :class:`TypeNames`); closed on the way out. The SDK's reads ask
    for ``async_req``, which starts a pool of four threads in the kubernetes client, held past
    its collection by the exit hook the client registers: left open, each test's stayed running
    in its test process to its end."""
    sdk = KatibClient(client_configuration=configuration, namespace=namespace)
    kubernetes_client = sdk.custom_api.api_client
    sdk.custom_api = ModelBodies(kubernetes_client)
    sdk.api_client = TypeNames()
    try:
        yield sdk
    finally:
        kubernetes_client.close()
