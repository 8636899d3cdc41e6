"""Studies as Kubernetes custom resources (``katuna.dev/v1`` Study and Experiment, and with
the Katib overlay Katib's own ``kubeflow.org/v1beta1`` Experiment and ``kubeflow.org/v1alpha1``
StudyJob): what a resource stands for, and which edits a running study takes. The status
written back is :mod:`functions.core.resource_status`'s.

A ``Study``'s ``spec`` is the native study format, an ``Experiment``'s a Katib ``v1beta1``
Experiment spec, a ``StudyJob``'s a Katib ``v1alpha1`` StudyJob spec; the resource's
``metadata.name`` names the study. The definition a resource stands for is exactly what
``POST /studies`` would receive, so both paths validate and store the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from functions.core import katib_defaults
from functions.core.errors import InvalidStudy, Problem
from functions.core.naming import MAX_NAME, is_label
from functions.core.records import StudyRecord
from functions.core.spec import Study

if TYPE_CHECKING:
    from functions.core.study_brief import StudyBrief

GROUP, VERSION = "katuna.dev", "v1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURALS = {"Study": "studies", "Experiment": "experiments", "StudyJob": "studyjobs"}
EDITABLE = {"Study": ("parallelism", "maxTrials", "maxFailedTrials"),
            "Experiment": ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount"),
            "StudyJob": ()}
"""The spec fields a running study takes edits of (Katib's editable fields), by kind."""

KATIB_GROUP = "kubeflow.org"
KATIB_API_VERSIONS = (f"{KATIB_GROUP}/v1beta1", f"{KATIB_GROUP}/v1alpha1")
"""Katib's API versions (its Experiment's and its StudyJob's: :mod:`functions.core.katib` and
:mod:`functions.core.studyjob`, imported only where one is read, as they need YAML), watched
only where the overlay is enabled (``KATUNA_KATIB_API``)."""

KINDS = {API_VERSION: ("Study", "Experiment"), KATIB_API_VERSIONS[0]: ("Experiment",),
         KATIB_API_VERSIONS[1]: ("StudyJob",)}
"""The kinds served under each API version: katuna's own, and Katib's (served by the overlay
``knative/katib-api`` on clusters that do not run Katib)."""

DELETED = "stopped: its resource was deleted"


@dataclass(frozen=True)
class Ref:
    """Where a resource lives: kind, namespace and name."""

    kind: str
    namespace: str
    name: str
    api_version: str = API_VERSION

    @property
    def plural(self) -> str:
        return PLURALS[self.kind]

    @property
    def group(self) -> str:
        return self.api_version.partition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.partition("/")[2]

    @property
    def katib(self) -> bool:
        """Whether this is one of Katib's own resources (``kubeflow.org``)."""
        return self.group == KATIB_GROUP

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" + (f" ({self.group})" if self.katib else "")


@dataclass(frozen=True)
class Origin:
    """The resource a stored study came from, and the last generation of it katuna handled.

    ``refused`` explains why that generation's spec was not applied (empty when it was);
    ``dropped`` says the study's workloads that ``retain`` kept were deleted once the resource
    was, ``checkpoints_dropped`` that its checkpoints on the cluster's claim were asked to be.
    """

    ref: Ref
    uid: str
    generation: int
    refused: str = ""
    refused_at: float | None = None
    dropped: bool = False
    checkpoints_dropped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.ref.kind, "namespace": self.ref.namespace, "name": self.ref.name, "uid": self.uid,
                "generation": self.generation, "refused": self.refused, "refusedAt": self.refused_at,
                "apiVersion": self.ref.api_version, "dropped": self.dropped,
                "checkpointsDropped": self.checkpoints_dropped}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Origin:
        """An origin as :meth:`to_dict` wrote it (stored before Katib's kinds: ``katuna.dev``)."""
        ref = Ref(raw["kind"], raw["namespace"], raw["name"], raw.get("apiVersion") or API_VERSION)
        return cls(ref, raw["uid"], raw["generation"], raw.get("refused") or "", raw.get("refusedAt"),
                   bool(raw.get("dropped")), bool(raw.get("checkpointsDropped")))

    def handled(self, generation: int, refused: str = "", now: float | None = None) -> Origin:
        return replace(self, generation=generation, refused=refused, refused_at=now if refused else None)

    def delete_refusal(self, study: str) -> str:
        """Why the study cannot be deleted on its own while this resource is there: the tick
        would find the resource unknown and submit it again, running every trial again."""
        ref = self.ref
        return (f"study {study!r} follows the {ref.kind} {ref.name!r} in namespace {ref.namespace!r} "
                f"({ref.api_version}), which katuna would submit again: delete that resource instead, with "
                f"kubectl delete {ref.plural}.{ref.group} {ref.name} -n {ref.namespace}; that stops the study, "
                f"which can then be deleted")

    def delete_through_service(self, study: str, watching: str) -> str:
        """:meth:`delete_refusal`, then how the study is deleted once the resource is gone: over
        the HTTP API of the service that watches ``watching`` (the cluster, or the study), which
        alone can tell that the resource is gone (``katuna delete`` refuses such a study)."""
        return f"{self.delete_refusal(study)} with DELETE /studies/{study} of the service that watches {watching}"


