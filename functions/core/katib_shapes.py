"""The kind of value each field of a Katib Experiment holds, checked before it is translated.

Katib's CRD keeps no schema: its webhook decodes an Experiment into Go structs, so a string where
a list belongs (``additionalMetricNames: f1``) is refused by the field's path before anything
else is read. :data:`SHAPE` describes the fields the translation reads the same way, and
:func:`problems` names each field holding the wrong kind of value ("expected a list of strings,
got a string"), so no field is read character by character or in the wrong sense. Free-form
fields (the ``trialSpec``, a custom collector) are checked to be mappings only. A field
:data:`SHAPE` does not have is refused by its path (:func:`unknown_fields`): Katib's webhook
decodes leniently and drops it, so a misspelt ``algorithmSettings`` or ``metricsFormat`` would
run the Experiment without the settings or filter it meant to give.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from functions.core.errors import Problem
from functions.core.reader import is_int, kind_of

Shape = str | Mapping[str, "Shape"] | list["Shape"]
"""A kind (``"string"``, ``"scalar"``, ...), a mapping of known fields (``"*"``: any key) to
their shapes, or a one-item list: a list of values of that shape."""

_SETTINGS: Shape = [{"name": "string", "value": "scalar"}]
SHAPE: Shape = {
    "metadata": {"name": "string", "namespace": "string", "annotations": "mapping", "labels": "mapping"},
    "spec": {
        "objective": {"type": "string", "goal": "number", "objectiveMetricName": "string",
                      "additionalMetricNames": ["string"],
                      "metricStrategies": [{"name": "string", "value": "string"}]},
        "algorithm": {"algorithmName": "string", "algorithmSettings": _SETTINGS},
        "earlyStopping": {"algorithmName": "string", "algorithmSettings": _SETTINGS},
        "parallelTrialCount": "integer", "maxTrialCount": "integer", "maxFailedTrialCount": "integer",
        "resumePolicy": "string", "nasConfig": "mapping",
        "parameters": [{"name": "string", "parameterType": "string", "feasibleSpace": {
            "min": "scalar", "max": "scalar", "step": "scalar", "list": ["scalar"], "distribution": "string"}}],
        "trialTemplate": {
            "trialSpec": "mapping", "retain": "boolean", "primaryContainerName": "string",
            "primaryPodLabels": {"*": "string"}, "successCondition": "string", "failureCondition": "string",
            "configMap": {"configMapName": "string", "configMapNamespace": "string", "templatePath": "string"},
            "trialParameters": [{"name": "string", "reference": "string", "description": "string"}]},
        "metricsCollectorSpec": {
            "collector": {"kind": "string", "customCollector": "mapping"},
            "source": {"filter": {"metricsFormat": ["string"]},
                       "fileSystemPath": {"path": "string", "kind": "string", "format": "string"},
                       "httpGet": "mapping"}},
    },
}
"""The fields of an Experiment the translation reads, each with the kind of value it holds.
``scalar`` is a string, number or boolean (katuna takes ``min: 0.1`` as Katib takes ``"0.1"``)."""

_KINDS: dict[str, tuple[Callable[[Any], bool], str, str]] = {
    "string": (lambda v: isinstance(v, str), "a string", "strings"),
    "scalar": (lambda v: v is None or isinstance(v, (str, int, float)), "a string or number", "strings or numbers"),
    "integer": (is_int, "an integer", "integers"),
    "number": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number", "numbers"),
    "boolean": (lambda v: isinstance(v, bool), "true or false", "booleans"),
    "mapping": (lambda v: isinstance(v, Mapping), "a mapping", "mappings"),
}


def problems(experiment: Any) -> list[Problem]:
    """A problem for each field of ``experiment`` (a field left out or null is no problem) whose
    value is not of the kind :data:`SHAPE` gives it, named by its path."""
    return check(experiment, SHAPE, "")


def _expected(shape: Shape, plural: bool = False) -> str:
    """What a value of ``shape`` is, in words: ``a list of strings``, ``a mapping``."""
    if isinstance(shape, list):
        return "lists" if plural else f"a list of {_expected(shape[0], plural=True)}"
    _, one, many = _KINDS["mapping" if isinstance(shape, Mapping) else shape]
    return many if plural else one


def check(value: Any, shape: Shape, path: str) -> list[Problem]:
    """A problem for each part of ``value`` at ``path`` that is not of the kind ``shape`` gives it."""
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [_wrong(value, shape, path)]
        return [p for i, item in enumerate(value) for p in check(item, shape[0], f"{path}[{i}]")]
    if isinstance(shape, Mapping):
        if not isinstance(value, Mapping):
            return [_wrong(value, shape, path)]
        return [p for key, item in value.items() if item is not None and (key in shape or "*" in shape)
                for p in check(item, shape.get(key, shape.get("*", "mapping")), _join(path, str(key)))]
    return [] if _KINDS[shape][0](value) else [_wrong(value, shape, path)]


TRANSLATED = frozenset({"spec", "spec.objective", "spec.parameters[]", "spec.parameters[].feasibleSpace",
                        "spec.trialTemplate"})
"""The sections whose unknown fields the translation itself refuses (:mod:`katib`,
:mod:`katib_template`), left out of :func:`unknown_fields` so that each is told once."""


def unknown_fields(spec: Any) -> list[Problem]:
    """A problem for each field of the Experiment's ``spec``, below the sections the translation
    checks (:data:`TRANSLATED`), that Katib's types do not have: ``spec.algorithm.algorithmSetting``,
    ``...source.filter.metricFormat``, ``trialParameters[0].referance``. Katib's CRD keeps any
    field and its webhook ignores one it does not know, so the Experiment would run without what
    the field meant (the seed, the filter, the start step); katuna names it instead. The spec's
    shape is checked already (:func:`problems`)."""
    return _unknown(spec, SHAPE["spec"], "spec", "spec") if isinstance(SHAPE, Mapping) else []


DOCUMENT = ("apiVersion", "kind", "metadata", "nodePool", "spec", "status")
"""The top-level fields of an Experiment document: Katib's (``status`` as ``kubectl get -o yaml``
writes it, which neither Katib nor katuna reads from a submitted Experiment) and katuna's
``nodePool`` block."""


def unknown_document_fields(experiment: Mapping[str, Any]) -> list[Problem]:
    """A problem for each top-level field of an Experiment document that is none of
    :data:`DOCUMENT`: Katib's webhook decodes the Experiment into its types and drops such a
    field, so a misspelt ``nodePool`` (``nodepool``) would run the trials on no pool of their
    own, and a misspelt ``spec`` would be told as every field it holds missing."""
    return [Problem(str(key), f"unknown field; expected one of {', '.join(DOCUMENT)}")
            for key in experiment if key not in DOCUMENT]


def _unknown(value: Any, shape: Shape, path: str, section: str) -> list[Problem]:
    """Unknown fields of ``value`` at ``path`` and below; ``section`` is ``path`` with every
    list index written ``[]``."""
    if isinstance(shape, list) and isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _unknown(item, shape[0], f"{path}[{i}]", f"{section}[]")]
    if not isinstance(shape, Mapping) or not isinstance(value, Mapping) or "*" in shape:
        return []
    found = [] if section in TRANSLATED else [
        Problem(f"{path}.{key}", f"unknown field; expected one of {', '.join(sorted(shape))}")
        for key in value if key not in shape]
    return found + [p for key, item in value.items() if key in shape
                    for p in _unknown(item, shape[key], f"{path}.{key}", f"{section}.{key}")]


def _wrong(value: Any, shape: Shape, path: str) -> Problem:
    hint = LIST_AS_DISTRIBUTION if path.endswith(".feasibleSpace.distribution") and isinstance(value, list) else ""
    return Problem(path, f"expected {_expected(shape)}, got {kind_of(value)}{hint}")


LIST_AS_DISTRIBUTION = ("; a categorical or discrete parameter's values go in feasibleSpace.list (Katib's SDK "
                        "katib.search.categorical writes them here, and Katib's webhook cannot decode them either)")
"""What a list at ``feasibleSpace.distribution`` is meant to be: Katib's SDK 0.18 and 0.19 pass
``search.categorical``'s values to ``V1beta1FeasibleSpace`` positionally, as its first field."""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


