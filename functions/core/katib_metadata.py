"""A Katib Experiment's ``metadata``: the name, labels and annotations katuna reads, checked as
Katib's webhook and the API server check them, and katuna's own annotations, its node pool
(JSON or YAML, where a resource's schema has no place for a ``nodePool`` block) and the typed
fields of a trial template read from a ConfigMap."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from functions.core import bounded_yaml, labels
from functions.core.errors import Problem
from functions.core.katib_paths import (
    ANNOTATION_FIELD,
    NODE_POOL_ANNOTATION,
    TYPED_FIELDS_ANNOTATION,
    TYPED_FIELDS_FIELD,
)
from functions.core.katib_search import is_count
from functions.core.limits import Limits
from functions.core.nodepool import parse_node_pool
from functions.core.reader import Reader


def document_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata of an Experiment that katuna reads: name, namespace, its labels (which
    Katib gives its Trials and their pods: :func:`~functions.core.katib_trials.experiment_labels`)
    and katuna's own annotation (not the others: kubectl's copy of the last applied object, say,
    which Katib carries nowhere)."""
    out = {"name": metadata.get("name"), "namespace": metadata.get("namespace")}
    if isinstance(metadata.get("labels"), Mapping) and metadata["labels"]:
        out["labels"] = dict(metadata["labels"])
    annotated = annotated_pool(metadata)
    if annotated is not None:
        out["annotations"] = {NODE_POOL_ANNOTATION: annotated}
    return out


def label_problems(metadata: Mapping[str, Any]) -> list[Problem]:
    """The Experiment's ``metadata.labels`` the API server would refuse (a file given to
    ``katuna run`` was never checked by one), and those of katuna's own prefix: Katib gives
    them to every pod of its trials, where katuna's select the pods of each attempt (and
    ``katuna.dev/client`` admits a pod to the service), so they are refused rather than left
    to lose to katuna's own or to take their place."""
    given = metadata.get("labels")
    if not isinstance(given, Mapping):
        return []
    found = labels.problems(given, "metadata.labels")
    return found + [Problem(f"metadata.labels.{key}", labels.OWN_PREFIX_EXPECTED) for key in sorted(given)
                    if isinstance(key, str) and key.startswith(labels.OWN_PREFIX)] + [
        Problem(f"metadata.labels.{key}", JOB_SELECTING_EXPECTED) for key in sorted(given) if key in JOB_SELECTING]


JOB_SELECTING = frozenset({"job-name", "controller-uid", "batch.kubernetes.io/job-name",
                           "batch.kubernetes.io/controller-uid"})
"""The pod labels by which a Job's pods are its own, which the API server gives a Job's pod
template itself and refuses there at any other value (``validateGeneratedSelector``: ``must be
'<job name>'``): an Experiment's label of such a key, which katuna puts on its trials' pod
templates, would have every trial's Job refused, where Katib's pod webhook sets it on each pod
after the Job made it."""
JOB_SELECTING_EXPECTED = ("expected a label of another key: the API server gives each trial's Job pod template this "
                          "label (the Job's name or uid, which select its pods) and refuses any other value there")


def annotated_pool(metadata: Mapping[str, Any]) -> Any:
    """The raw value of the node-pool annotation, or None."""
    annotations = metadata.get("annotations")
    return annotations.get(NODE_POOL_ANNOTATION) if isinstance(annotations, Mapping) else None


def check_name(name: Any, problems: list[Problem]) -> None:
    """Katib's webhook: a name starts with a lower-case letter and has at most 40 characters
    (its trials' names and labels derive from it)."""
    if isinstance(name, str) and (len(name) > 40 or not name[:1].islower()):
        problems.append(Problem("metadata.name", f"expected at most 40 characters starting with a lower-case letter, got {name!r}"))


def node_pool(data: Mapping[str, Any], parallelism: Any, problems: list[Problem], limits: Limits) -> Any:
    """The Experiment's ``nodePool`` block: beside its spec in a document, or (in a resource,
    whose schema has no place for it) in the ``katuna.dev/node-pool`` annotation, checked here
    so that problems name the annotation's fields."""
    metadata = data.get("metadata") or {}
    raw, given = annotated_pool(metadata), data.get("nodePool")
    if raw is None:
        return given
    if given is not None:
        problems.append(Problem("nodePool", f"given twice, here and in {ANNOTATION_FIELD}; keep one"))
        return None
    block = _annotation_block(raw, problems)
    if block is not None:
        r = Reader()
        parse_node_pool(r, block, metadata.get("name"), parallelism if is_count(parallelism) else None, limits)
        problems += [Problem(ANNOTATION_FIELD + p.path.removeprefix("nodePool"), p.message) for p in r.problems]
    return block


def typed_fields(metadata: Mapping[str, Any], problems: list[Problem]) -> Any:
    """The paths of :data:`TYPED_FIELDS_ANNOTATION` (JSON), which katuna sets on the Experiment
    it stores after reading its trial template from a ConfigMap; each is checked as the native
    ``typedFields``."""
    annotations = metadata.get("annotations")
    raw = annotations.get(TYPED_FIELDS_ANNOTATION) if isinstance(annotations, Mapping) else None
    if raw is None:
        return None
    try:
        return json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError) as exc:
        problems.append(Problem(TYPED_FIELDS_FIELD, f"expected a JSON list of paths into the trialSpec: {exc}"))
        return None


def _annotation_block(raw: Any, problems: list[Problem]) -> Mapping[str, Any] | None:
    """The node-pool annotation's text as a mapping, or None with a problem saying what it should be."""
    expected = "expected the nodePool block (provider, machineType or instanceTypes, maxNodes, ...) as JSON or YAML"
    if not isinstance(raw, str):
        problems.append(Problem(ANNOTATION_FIELD, f"{expected}, in a string"))
        return None
    try:
        block = bounded_yaml.load(raw)
    except yaml.YAMLError as exc:
        problems.append(Problem(ANNOTATION_FIELD, f"{expected}: {exc}"))
        return None
    if not isinstance(block, Mapping):
        problems.append(Problem(ANNOTATION_FIELD, f"{expected}, a mapping"))
        return None
    return block