def name_taken(study: str, ref: Ref, holder: Ref | None) -> str:
    """Why the resource ``ref`` cannot have the study ``study``, which a study submitted over
    HTTP holds (``holder`` None), or the study of the resource ``holder``, which is there. Study
    names are shared by every namespace katuna serves; a ``holder`` of another namespace is not
    named, which the users of ``ref``'s namespace may not see."""
    if holder is None:
        taken = "submitted over the HTTP API or the CLI; rename this resource, or delete that study"
    elif holder.namespace != ref.namespace:
        taken = ("from a resource in another namespace (study names are shared by every namespace katuna "
                 "serves); rename this resource")
    else:
        taken = f"from {holder}; rename this resource, or delete that one"
    return f"a study named {study!r} already exists ({taken})"


QUALIFIER = "--"
"""Between a resource's name and its namespace in its qualified study name."""


def qualified_name(ref: Ref) -> str:
    """The study name of a resource whose own name a resource of another namespace holds:
    ``<name>--<namespace>``, a DNS-1123 label as every study name is; past 63 characters, its
    first characters, ``-`` and a hash of the namespace and name, the same for the resource
    every time. A name that is no label is the resource's own: it is refused as it is."""
    full = f"{ref.name}{QUALIFIER}{ref.namespace}"
    if not is_label(ref.name):
        return ref.name
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(f"{ref.namespace}/{ref.name}".encode()).hexdigest()[:8]
    return f"{full[:MAX_NAME - len(digest) - 1].rstrip('-')}-{digest}"


def origin_of(record: StudyRecord | StudyBrief | None) -> Origin | None:
    """The cluster resource a stored study follows, as its record keeps it; None for a study
    submitted any other way, or none stored."""
    return None if record is None or record.origin is None else Origin.from_dict(record.origin)


