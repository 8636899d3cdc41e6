"""A field of a Katib Experiment holding the wrong kind of value is refused by its path, as
Katib's webhook refuses an Experiment it cannot decode: never read character by character,
never a crash, never the catch-all that names no field."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml
from test_katib import experiment

from functions.core import katib_shapes
from functions.core.errors import InvalidStudy
from functions.core.formats import load_study


def _stdout() -> dict:
    """A valid Experiment with every field of a StdOut collector, early stopping and trial template."""
    doc = experiment(earlyStopping={"algorithmName": "medianstop",
                                    "algorithmSettings": [{"name": "min_trials_required", "value": "2"}]},
                     metricsCollectorSpec={"collector": {"kind": "StdOut"},
                                           "source": {"filter": {"metricsFormat": [r"(\w+)=(-?\d+(\.\d+)?)"]},
                                                      "httpGet": {"path": "/metrics", "port": 8080}}},
                     resumePolicy="Never")
    doc["metadata"].update(annotations={"note": "kept"}, labels={"team": "a"})
    spec = doc["spec"]
    spec["objective"]["goal"] = 0.01
    spec["parameters"] += [
        {"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9", "step": "2",
                                                                "distribution": "uniform"}},
        {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["adam", "sgd"]}}]
    template = spec["trialTemplate"]
    template["trialParameters"] += [{"name": "n", "reference": "n"}, {"name": "opt", "reference": "opt"}]
    template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] += [
        "--n=${trialParameters.n}", "--opt=${trialParameters.opt}"]
    template.update(primaryPodLabels={"job-role": "main"}, successCondition="status.conditions.#(type==\"Complete\")#",
                    failureCondition="status.conditions.#(type==\"Failed\")#", retain=False)
    template["trialSpec"]["spec"]["template"]["metadata"] = {"labels": {"job-role": "main"}}
    return doc


def _file() -> dict:
    """A valid Experiment with every field of a File collector."""
    return experiment(metricsCollectorSpec={
        "collector": {"kind": "File"},
        "source": {"fileSystemPath": {"path": "/var/log/katib/metrics.log", "kind": "File", "format": "TEXT"}}})


BASES = {"stdout": _stdout, "file": _file}
WRONG = ["text", ["a"], {"k": "v"}, 7, True]
LEFT_OUT = {"spec.nasConfig", "spec.trialTemplate.configMap", "spec.trialTemplate.configMap.configMapName",
            "spec.trialTemplate.configMap.configMapNamespace", "spec.trialTemplate.configMap.templatePath",
            "spec.metricsCollectorSpec.collector.customCollector"}
"""Fields whose Experiments are refused for other reasons (each has its own test)."""


def _fields(value: Any, shape: Any, path: str) -> Iterator[tuple[str, tuple[Any, ...], Any]]:
    """``(path, keys, shape)`` of every field of ``value`` that :data:`katib_shapes.SHAPE` describes."""
    if isinstance(shape, list) and isinstance(value, list):
        for i, item in enumerate(value):
            for sub, keys, inner in _fields(item, shape[0], f"{path}[{i}]"):
                yield sub, (i, *keys), inner
    elif isinstance(shape, Mapping) and isinstance(value, Mapping):
        for key, item in value.items():
            if key in shape or "*" in shape:
                inner = shape.get(key, shape.get("*"))
                where = f"{path}.{key}" if path else key
                yield where, (key,), inner
                for sub, keys, deeper in _fields(item, inner, where):
                    yield sub, (key, *keys), deeper


def _fits(value: Any, shape: Any) -> bool:
    return not katib_shapes.check(value, shape, "")


def _mutations() -> Iterator[Any]:
    for base, make in BASES.items():
        for path, keys, shape in _fields(make(), katib_shapes.SHAPE, ""):
            for wrong in WRONG:
                if not _fits(wrong, shape):
                    yield pytest.param(make, keys, wrong, path, id=f"{base}:{path}={wrong!r}")


@pytest.mark.parametrize("make", BASES.values(), ids=BASES)
def test_the_base_experiments_are_valid(make):
    load_study(yaml.safe_dump(make()))


def test_the_base_experiments_hold_every_field_with_a_shape():
    """So that every field :data:`katib_shapes.SHAPE` describes is mutated below."""
    found = {_general(path) for make in BASES.values() for path, _, _ in _fields(make(), katib_shapes.SHAPE, "")}
    described = {_general(path) for path, _, _ in _fields(_every(katib_shapes.SHAPE), katib_shapes.SHAPE, "")}
    assert described - LEFT_OUT - found == set()


def _general(path: str) -> str:
    """``path`` with every list index left out: ``spec.parameters[].name``."""
    return re.sub(r"\[\d+\]", "[]", path)


def _every(shape: Any) -> Any:
    """A value with every field ``shape`` describes (a list of one)."""
    if isinstance(shape, list):
        return [_every(shape[0])]
    if isinstance(shape, Mapping):
        return {key: _every(inner) for key, inner in shape.items() if key != "*"}
    return "x"


@pytest.mark.parametrize(("make", "keys", "wrong", "path"), list(_mutations()))
def test_a_field_of_the_wrong_kind_is_refused_by_its_path(make, keys, wrong, path):
    doc = make()
    node = doc
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = copy.deepcopy(wrong)
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    found = caught.value.problems
    assert any(p.path == path or p.path.startswith(f"{path}[") for p in found), found
    assert not any("not shaped like" in p.message for p in found), found


@pytest.mark.parametrize(("field", "value", "message"), [
    ("additionalMetricNames", "f1", "expected a list of strings, got a string"),
    ("metricStrategies", {"loss": "min"}, "expected a list of mappings, got a mapping"),
])
def test_the_message_says_what_was_expected_and_what_was_given(field, value, message):
    doc = experiment()
    doc["spec"]["objective"][field] = value
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [(p.path, p.message) for p in caught.value.problems] == [(f"spec.objective.{field}", message)]


@pytest.mark.parametrize(("api_version", "kind", "path"), [
    ("kubeflow.org/v1", "Experiment", "apiVersion"), ("kubeflow.org/v1beta1", "Trial", "kind"),
    ("kubeflow.org/v1beta1", "experiment", "kind"), (None, "Experiment", "apiVersion")])
def test_a_document_of_a_version_or_kind_katuna_does_not_read_is_refused_at_that_field_alone(api_version, kind, path):
    """Read as a native study, it was refused field by field (``apiVersion: unknown field``,
    ``name: required``...), none of them the one to mend."""
    doc = experiment()
    doc["apiVersion"], doc["kind"] = api_version, kind
    if api_version is None:
        del doc["apiVersion"]
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    got = "none" if api_version is None else repr(api_version)
    assert [(p.path, p.message) for p in caught.value.problems] == [(path, (
        "expected a document katuna reads (katuna.dev/v1 Study or Experiment; kubeflow.org/v1beta1 Experiment; "
        f"kubeflow.org/v1alpha1 StudyJob), or a study of its own, which names neither; got apiVersion {got} and "
        f"kind {kind!r}"))]


@pytest.mark.parametrize(("field", "value", "path", "message"), [
    ("env", [{"name": "A", "value": "1"}, {"name": 5, "value": "x"}], "env[1].name", "expected a string, got an integer"),
    ("command", "python3 train.py --x=${trialParameters.position}", "command",
     "expected a list of strings, got a string"),
    ("resources", "1Gi", "resources", "expected a mapping, got a string"),
])
def test_a_trial_spec_containers_field_of_the_wrong_type_is_refused_by_the_experiments_path(field, value, path, message):
    """The trialSpec is free-form here, and checked as a native study's is: its problems are
    named by the field of the Experiment."""
    doc = experiment()
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0][field] = value
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    where = f"spec.trialTemplate.trialSpec.spec.template.spec.containers[0].{path}"
    assert [(p.path, p.message) for p in caught.value.problems] == [(where, message)]


def test_a_metric_strategy_katuna_does_not_take_is_refused_at_its_entry_in_the_experiment():
    """``metricStrategies`` is a list: its problem names the entry's ``value``, not the metric."""
    doc = experiment()
    doc["spec"]["objective"]["metricStrategies"] = [{"name": "size", "value": "max"}, {"name": "loss", "value": "median"}]
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("spec.objective.metricStrategies[1].value", "expected one of min, max, latest, got 'median'")]


