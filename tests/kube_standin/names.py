"""The API server's rules for names in object metadata and pod specs (``IsQualifiedName``,
``IsValidLabelValue``, ``ValidateLabels``), worded as it words its refusals."""

from __future__ import annotations

import json
import re

from kube_standin.objects import DNS_SUBDOMAIN

LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
NAME_FORMAT = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
               "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
               "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
VALUE_FORMAT = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
SUBDOMAIN_FORMAT = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


def object_name_problems(name: str) -> list[tuple[str, str]]:
    """The API server's refusal of an object's ``metadata.name`` that is missing or no DNS
    subdomain (``NameIsDNSSubdomain``: a ConfigMap's, a Secret's, a claim's)."""
    if not name:
        return [("metadata.name", "Required value: name or generateName is required")]
    if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        return [("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                                  "case alphanumeric characters, '-' or '.'")]
    return []


def label_problems(labels: object, path: str) -> list[tuple[str, str]]:
    """What ``ValidateLabels`` refuses of the labels at ``path``: keys that are no qualified
    name (a name of at most 63 characters, with an optional DNS subdomain prefix of at most
    253 and '/'), values over 63 characters or of other characters."""
    if not isinstance(labels, dict):
        return []
    problems = []
    for key, value in labels.items():
        problems += [(path, f"Invalid value: {json.dumps(key)}: {why}") for why in qualified_name_problems(key)]
        problems += [(path, f"Invalid value: {json.dumps(value)}: {why}") for why in label_value_problems(value)]
    return problems


ANNOTATIONS_LIMIT = 256 * 1024
"""Bytes all of an object's annotations may hold, keys and values (``TotalAnnotationSizeLimitB``)."""


def metadata_problems(metadata: object, path: str) -> list[tuple[str, str]]:
    """What ``ValidateObjectMeta`` refuses of the labels and annotations of the object
    ``metadata`` at ``path``: ``metadata``, or a pod template (``spec.template``, whose
    ``ValidatePodTemplateSpec`` names them ``spec.template.labels``, not under its ``metadata``)."""
    if not isinstance(metadata, dict):
        return []
    return (label_problems(metadata.get("labels"), f"{path}.labels")
            + annotation_problems(metadata.get("annotations"), f"{path}.annotations"))


def annotation_problems(annotations: object, path: str) -> list[tuple[str, str]]:
    """What ``ValidateAnnotations`` refuses: keys that are no qualified name once lower-cased
    (their case does not matter), and more than :data:`ANNOTATIONS_LIMIT` bytes in all."""
    if not isinstance(annotations, dict):
        return []
    problems = [(path, f"Invalid value: {json.dumps(key)}: {why}")
                for key in annotations for why in qualified_name_problems(str(key).lower())]
    size = sum(len(str(key).encode()) + len(str(value).encode()) for key, value in annotations.items())
    if size > ANNOTATIONS_LIMIT:
        problems.append((path, f"Too long: may not be more than {ANNOTATIONS_LIMIT} bytes"))
    return problems


def finalizer_problems(finalizers: object) -> list[tuple[str, str]]:
    """What ``ValidateFinalizers`` refuses of ``metadata.finalizers``: a name that is no
    qualified name, or both ``orphan`` and ``foregroundDeletion`` (which ask for opposite deletions)."""
    if not isinstance(finalizers, list):
        return []
    problems = [("metadata.finalizers", f"Invalid value: {json.dumps(name)}: {why}")
                for name in finalizers for why in qualified_name_problems(str(name))]
    if {"orphan", "foregroundDeletion"} <= set(finalizers):
        shown = ", ".join(json.dumps(str(name)) for name in finalizers)
        problems.append(("metadata.finalizers", f"Invalid value: []string{{{shown}}}: finalizer orphan and "
                                                "foregroundDeletion cannot be both set"))
    return problems


def label_value_problems(value: object) -> list[str]:
    """Why ``value`` is no label value, as ``IsValidLabelValue`` words it."""
    if not isinstance(value, str) or (value and not LABEL_VALUE.match(value)):
        return [VALUE_FORMAT]
    return ["must be no more than 63 characters"] if len(value) > 63 else []


def qualified_name_problems(key: str) -> list[str]:
    """Why ``key`` is no qualified name, as ``IsQualifiedName`` words it."""
    parts = key.split("/")
    if len(parts) > 2:
        return [f"a qualified name {NAME_FORMAT} with an optional DNS subdomain prefix and '/' (e.g. "
                "'example.com/MyName')"]
    problems = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        elif len(prefix) > 253:
            problems.append("prefix part must be no more than 253 characters")
        elif not DNS_SUBDOMAIN.match(prefix):
            problems.append(f"prefix part {SUBDOMAIN_FORMAT}")
    name = parts[-1]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if name and not LABEL_NAME.match(name):
        problems.append(f"name part {NAME_FORMAT}")
    return problems