def is_resource(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` is one of katuna's own resources (``katuna.dev``)."""
    return obj.get("apiVersion") == API_VERSION and obj.get("kind") in KINDS[API_VERSION]


def description(definition_: Mapping[str, Any]) -> str | None:
    """The ``description`` a stored definition gives its study: a native study's, or that of a
    katuna.dev resource's spec (a Katib document has none). Free text katuna keeps and shows
    but never reads; it is no part of the normalised study, so it is read from the definition."""
    native = definition_.get("spec") if is_resource(definition_) else definition_
    given = native.get("description") if isinstance(native, Mapping) else None
    return given if isinstance(given, str) else None


def is_study_resource(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` is a resource that stands for a study: katuna's own, or Katib's."""
    return obj.get("kind") in KINDS.get(obj.get("apiVersion") or "", ())


def being_deleted(obj: Mapping[str, Any]) -> bool:
    """Whether the resource's deletion has begun: it has a ``deletionTimestamp`` and stays only
    while finalizers (another controller's, a foreground deletion's) hold it. Its study is then
    stopped as if it were gone, as Katib's controller does nothing more for an Experiment being
    deleted than take its own finalizer off, and no new study starts for it."""
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def ref_of(obj: Mapping[str, Any]) -> Ref:
    metadata = obj.get("metadata") or {}
    return Ref(obj["kind"], metadata.get("namespace") or "default", metadata.get("name") or "", obj["apiVersion"])


def definition(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The study definition a resource stands for, as ``POST /studies`` would receive it."""
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InvalidStudy([Problem("metadata", f"expected a mapping (name, namespace, labels, ...), got {metadata!r:.80}")])
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise InvalidStudy([Problem("spec", "required; expected a mapping")])
    from functions.core import katib, katib_metadata, studyjob

    if obj["kind"] == "Experiment":
        return {"apiVersion": katib.API_VERSION, "kind": "Experiment",
                "metadata": katib_metadata.document_metadata(metadata), "spec": dict(spec)}
    if obj["kind"] == "StudyJob":
        if spec.get("studyName") not in (None, metadata.get("name")):
            raise InvalidStudy([Problem("spec.studyName", f"expected the resource's name {metadata.get('name')!r} or "
                                                          f"nothing, got {spec['studyName']!r}")])
        return {"apiVersion": studyjob.API_VERSION, "kind": "StudyJob",
                "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace")}, "spec": dict(spec)}
    if spec.get("name") not in (None, metadata.get("name")):
        raise InvalidStudy([Problem("spec.name", f"expected the resource's name {metadata.get('name')!r} or nothing, "
                                                 f"got {spec['name']!r}")])
    return {**spec, "name": metadata.get("name")}


def namespace_problems(spec: Study, ref: Ref) -> list[Problem]:
    """A resource's trials run in the resource's own namespace, as Katib runs an Experiment's:
    whoever may create a resource in one namespace may not have katuna run trials, which could
    read that namespace's Secrets, in another. A ``kubernetes.namespace`` naming another is refused."""
    given = spec.kubernetes.namespace
    if given is None or given == ref.namespace:
        return []
    return [Problem("kubernetes.namespace", f"expected the resource's own namespace {ref.namespace!r} or nothing, "
                                            f"got {given!r}: a study resource's trials run in the namespace it is "
                                            f"applied in; to run trials in {given!r}, apply the resource there")]


def in_namespace(spec: Study, namespace: str | None) -> Study:
    """The study with its trials in ``namespace`` (a resource's own; None: the service's default)."""
    return replace(spec, kubernetes=replace(spec.kubernetes, namespace=namespace))


def spec_paths(kind: str, problems: Sequence[Problem]) -> list[Problem]:
    """Problems with paths into the resource: a Study's native fields live under ``spec``, its
    name is the resource's own."""
    if kind != "Study":
        return list(problems)
    return [Problem("metadata.name" if p.path == "name" else f"spec.{p.path}" if p.path else "spec", p.message)
            for p in problems]


def refused_fields(kind: str, stored: Mapping[str, Any], edited: Mapping[str, Any]) -> list[str]:
    """The spec fields an edit changes that a running study cannot take: an Experiment's
    compared as Katib's webhook compares them, each spec as Katib stores it, its defaults
    written in (:mod:`functions.core.katib_defaults`)."""
    before, after = _raw_spec(kind, stored), _raw_spec(kind, edited)
    if kind == "Experiment":
        changed = katib_defaults.changed_fields(before, after)
    else:
        changed = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    return [f"spec.{key}" for key in changed if key not in EDITABLE[kind]]


def _raw_spec(kind: str, definition_: Mapping[str, Any]) -> Mapping[str, Any]:
    if kind in ("Experiment", "StudyJob"):
        return definition_.get("spec") or {}
    return {k: v for k, v in definition_.items() if k != "name"}