def _misspelt(make: Any, keys: tuple[Any, ...], key: str) -> dict:
    """``make()`` with the field ``key`` added to the mapping at ``keys``."""
    doc = make()
    node = doc
    for step in keys:
        node = node[step]
    node[key] = "x"
    return doc


@pytest.mark.parametrize(("make", "keys", "key", "expected"), [
    (_stdout, ("spec", "algorithm"), "algorithmSetting", "algorithmName, algorithmSettings"),
    (_stdout, ("spec", "algorithm", "algorithmSettings", 0), "val", "name, value"),
    (_stdout, ("spec", "earlyStopping"), "algorithmSetting", "algorithmName, algorithmSettings"),
    (_stdout, ("spec", "earlyStopping", "algorithmSettings", 0), "vaule", "name, value"),
    (_stdout, ("spec", "objective", "metricStrategies", 0), "strategy", "name, value"),
    (_stdout, ("spec", "metricsCollectorSpec"), "sources", "collector, source"),
    (_stdout, ("spec", "metricsCollectorSpec", "collector"), "kinds", "customCollector, kind"),
    (_stdout, ("spec", "metricsCollectorSpec", "source"), "filters", "fileSystemPath, filter, httpGet"),
    (_stdout, ("spec", "metricsCollectorSpec", "source", "filter"), "metricFormat", "metricsFormat"),
    (_file, ("spec", "metricsCollectorSpec", "source", "fileSystemPath"), "paths", "format, kind, path"),
    (_stdout, ("spec", "trialTemplate", "trialParameters", 0), "referance", "description, name, reference"),
])
def test_a_field_katibs_types_do_not_have_is_refused_by_its_path(make, keys, key, expected):
    """Katib's CRD keeps any field and its webhook drops one its types lack, so a misspelt
    ``algorithmSettings`` would run without its seed, a misspelt ``metricsFormat`` with the
    default filter, a misspelt ``earlyStopping`` setting at Katib's default: each is refused,
    alone, naming the field and the fields expected there."""
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(_misspelt(make, keys, key)))
    path = "spec" + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys[1:]) + f".{key}"
    assert [(p.path, p.message) for p in caught.value.problems] == [(path, f"unknown field; expected one of {expected}")]


