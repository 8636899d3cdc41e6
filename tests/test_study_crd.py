"""The ``studies.katuna.dev`` schema against katuna's own validator: every field, at every depth,
and every value of every enumerated field that ``parse_study`` accepts is one the CRD lets
through under kubectl's strict field validation, and the CRD lists nothing the validator refuses.

What the validator accepts is read from the validator itself: at each mapping of the studies
below, a field it does not know is added and its problem ("unknown field; expected one of ...")
names the fields it takes there; the enumerated values are the validator's own constants. So a
field or value added to the validator without the CRD (where a real API server would prune or
refuse it) fails here, and so does one the studies below forget to use.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from kube_stub import KubeStub
from test_resources import check, schema

from functions.core import pruners, samplers
from functions.core.errors import InvalidStudy
from functions.core.nodepool import CAPACITIES, PROVIDERS
from functions.core.parameters import DISTRIBUTIONS
from functions.core.spec import MAXIMIZE, MINIMIZE, STRATEGIES
from functions.core.validate import (
    COLLECTOR_FORMATS,
    COLLECTOR_KINDS,
    NON_FINITE_RULES,
    PARAMETER_TYPES,
    STEP_RULES,
    parse_study,
)

Path = tuple[str | int, ...]
"""Where a value sits in a study: keys and list positions."""

PROBE = "zzNotAField"
UNKNOWN = re.compile(r"unknown field; expected one of (.+)")

JOB = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
    "metadata": {"labels": {"role": "main"}},
    "spec": {"restartPolicy": "Never", "containers": [
        {"name": "trainer", "image": "python:3.12", "command": ["python", "train.py", "--x=${trialParameters.x}"]}]}}}}

COMMAND_FORM = {
    "name": "sink-command", "description": "every field of a study whose trials run a command",
    "objective": {"metric": "loss", "direction": "minimize", "goal": 0.01, "additionalMetrics": ["acc"],
                  "strategies": {"acc": "latest"}},
    "parameters": [
        {"name": "x", "type": "float", "min": 0.001, "max": 1.0, "log": True, "distribution": "normal"},
        {"name": "n", "type": "int", "min": 1, "max": 9, "step": 2},
        {"name": "opt", "type": "categorical", "values": ["sgd", "adam", 3, None, True]},
        {"name": "mom", "type": "discrete", "values": [0.9, "0.99"], "when": {"opt": "sgd"}},
        {"name": "beta", "type": "float", "min": 0.0, "max": 1.0, "step": 0.5, "when": {"opt": ["adam", 3]}},
    ],
    "algorithm": {"name": "tpe", "seed": 7, "settings": {"n_startup_trials": 5}},
    "parallelism": 2, "maxTrials": 10, "maxFailedTrials": 1, "timeBudget": "2h",
    "trialTemplate": {
        "command": ["python", "train.py", "--x=${trialParameters.x}", "--opt=${trialParameters.opt}",
                    "--mom=${trialParameters.mom}", "--beta=${trialParameters.beta}", "--epochs", 10, 0.5],
        "env": {"N": "${trialParameters.n}", "SEED": 3, "RATE": 0.5}, "workingDir": "/work", "timeout": "5m",
        "image": "python:3.12", "resources": {"cpu": 0.5, "memory": "1Gi", "gpu": 1}, "maxAttempts": 3, "retain": True},
    "metricsCollector": {"kind": "file", "path": "/tmp/${trialSpec.Name}.log", "format": "json",
                         "filters": [r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"], "nonFinite": "skip",
                         "steps": "reports"},
    "kubernetes": {"namespace": "team", "serviceAccountName": "trainer", "automountServiceAccountToken": True,
                   "imagePullSecrets": ["registry"], "runAsUser": 10001,
                   "ttlSecondsAfterFinished": 600, "backoffLimit": 1, "nodeSelector": {"disk": "ssd"},
                   "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
                                   {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoExecute",
                                    "tolerationSeconds": 60}]},
    "earlyStopping": {"algorithm": "median", "settings": {"n_startup_trials": 2}, "patience": 1},
    "warmStart": {"study": "earlier", "trials": [{"params": {"x": 0.1, "n": 3, "opt": "sgd", "mom": 0.9}, "value": 0.3}]},
    "initialTrials": [{"x": 0.5, "opt": "sgd", "mom": 0.9}, {"n": 5}],
    "nodePool": {"name": "trainers", "provider": "gke", "capacity": "preemptible", "machineType": "n1-standard-8",
                 "maxNodes": 4, "diskSizeGb": 100, "accelerators": [{"type": "nvidia-tesla-t4", "count": 1}],
                 "labels": {"team": "ml"}, "shared": True, "pricePerNodeHour": 0.35, "currency": "EUR"},
}
"""Numbers where the validator takes them as well as strings (argv, env, resources), a
duration as a string, a condition on one value and on a list of them."""

SPEC_FORM = {
    "name": "sink-spec", "description": "every field of a study whose trials are a Katib-style trialSpec",
    "objective": {"metrics": [{"name": "loss", "direction": "minimize", "goal": 0.1},
                              {"name": "acc", "direction": "maximize"}]},
    "parameters": [{"name": "x", "type": "float", "min": -5, "max": 5}],
    "algorithm": {"name": "nsga2"},
    "maxTrials": 4, "timeBudget": 7200.5,
    "trialTemplate": {"trialSpec": JOB, "primaryContainerName": "trainer", "primaryPodLabels": {"role": "main"},
                      "successCondition": 'status.conditions.#(type=="Complete")#|#(status=="True")#',
                      "failureCondition": 'status.conditions.#(type=="Failed")#|#(status=="True")#', "timeout": 90.5,
                      "resources": {"cpu": "2"}, "typedFields": [["spec", "template", "spec", "containers", 0, "command", 2]]},
    "metricsCollector": {"kind": "tfevent", "path": "/logs/${trialSpec.Name}"},
    "warmStart": {"trials": [{"params": {"x": 1.0}, "values": [0.2, 0.9]}]},
    "nodePool": {"provider": "eks", "capacity": "on-demand", "instanceTypes": ["m5.xlarge"]},
}
"""Durations as numbers of seconds, several objectives, the tfevent collector, an EKS pool."""

PLAIN = {"name": "plain", "objective": {"metric": "loss", "direction": "minimize"},
         "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0, "step": 0.25}], "maxTrials": 3,
         "trialTemplate": {"command": ["python", "train.py", "${trialParameters.x}"], "resources": {"cpu": "1"}}}

ENUMS: dict[Path, tuple[str, ...]] = {
    ("objective", "direction"): (MINIMIZE, MAXIMIZE),
    ("objective", "metrics", "[]", "direction"): (MINIMIZE, MAXIMIZE),
    ("objective", "strategies", "*"): STRATEGIES,
    ("parameters", "[]", "type"): PARAMETER_TYPES,
    ("parameters", "[]", "distribution"): DISTRIBUTIONS,
    ("algorithm", "name"): tuple(samplers.REGISTRY),
    ("metricsCollector", "kind"): COLLECTOR_KINDS,
    ("metricsCollector", "format"): COLLECTOR_FORMATS,
    ("metricsCollector", "nonFinite"): NON_FINITE_RULES,
    ("metricsCollector", "steps"): STEP_RULES,
    ("earlyStopping", "algorithm"): tuple(pruners.REGISTRY),
    ("nodePool", "provider"): PROVIDERS,
    ("nodePool", "capacity"): CAPACITIES,
}
"""Each enumerated field of the Study schema (as a schema path: ``[]`` a list's items, ``*``
a map's values) and the validator's values for it."""


PRUNER_SETTINGS = {"percentile": {"percentile": 25.0}, "threshold": {"upper": 1.0}}
SAMPLER_SETTINGS = {"pbt": {"suggestion_trial_dir": "/checkpoints", "n_population": 5, "truncation_threshold": 0.2}}
"""The settings an algorithm requires, for the study that names it."""
"""The settings a pruner cannot do without."""


def changed(value: str, **fields: Any) -> dict:
    """The plain study with sections replaced, named after ``value``."""
    return {**copy.deepcopy(PLAIN), **fields, "name": f"plain-{value}"}


def one_of_each() -> list[dict]:
    """A study for each enumerated value the two forms above do not use."""
    studies = [changed(name, algorithm={"name": name, **({"settings": SAMPLER_SETTINGS[name]} if name in SAMPLER_SETTINGS
                                                        else {})}) for name in samplers.REGISTRY]
    studies += [changed(name, earlyStopping={"algorithm": name, "settings": PRUNER_SETTINGS.get(name, {})})
                for name in pruners.REGISTRY]
    studies += [changed(strategy, objective={"metric": "acc", "direction": "maximize", "additionalMetrics": ["loss"],
                                             "strategies": {"loss": strategy}}) for strategy in STRATEGIES]
    studies += [changed(name, parameters=[{**PLAIN["parameters"][0], "distribution": name}]) for name in DISTRIBUTIONS]
    studies += [changed(fmt, metricsCollector={"kind": "stdout", "format": fmt}) for fmt in COLLECTOR_FORMATS]
    studies += [changed(rule, metricsCollector={"kind": "stdout", "nonFinite": rule}) for rule in NON_FINITE_RULES]
    studies += [changed(rule, metricsCollector={"kind": "stdout", "steps": rule}) for rule in STEP_RULES]
    studies += [changed(capacity, nodePool={"provider": "gke", "capacity": capacity}) for capacity in CAPACITIES]
    return studies


STUDIES = [COMMAND_FORM, SPEC_FORM, *one_of_each()]


def as_resource(study: dict) -> dict:
    return {"apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": {"name": study["name"], "namespace": "team"},
            "spec": copy.deepcopy(study)}


def mappings(node: Any, path: Path = ()) -> Iterator[Path]:
    """The path of every mapping in ``node``, outermost first."""
    if isinstance(node, dict):
        yield path
        for key, value in node.items():
            yield from mappings(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from mappings(value, (*path, i))


def at(node: Any, path: Path) -> Any:
    for step in path:
        node = node[step]
    return node


def dotted(path: Path) -> str:
    """A path as the validator's problems write it: ``parameters[1].max``."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text


def fields_taken(study: dict, path: Path) -> set[str] | None:
    """The fields the validator takes in the mapping at ``path``, as its problem for a field it
    does not know names them; None where it takes any key (a map, or content it passes on)."""
    probed = copy.deepcopy(study)
    at(probed, path)[PROBE] = "x"
    try:
        parse_study(probed)
    except InvalidStudy as exc:
        found = [UNKNOWN.fullmatch(p.message) for p in exc.problems if p.path == dotted((*path, PROBE))]
        return set(found[0].group(1).split(", ")) if found and found[0] else None
    return None


def schema_path(study: dict, path: Path) -> Path:
    """``path`` in the Study schema's terms, below ``spec``: list positions become ``[]`` and the
    keys of a map (a node with ``additionalProperties``) become ``*``."""
    node, out = schema("Study")["properties"]["spec"], []
    for step in path:
        if isinstance(step, int):
            node, name = node.get("items", {}), "[]"
        elif step in node.get("properties", {}):
            node, name = node["properties"][step], step
        else:
            node, name = node.get("additionalProperties") or {}, "*"
        out.append(name)
    return tuple(out)


def schema_node(path: Path) -> dict:
    node = schema("Study")["properties"]["spec"]
    for step in path:
        node = node["items"] if step == "[]" else node["additionalProperties"] if step == "*" else node["properties"][step]
    return node


def enum_paths(node: dict, path: Path = ()) -> Iterator[tuple[Path, list]]:
    if "enum" in node:
        yield path, node["enum"]
    for key, child in (node.get("properties") or {}).items():
        yield from enum_paths(child, (*path, key))
    for key, name in (("items", "[]"), ("additionalProperties", "*")):
        if isinstance(node.get(key), dict):
            yield from enum_paths(node[key], (*path, name))


def values_at(study: dict, wanted: Path) -> Iterator[Any]:
    def walk(node: Any, path: Path) -> Iterator[Any]:
        if schema_path(study, path) == wanted:
            yield node
        elif isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, (*path, key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, (*path, i))
    return walk(study, ())


@pytest.fixture(scope="module")
def kube():
    stub = KubeStub(namespaces=("team",))
    yield stub
    stub.close()


@pytest.mark.parametrize("study", STUDIES, ids=[s["name"] for s in STUDIES])
def test_a_study_katuna_accepts_is_a_study_resource_a_cluster_accepts(study: dict, kube: KubeStub):
    parse_study(study)
    check(as_resource(study))
    assert kube.apply(as_resource(study))["spec"] == study, "applied strictly, nothing pruned"


def test_the_crd_lists_at_every_depth_the_fields_the_validator_takes():
    taken: dict[Path, set[str] | None] = {}
    used: dict[Path, set[str]] = {}
    for study in (COMMAND_FORM, SPEC_FORM):
        for path in mappings(study):
            where = schema_path(study, path)
            if any(schema_node(where[:i]).get("x-kubernetes-preserve-unknown-fields") for i in range(len(where))):
                continue  # inside content the CRD keeps whole (a trialSpec, a warm start's params)
            fields = fields_taken(study, path)
            assert taken.setdefault(where, fields) == fields, f"{dotted(path)}: the validator takes other fields here"
            used.setdefault(where, set()).update(at(study, path))
    assert taken[()] >= {"trialTemplate", "nodePool", "metricsCollector", "earlyStopping"}, "the probe reads the validator"
    for where, fields in taken.items():
        node = schema_node(where)
        if fields is None:
            assert "additionalProperties" in node or node.get("x-kubernetes-preserve-unknown-fields"), \
                f"spec.{'.'.join(where)}: the validator takes any key here, the CRD does not"
            continue
        assert set(node.get("properties", {})) == fields, f"spec.{'.'.join(where)}: the CRD's fields differ"
        assert not node.get("x-kubernetes-preserve-unknown-fields"), f"spec.{'.'.join(where)}: not free-form"
        assert used[where] == fields, f"spec.{'.'.join(where)}: the studies here leave fields unused"


def test_the_crd_lists_every_value_the_validator_takes_and_no_other():
    found = dict(enum_paths(schema("Study")["properties"]["spec"]))
    assert set(found) == set(ENUMS)
    for where, values in ENUMS.items():
        assert sorted(found[where]) == sorted(values), f"spec.{'.'.join(where)}"
        seen = {value for study in STUDIES for value in values_at(study, where)}
        assert seen == set(values), f"spec.{'.'.join(where)}: the studies here leave values unused"


def test_a_misspelt_nested_field_and_an_unknown_value_are_refused_at_apply_time():
    misspelt = as_resource(COMMAND_FORM)
    misspelt["spec"]["trialTemplate"]["retian"] = True
    with pytest.raises(jsonschema.ValidationError, match="retian"):
        check(misspelt)
    unknown = as_resource(PLAIN)
    unknown["spec"]["earlyStopping"] = {"algorithm": "median-stop"}
    with pytest.raises(jsonschema.ValidationError, match="median-stop"):
        check(unknown)
