"""Custom resources of the operators a test installs (their CustomResourceDefinitions): the API
server's side of create, get, list, watch, patch and delete, with its wording.

A kind is served only once a test installs its operator (:meth:`Workloads.install`); before,
every request for it is the API's 404 for a path it does not route (:data:`kube_standin.server.ROUTE_NOT_FOUND`). A
created object gets a uid, a creation time and a generation. It is taken against its CRD's
schema (:mod:`kube_standin.operator_schemas`) as the API server takes it: a field the schema
does not list is refused (400, ``fieldValidation=Strict``), warned of (``Warn``, the default) or
dropped silently (``Ignore``), and dropped from what is stored; a label the API server (or, in a
pod template, the kind's controller) would refuse, or a value the schema refuses (a wrong type,
a missing required field), is 422 Invalid; one its operator's
webhook denies (:mod:`kube_standin.webhooks`) is 403 Forbidden; a duplicate name is 409
AlreadyExists; a delete whose preconditions do not hold is 409 Conflict; deleting one deletes
what it owns (pods, Jobs and their pods), as the garbage collector does for custom resources,
whose default propagation is ``Background`` (``Orphan`` leaves them, their owner reference
removed).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from kube_standin import patches, webhooks
from kube_standin.objects import (
    DNS_SUBDOMAIN,
    AlreadyExists,
    already_exists,
    deletes_nothing,
    invalid,
    not_found,
    snapshot,
    status,
    unmet_precondition,
)
from kube_standin.operator_schemas import schema
from kube_standin.operators import TRAINING
from kube_standin.server import ROUTE_NOT_FOUND, Call, Kind
from kube_standin.structural import Refused, admitted
from kube_standin.validation import nested_metadata_problems


@dataclass(frozen=True)
class Crd:
    """One CustomResourceDefinition: where it is served and what it is called."""

    group: str
    versions: tuple[str, ...]
    plural: str
    kind: str

    @property
    def schema(self) -> dict | None:
        """The CRD's structural schema at its first version; None where it keeps every field."""
        return schema(f"{self.group}/{self.versions[0]}", self.kind)

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}"

    def as_kind(self) -> Kind:
        return Kind(self.kind, f"{self.group}/{self.versions[0]}")


OPERATORS: dict[str, tuple[Crd, ...]] = {
    "training-operator": tuple(Crd("kubeflow.org", ("v1",), kind.lower() + "s", kind)
                               for kind in TRAINING),
    "trainer": (Crd("trainer.kubeflow.org", ("v1alpha1",), "trainjobs", "TrainJob"),
                Crd("jobset.x-k8s.io", ("v1alpha2",), "jobsets", "JobSet")),
    "jobset": (Crd("jobset.x-k8s.io", ("v1alpha2",), "jobsets", "JobSet"),),
    "argo": (Crd("argoproj.io", ("v1alpha1",), "workflows", "Workflow"),),
    "tekton": (Crd("tekton.dev", ("v1", "v1beta1"), "pipelineruns", "PipelineRun"),),
}
"""The kinds each operator's installation serves (Trainer runs its TrainJobs as JobSets)."""