def test_a_misspelt_field_of_a_configmap_reference_is_named_beside_the_field_it_leaves_out():
    doc = experiment()
    trial = doc["spec"]["trialTemplate"]
    del trial["trialSpec"]
    trial.update(configMap={"configMapName": "templates", "configMapNamespace": "kubeflow", "templatePaht": "t.yaml"},
                 successCondition="status.succeeded>0", failureCondition="status.failed>0")
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    found = {p.path: p.message for p in caught.value.problems}
    assert found["spec.trialTemplate.configMap.templatePaht"] == (
        "unknown field; expected one of configMapName, configMapNamespace, templatePath")


@pytest.mark.parametrize(("kind", "native"), [("File", "file"), ("TensorFlowEvent", "tfevent")])
def test_an_empty_file_system_path_kind_is_the_collectors_own_as_katib_defaults_it(kind, native):
    """Katib's defaulting webhook fills in an empty ``fileSystemPath.kind`` (File for the File
    collector, Directory for TensorFlowEvent), as it fills in an empty path or format."""
    doc = experiment(metricsCollectorSpec={"collector": {"kind": kind},
                                           "source": {"fileSystemPath": {"kind": "", "path": "/var/log/katib/m"}}})
    spec, _ = load_study(yaml.safe_dump(doc))
    assert (spec.metrics_collector.kind, spec.metrics_collector.path) == (native, "/var/log/katib/m")


@pytest.mark.parametrize("key", ["nodepool", "node_pool", "Spec", "x-defaults"])
def test_a_top_level_field_an_experiment_document_does_not_have_is_refused_by_its_name(key):
    """Katib's webhook decodes the Experiment into its types and drops such a field: a misspelt
    ``nodePool`` would run the trials on no pool of their own, and nothing would say so."""
    doc = experiment()
    doc[key] = {"provider": "gke", "maxNodes": 10}
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert (key, "unknown field; expected one of apiVersion, kind, metadata, nodePool, spec, status") in [
        (p.path, p.message) for p in caught.value.problems]


