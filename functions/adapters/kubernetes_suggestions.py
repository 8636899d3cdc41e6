"""Katib's Suggestion resources on Kubernetes, for
:class:`~functions.adapters.kubernetes_resources.KubernetesResources`: the Suggestion of an
Experiment made what :mod:`functions.core.katib_suggestion` computes, each write guarded.

The Suggestion is read first and what it should be computed only then, from the store; its spec
and its status are then written by JSON patches whose first operation tests the
resourceVersion read, which the API refuses whole (422) where another write landed in between:
the Suggestion is read and computed again. So of two reports at once, the one computed earlier
never lands last (a ``Running`` Suggestion over a ``Succeeded`` one), and a part already as
computed is not written (a report made again costs one read). A Suggestion an earlier
Experiment of the same name left (its owner deleted, the garbage collector not done yet) is
deleted and made anew; one katuna did not make for an Experiment of that name is left, and so
said (:class:`~functions.core.errors.PermanentError`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from functions.adapters.kubernetes_client import call, delete_options, read_or_none
from functions.core.errors import PermanentError, TemporaryError
from functions.core.katib_suggestion import PLURAL
from functions.core.katib_trials import holder
from functions.core.naming import EARLIER, OTHER
from functions.core.resources import Ref

JSON_PATCH = "application/json-patch+json"
WRITE_TRIES = 5
"""Reads and writes of a Suggestion tried before giving up (a TemporaryError: the report is
made again), each one overtaken by another write after it was read."""


class Suggestions:
    """The Suggestions of Katib Experiments, through the custom objects API ``objects`` gives."""

    def __init__(self, objects: Callable[[], client.CustomObjectsApi]) -> None:
        self._objects = objects

    def put(self, owner: Ref, uid: str, wanted: Callable[[], Mapping[str, Any]]) -> None:
        """Make the Suggestion of the Experiment at ``owner`` with ``uid`` what ``wanted()``
        computes (a resource with its spec and status), called after the Suggestion was read."""
        for _ in range(WRITE_TRIES):
            found = self._read(owner)
            if found is None:
                found = self._create(owner, wanted())
                if found is None:
                    continue
            whose = holder(found, owner.name, uid)
            if whose == OTHER:
                raise PermanentError(f"the Suggestion {owner.name} in namespace {owner.namespace} exists and is no "
                                     f"Suggestion of an Experiment named {owner.name}: katuna leaves it; delete or "
                                     "rename it")
            if whose == EARLIER:
                self._delete(owner, found["metadata"]["uid"])
                continue
            if self._write(owner, found, wanted()):
                return
        raise TemporaryError(f"the Suggestion of {owner} was changed by another writer under each of {WRITE_TRIES} "
                             "writes")

    def _read(self, owner: Ref) -> Mapping[str, Any] | None:
        return read_or_none(partial(self._objects().get_namespaced_custom_object, owner.group, owner.version,
                                    owner.namespace, PLURAL, owner.name), f"read the Suggestion of {owner}")

    def _create(self, owner: Ref, suggestion: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Create the Suggestion without its status (the API drops a status given to a create):
        the Suggestion made; None when the name was taken in between (409)."""
        body = {key: value for key, value in suggestion.items() if key != "status"}
        return call(lambda: self._objects().create_namespaced_custom_object(
            owner.group, owner.version, owner.namespace, PLURAL, body), f"create the Suggestion of {owner}",
            tolerate=(409,))

    def _write(self, owner: Ref, found: Mapping[str, Any], suggestion: Mapping[str, Any]) -> bool:
        """Write the spec, then the status, where each differs from what was ``found``, each over
        the resourceVersion the last answer gave; False when another write came in between (or
        the Suggestion went). A patch refused (422) while the Suggestion is still at that
        version was refused for itself, not for the test: permanent."""
        version = found["metadata"]["resourceVersion"]
        for part, patch in (("spec", self._objects().patch_namespaced_custom_object),
                            ("status", self._objects().patch_namespaced_custom_object_status)):
            if found.get(part) == suggestion[part]:
                continue
            operations = [{"op": "test", "path": "/metadata/resourceVersion", "value": version},
                          {"op": "add", "path": f"/{part}", "value": suggestion[part]}]
            doing = f"write the {part} of the Suggestion of {owner}"
            try:
                written = call(partial(patch, owner.group, owner.version, owner.namespace, PLURAL, owner.name,
                                       operations, _content_type=JSON_PATCH), doing, tolerate=(404, 409))
            except PermanentError as exc:
                refused = exc.__cause__
                if isinstance(refused, ApiException) and refused.status == 422 and not self._at(owner, version):
                    return False
                raise
            if written is None:
                return False
            version = written["metadata"]["resourceVersion"]
        return True

    def _at(self, owner: Ref, version: str) -> bool:
        """Whether the Suggestion is still at resourceVersion ``version``."""
        return ((self._read(owner) or {}).get("metadata") or {}).get("resourceVersion") == version

    def _delete(self, owner: Ref, uid: str) -> None:
        """Delete the Suggestion while ``uid`` is its uid; one gone already, or replaced since
        (409), is left."""
        call(lambda: self._objects().delete_namespaced_custom_object(owner.group, owner.version, owner.namespace,
                                                                     PLURAL, owner.name, body=delete_options(uid)),
             f"delete the Suggestion of {owner}", tolerate=(404, 409))