NAMED_LISTS = ("objective.metricStrategies", "algorithm.algorithmSettings", "earlyStopping.algorithmSettings")
"""Lists of the Experiment's ``spec`` whose items Katib looks up by ``name``."""


def repeated_names(spec: Mapping[str, Any]) -> list[Problem]:
    """A problem at ``[i].name`` for each item of a :data:`NAMED_LISTS` list whose name an
    earlier item has: Katib reads one of the two (its Trial's objective value the first
    strategy, a suggestion service its settings in turn, the last winning), so which one counts
    would depend on who reads it. ``spec``'s shape is checked already (:func:`problems`)."""
    found = []
    for path in NAMED_LISTS:
        section, field = path.split(".")
        first: dict[str, int] = {}
        for i, item in enumerate((spec.get(section) or {}).get(field) or []):
            name = item.get("name") if isinstance(item, Mapping) else None
            if isinstance(name, str) and first.setdefault(name, i) < i:
                found.append(Problem(f"spec.{path}[{i}].name", f"{name!r} is given at [{first[name]}] already; "
                                                               "expected each name once"))
    return found


def unknown_keys(given: Any, known: set[str], path: str, problems: list[Problem]) -> None:
    """A problem for each key of ``given`` that Katib's schema has no field for."""
    if isinstance(given, Mapping):
        problems += [Problem(f"{path}.{key}", f"unknown field; expected one of {', '.join(sorted(known))}")
                     for key in given if key not in known]