def _as_kubectl_gets_it(doc: dict) -> dict:
    """``doc`` as ``kubectl get experiment -o yaml`` prints it once Katib took it: the API
    server's metadata, Katib's defaults filled in, and a status."""
    got = copy.deepcopy(doc)
    got["metadata"].update(creationTimestamp="2026-06-01T10:00:00Z", generation=1, resourceVersion="123456",
                           uid="3fbda962-64c0-4474-b1de-03b390f96369", finalizers=["update-prometheus-metrics"],
                           managedFields=[{"apiVersion": "kubeflow.org/v1beta1", "fieldsType": "FieldsV1",
                                           "fieldsV1": {"f:spec": {".": {}}}, "manager": "kubectl-client-side-apply",
                                           "operation": "Update", "time": "2026-06-01T10:00:00Z"}],
                           annotations={"kubectl.kubernetes.io/last-applied-configuration": json.dumps(doc)})
    spec = got["spec"]
    spec["objective"]["metricStrategies"].append({"name": "size", "value": "min"})
    spec.update(resumePolicy="Never", metricsCollectorSpec={"collector": {"kind": "StdOut"}})
    spec["trialTemplate"].update(successCondition='status.conditions.#(type=="Complete")#|#(status=="True")#',
                                 failureCondition='status.conditions.#(type=="Failed")#|#(status=="True")#')
    for parameter in spec["parameters"]:
        parameter["feasibleSpace"]["distribution"] = "uniform"
    got["status"] = {"conditions": [{"type": "Created", "status": "True", "reason": "ExperimentCreated",
                                     "message": "Experiment is created", "lastUpdateTime": "2026-06-01T10:00:00Z",
                                     "lastTransitionTime": "2026-06-01T10:00:00Z"}],
                     "currentOptimalTrial": {"bestTrialName": "", "observation": {}},
                     "startTime": "2026-06-01T10:00:00Z", "trials": 1, "trialsRunning": 1}
    return got


@pytest.mark.parametrize("dump", [yaml.safe_dump, json.dumps])
def test_an_experiment_as_kubectl_get_prints_it_is_taken_as_the_one_applied(dump):
    """Its status and the API server's metadata are read from no submitted Experiment, by
    Katib or katuna, and Katib's defaults written out are the defaults katuna applies."""
    applied, _ = load_study(yaml.safe_dump(experiment()))
    got, _ = load_study(dump(_as_kubectl_gets_it(experiment())))
    assert (got.name, got.parameters, got.algorithm, got.parallelism, got.max_trials, got.max_failed_trials) == (
        applied.name, applied.parameters, applied.algorithm, applied.parallelism, applied.max_trials,
        applied.max_failed_trials)
    assert [(m, got.strategy(m)) for m in ("loss", "size")] == [(m, applied.strategy(m)) for m in ("loss", "size")]
    assert (got.metrics_collector, got.kubernetes.namespace) == (applied.metrics_collector, "kubeflow")


def test_a_null_nas_config_is_none_as_katib_decodes_it():
    """``nasConfig: null`` (a template that renders an unset value) is no neural architecture
    search: Katib's webhook decodes it to no nasConfig at all."""
    spec, _ = load_study(yaml.safe_dump(experiment(nasConfig=None)))
    assert [p.name for p in spec.parameters] == ["x"]


def test_an_empty_string_in_a_feasible_space_is_a_field_left_out_as_katib_reads_it():
    """Katib's feasible space holds strings, and an empty one is Go's zero value, the field left
    out: ``step: ""`` is no step, and ``min: ""`` beside a categorical list is no range."""
    doc = experiment(parameters=[
        {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-4", "max": "4", "step": ""}},
        {"name": "opt", "parameterType": "categorical",
         "feasibleSpace": {"list": ["adam", "sgd"], "min": "", "max": "", "step": "", "distribution": ""}}])
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "opt", "reference": "opt"})
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"].append(
        "--opt=${trialParameters.opt}")
    spec, _ = load_study(yaml.safe_dump(doc))
    assert (spec.parameters[0].step, spec.parameters[1].values) == (None, ("adam", "sgd"))
    doc["spec"]["parameters"][0]["feasibleSpace"]["min"] = ""
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [(p.path, p.message) for p in caught.value.problems] == [(
        "spec.parameters[0].feasibleSpace.min", "required for parameterType double: feasibleSpace.min and "
                                                "feasibleSpace.max")]


def test_a_list_given_as_a_distribution_is_refused_saying_where_the_values_go():
    """Katib's SDK ``katib.search.categorical(["adam", "sgd"])`` writes the values as the
    feasible space's ``distribution``, which Katib's webhook cannot decode either."""
    doc = experiment()
    doc["spec"]["parameters"][0] = {"name": "x", "parameterType": "categorical",
                                    "feasibleSpace": {"distribution": ["adam", "sgd"]}}
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [(p.path, p.message) for p in caught.value.problems] == [(
        "spec.parameters[0].feasibleSpace.distribution",
        "expected a string, got a list; a categorical or discrete parameter's values go in feasibleSpace.list "
        "(Katib's SDK katib.search.categorical writes them here, and Katib's webhook cannot decode them either)")]