class Workloads:
    """The served kinds and their objects (a mixin of :class:`kube_stub.KubeStub`, under its lock)."""

    crds: dict[tuple[str, str], Crd]
    kinds: dict[tuple[str, str], Kind]
    workloads: dict[tuple[str, str, str], dict]

    def served(self, group: str, resource: str) -> Kind | None:
        """The kind at ``group``/``resource``: one the API serves of its own or by an installed
        overlay (``kinds``), or an installed operator's custom resource."""
        crd = self.crds.get((group, resource))
        return crd.as_kind() if crd is not None else self.kinds.get((group, resource))

    def resource_of(self, group: str, kind: str) -> str | None:
        """The resource the API serves objects of ``kind`` in ``group`` at, None where it serves none."""
        with self.lock:  # type: ignore[attr-defined]
            served = [*((c.group, c.plural, c.kind) for c in self.crds.values()),
                      *((g, resource, k.kind) for (g, resource), k in self.kinds.items())]
        return next((resource for g, resource, named in served if (g, named) == (group, kind)), None)

    def install(self, operator: str) -> None:
        """Install an operator: its CRDs are served and its controller runs."""
        with self.lock:  # type: ignore[attr-defined]
            for crd in OPERATORS[operator]:
                self.crds[(crd.group, crd.plural)] = crd
            self.operators.add(operator)  # type: ignore[attr-defined]

    def serve_workload(self, call: Call, version: str) -> tuple[int, dict | str]:
        crd = self.crds[(call.group, call.resource)]
        namespace = call.namespace or ""
        if version not in crd.versions:
            return 404, ROUTE_NOT_FOUND
        with self.lock:  # type: ignore[attr-defined]
            if call.method == "POST":
                return self._create_workload(crd, namespace, call.body or {}, version, call.dry_run,
                                             call.query.get("fieldValidation"), call.warnings)
            if call.method == "DELETE" and call.name:
                options = call.delete_options()
                policy = options.get("propagationPolicy") or "Background"
                return self.delete_workload(crd, namespace, call.name, policy, options)
            if call.method == "PATCH" and call.name and not call.subresource:
                return self.patch_workload(crd, namespace, call.name, call)
            if call.method == "GET" and not call.subresource:
                return self.read(call.resource, namespace, call.name, call.query.get("labelSelector"),  # type: ignore[attr-defined]
                                 call.query.get("limit"), call.query.get("continue"), call.query.get("fieldSelector"))
        return 405, status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _create_workload(self, crd: Crd, namespace: str, body: dict, version: str, dry_run: bool = False,
                         directive: str | None = None, warnings: list[str] | None = None) -> tuple[int, dict]:
        """Create a workload of ``crd``'s kind, its fields the schema does not list taken as
        ``directive`` (the request's ``fieldValidation``) says, what the API warns of put in
        ``warnings``; a ``dry_run`` is checked and answered alike, and stores nothing (its
        operator never sees it)."""
        name = (body.get("metadata") or {}).get("name", "")
        if namespace not in self.namespaces:  # type: ignore[attr-defined]
            return not_found("namespaces", namespace)
        if body.get("kind") != crd.kind or body.get("apiVersion") != f"{crd.group}/{version}":
            return 400, status(400, "BadRequest", f"the API version in the data ({body.get('apiVersion')}) does not "
                                                  f"match the expected API version ({crd.group}/{version})")
        if crd.schema is not None:
            try:
                body, warned = admitted(crd.schema, body, crd.qualified, directive)
            except Refused as refused:
                return refused.code, refused.body
            if warnings is not None:
                warnings.extend(warned)
        if not DNS_SUBDOMAIN.match(name or "") or len(name) > 253:
            return invalid(crd.kind, crd.qualified, name, [("metadata.name", f'Invalid value: "{name}": a lowercase '
                                                            "RFC 1123 subdomain must consist of lower case "
                                                            "alphanumeric characters, '-' or '.'")])
        causes = nested_metadata_problems(body)
        if causes:
            return invalid(crd.kind, crd.qualified, name, causes)
        denied = webhooks.denial(body)
        if denied is not None:
            return denied
        key = (crd.plural, namespace, name)
        if key in self.workloads:
            return already_exists(crd.qualified, name)
        obj = snapshot(body)
        obj["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), generation=1, creationTimestamp=self.clock.stamp())
        if dry_run:
            return 201, obj
        self.workloads[key] = obj
        self.created.append(name)  # type: ignore[attr-defined]
        self.history.record("ADDED", crd.plural, obj)  # type: ignore[attr-defined]
        return 201, snapshot(obj)

    def patch_workload(self, crd: Crd, namespace: str, name: str, call: Call) -> tuple[int, dict]:
        """A merge or JSON patch of a workload, as one of katuna's custom resources is patched
        (:func:`kube_standin.patches.updated`): decoded and held to its kind's schema (a field
        the schema lacks refused, warned of or pruned as the ``fieldValidation`` says) and to its
        identity and version, with its status and system metadata as stored; a new generation
        where anything but its metadata changed, nothing written where nothing did, nor for a
        dry run, answered alike."""
        current = self.workloads.get((crd.plural, namespace, name))
        if current is None:
            return not_found(crd.qualified, name)
        try:
            new, warned = patches.updated(crd.schema, current, call.body, call.content_type,
                                          call.query.get("fieldValidation"), crd.qualified, "")
        except Refused as refused:
            return refused.code, refused.body
        call.warnings.extend(warned)
        if new == current or call.dry_run:
            return 200, snapshot(new)
        current.clear()
        current.update(new)
        self.history.record("MODIFIED", crd.plural, current)  # type: ignore[attr-defined]
        return 200, snapshot(current)

    def add_workload(self, plural: str, obj: dict) -> dict:
        """Create a custom resource a controller makes (a TrainJob's JobSet), as the API creates
        it: refused (:class:`AlreadyExists`, nothing stored) where one of its kind holds the name."""
        crd = next(c for c in self.crds.values() if c.plural == plural)
        key = (plural, obj["metadata"]["namespace"], obj["metadata"]["name"])
        if key in self.workloads:
            raise AlreadyExists(crd.qualified, key[2])
        obj["metadata"].update(generation=1, creationTimestamp=self.clock.stamp())
        self.workloads[key] = obj
        self.history.record("ADDED", plural, obj)  # type: ignore[attr-defined]
        return obj

    def delete_workload(self, crd: Crd, namespace: str, name: str, policy: str,
                        options: dict | None = None) -> tuple[int, dict]:
        """Delete a workload with what it owns; a precondition of ``options`` that does not hold
        is a 409 conflict, and deletes nothing; so does a dry run, answered as done."""
        obj = self.workloads.get((crd.plural, namespace, name))
        unmet = unmet_precondition(crd.kind, crd.group, obj, options or {}) if obj is not None else None
        if unmet is None and obj is not None and deletes_nothing(options or {}):
            return 200, _workload_deleted(crd, obj)
        self.deleted.append((namespace, name, policy))  # type: ignore[attr-defined]
        if obj is None:
            return not_found(crd.qualified, name)
        if unmet is not None:
            return unmet
        del self.workloads[(crd.plural, namespace, name)]
        self.release(obj, policy)
        self.history.record("DELETED", crd.plural, obj)  # type: ignore[attr-defined]
        return 200, _workload_deleted(crd, obj)

    def release(self, owner: dict, policy: str) -> None:
        """What ``owner`` owns goes with it (``Background``/``Foreground``), or is orphaned."""
        uid = owner["metadata"]["uid"]
        for table, resource in ((self.workloads, None), (self.jobs, "jobs"), (self.pods, "pods")):  # type: ignore[attr-defined]
            for child in [o for o in table.values() if _owned_by(o, uid)]:
                if policy in ("Background", "Foreground"):
                    self._remove_child(child, resource)
                else:
                    child["metadata"]["ownerReferences"] = [r for r in child["metadata"]["ownerReferences"]
                                                            if r.get("uid") != uid]

    def _remove_child(self, child: dict, resource: str | None) -> None:
        meta = child["metadata"]
        if resource == "pods":
            self.delete_pod(child)  # type: ignore[attr-defined]
        elif resource == "jobs":
            self.remove_job(meta["namespace"], meta["name"], "Background")  # type: ignore[attr-defined]
        else:
            crd = next(c for c in self.crds.values() if c.kind == child["kind"])
            self.delete_workload(crd, meta["namespace"], meta["name"], "Background")


def _workload_deleted(crd: Crd, obj: dict) -> dict:
    """The Status the API server answers a workload's delete with."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": obj["metadata"]["name"], "group": crd.group, "kind": crd.plural,
                        "uid": obj["metadata"]["uid"]}}


def _owned_by(obj: dict, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
