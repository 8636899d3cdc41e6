"""Katib's Trial resources on Kubernetes, for
:class:`~functions.adapters.kubernetes_resources.KubernetesResources`: each Trial's status
written only while its owner is the Experiment writing it, a Trial an earlier Experiment of the
same name left replaced, and a Trial deleted only where it is the Experiment's own.

Trial names carry no uid (``<experiment>-<number>``), so an Experiment deleted and applied again
under its name meets the first one's Trials until the garbage collector deletes them. The
collector acts once it sees their owner gone: within a second on a quiet control plane, later
on a busy one, and never for Trials orphaned by ``kubectl delete --cascade=orphan``. A merge
patch of the status would be taken by the old Trial (its spec, its owner), and the collector
would then delete it, the new Experiment's results with it. So a write is a JSON patch whose
first operation tests the Trial's owner uid: the API refuses the whole patch (422) where the
Trial is another's, and only then is the Trial read, to be replaced or refused
(:func:`functions.core.katib_trials.holder`). A write costs one request where the Trial is the
Experiment's, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from functions.adapters.kubernetes_client import call, delete_options, read_or_none
from functions.core.errors import PermanentError, TemporaryError
from functions.core.katib_trials import PLURAL, holder, owner_uid
from functions.core.naming import OTHER, OWN
from functions.core.resources import Ref

JSON_PATCH = "application/json-patch+json"


class Trials:
    """The Trials of Katib Experiments, through the custom objects API ``objects`` gives;
    ``is_current`` tells whether the resource at a ref is still the one with a uid."""

    def __init__(self, objects: Callable[[], client.CustomObjectsApi], is_current: Callable[[Ref, str], bool]) -> None:
        self._objects = objects
        self._is_current = is_current

    def put(self, owner: Ref, trials: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        """Write each Trial given (a resource with its status, owned by the Experiment at
        ``owner``); the uid of each Trial written, by name. A Trial of an earlier Experiment of
        the same name that is not gone yet when the rest are written is a :class:`TemporaryError`:
        the report is made again."""
        held, written = [], {}
        for trial in trials:
            name = trial["metadata"]["name"]
            uid = call(partial(self._put, owner, trial), f"write the Trial {name} of {owner}")
            if uid is None:
                held.append(name)
            elif uid:
                written[name] = uid
        if held:
            raise TemporaryError(f"the Trials {', '.join(held)} of an earlier {owner.kind} named {owner.name} are "
                                 f"being deleted; those of {owner} are written once they are gone")
        return written

    def _put(self, owner: Ref, trial: Mapping[str, Any]) -> str | None:
        """Write one Trial's status, creating the Trial where none holds its name: the Trial's
        uid; None while one of an earlier Experiment of the same name holds it still, empty when
        the Experiment is gone and nothing was written."""
        try:
            return self._write(owner, trial)
        except ApiException as exc:
            if exc.status == 422:
                return self._replace(owner, trial, exc)
            if exc.status != 404:
                raise
        return self._create(owner, trial)

    def _write(self, owner: Ref, trial: Mapping[str, Any]) -> str:
        """Replace the Trial's status, only while its owner is the Experiment: the patch's first
        operation tests the owner uid (the first ownerReference, as katuna makes Trials). The
        Trial's uid, as the API answers."""
        patch = [{"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": owner_uid(trial)},
                 {"op": "add", "path": "/status", "value": trial["status"]}]
        written = self._objects().patch_namespaced_custom_object_status(
            owner.group, owner.version, owner.namespace, PLURAL, trial["metadata"]["name"], patch,
            _content_type=JSON_PATCH)
        return str(((written or {}).get("metadata") or {}).get("uid") or "")

    def _replace(self, owner: Ref, trial: Mapping[str, Any], refused: ApiException) -> str | None:
        """After the guarded write was refused (422): the Trial holding the name is read. One of
        an earlier Experiment of the same name is deleted and the Trial made anew; the
        Experiment's own was refused for another reason, which is raised; anything else is
        refused for good and left alone. A writer whose Experiment is itself gone (a late
        report of a deleted one) writes nothing and deletes nothing (empty: no uid)."""
        name, uid = trial["metadata"]["name"], owner_uid(trial)
        found = self._read(owner, name)
        if found is None:
            return self._create(owner, trial)
        whose = holder(found, owner.name, uid)
        if whose == OWN:
            raise refused
        if whose == OTHER:
            raise PermanentError(f"the Trial {name} in namespace {owner.namespace} exists and is no Trial of an "
                                 f"Experiment named {owner.name}: katuna leaves it; delete or rename it")
        if not self._is_current(owner, uid):
            return ""
        self._delete(owner, name, found["metadata"]["uid"])
        return self._create(owner, trial)

    def _create(self, owner: Ref, trial: Mapping[str, Any]) -> str | None:
        """Create the Trial (the API drops a status given to a create) and write its status: its
        uid; None when the name is still held by a Trial not the Experiment's (one being deleted)."""
        try:
            self._objects().create_namespaced_custom_object(owner.group, owner.version, owner.namespace, PLURAL,
                                                            {k: v for k, v in trial.items() if k != "status"})
        except ApiException as exc:
            if exc.status != 409:
                raise
        try:
            return self._write(owner, trial)
        except ApiException as exc:
            if exc.status in (404, 422):
                return None
            raise

    def _read(self, owner: Ref, name: str) -> Mapping[str, Any] | None:
        """The Trial ``name`` in the Experiment's namespace, whoever's it is; None when there is none."""
        return read_or_none(partial(self._objects().get_namespaced_custom_object, owner.group, owner.version,
                                    owner.namespace, PLURAL, name), f"read the Trial {name} of {owner}")

    def delete(self, owner: Ref, uid: str, names: Sequence[str]) -> None:
        """Delete each Trial named that is the Experiment's (``uid``); one not there, or another's
        (a later Experiment's of the same name, whose Trial took the name), is left."""
        for name in names:
            found = self._read(owner, name)
            if found is not None and holder(found, owner.name, uid) == OWN:
                self._delete(owner, name, found["metadata"]["uid"])

    def _delete(self, owner: Ref, name: str, uid: str) -> None:
        """Delete the Trial ``name`` while ``uid`` is its uid; one gone already, or replaced
        since (409), is left."""
        call(lambda: self._objects().delete_namespaced_custom_object(owner.group, owner.version, owner.namespace,
                                                                     PLURAL, name, body=delete_options(uid)),
             f"delete the Trial {name} of {owner}", tolerate=(404, 409))
