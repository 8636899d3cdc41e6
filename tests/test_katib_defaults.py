"""An Experiment applied again with Katib's defaults written out, as ``kubectl get -o yaml`` of
a Katib Experiment gives it back (its mutating webhook's ``SetDefault``), is the same Experiment
to Katib's validating webhook, which compares the two specs once both are defaulted: katuna
takes it as no change, where a change of a field that cannot change is still refused."""

from __future__ import annotations

import copy

from conftest import study_definition
from test_katib import experiment

from functions.core import resources, resume
from functions.core.conflicts import same_study
from functions.core.formats import load_definition
from functions.core.records import StudyRecord

JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'


def as_katib_stores(doc: dict) -> dict:
    """``doc`` as Katib's API gives it back once its webhook defaulted it (written out here field
    by field, as ``kubectl get experiment -o yaml`` shows a Katib Experiment): with the
    metadata the API server adds and a status, which katuna's API server ignores in an apply."""
    stored = copy.deepcopy(doc)
    spec = stored["spec"]
    spec.setdefault("parallelTrialCount", 3)
    spec.setdefault("resumePolicy", "Never")
    spec.setdefault("metricsCollectorSpec", {"collector": {"kind": "StdOut"}})
    objective = spec["objective"]
    by_type = {"minimize": "min", "maximize": "max"}[objective["type"]]
    strategies = objective.setdefault("metricStrategies", [])
    named = {s["name"] for s in strategies}
    if objective["objectiveMetricName"] not in named:
        strategies.append({"name": objective["objectiveMetricName"], "value": by_type})
    strategies.extend({"name": m, "value": by_type} for m in objective.get("additionalMetricNames", ()) if m not in named)
    template = spec["trialTemplate"]
    template.setdefault("successCondition", JOB_SUCCESS)
    template.setdefault("failureCondition", JOB_FAILURE)
    for parameter in spec["parameters"]:
        parameter["feasibleSpace"].setdefault("distribution", "uniform")
    for field, value in (("uid", "4b1f0c9e-0000-4000-8000-000000000001"), ("resourceVersion", "1234"),
                         ("generation", 1), ("creationTimestamp", "2026-01-01T00:00:00Z")):
        stored["metadata"].setdefault(field, value)
    stored.setdefault("status", {"conditions": [{"type": "Created", "status": "True", "reason": "ExperimentCreated"}]})
    return stored


def plain() -> dict:
    """An Experiment as its user writes it: no strategies, no collector, no conditions, no
    resumePolicy, no distribution."""
    doc = experiment()
    doc["spec"]["objective"] = {"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["size"]}
    return doc


def test_the_copy_katib_gives_back_is_the_spec_as_katib_stores_it():
    from functions.core import katib_defaults

    for doc in (plain(), experiment(), experiment(resumePolicy="LongRunning", parallelTrialCount=1)):
        copied = as_katib_stores(doc)
        assert copied["spec"] != doc["spec"]
        assert katib_defaults.stored(doc["spec"]) == katib_defaults.stored(copied["spec"])
        assert katib_defaults.same_spec(doc["spec"], copied["spec"])
    strategies = katib_defaults.stored(plain()["spec"])["objective"]["metricStrategies"]
    assert strategies == [{"name": "loss", "value": "min"}, {"name": "size", "value": "min"}], \
        "the objective's first, then each additional metric's, by the objective's type, as Katib appends them"
    explicit = katib_defaults.stored(experiment()["spec"])["objective"]["metricStrategies"]
    assert explicit == [{"name": "loss", "value": "latest"}, {"name": "size", "value": "min"}]


def test_a_running_experiments_copy_changes_no_field_and_a_real_change_is_still_refused():
    doc = plain()
    assert resources.refused_fields("Experiment", doc, as_katib_stores(doc)) == []
    budget = as_katib_stores(doc)
    budget["spec"].update(maxTrialCount=9, parallelTrialCount=4)
    assert resources.refused_fields("Experiment", doc, budget) == [], "the editable fields may change with it"
    changed = as_katib_stores(doc)
    changed["spec"]["objective"]["metricStrategies"][0]["value"] = "max"
    changed["spec"]["parameters"][0]["feasibleSpace"]["distribution"] = "logUniform"
    changed["spec"]["trialTemplate"]["successCondition"] = 'status.conditions.#(type=="Done")#'
    assert resources.refused_fields("Experiment", doc, changed) == ["spec.objective", "spec.parameters",
                                                                    "spec.trialTemplate"]
    policy = as_katib_stores(doc)
    policy["spec"]["resumePolicy"] = "LongRunning"
    assert resources.refused_fields("Experiment", doc, policy) == ["spec.resumePolicy"]
    native = study_definition()
    assert resources.refused_fields("Study", native, {**native, "parallelism": 3}) == []


def test_a_copy_with_the_budget_raised_restarts_an_ended_experiment_and_another_change_does_not():
    doc = plain()
    doc["spec"].update(resumePolicy="LongRunning", maxTrialCount=2)
    spec, definition = load_definition(doc)
    record = StudyRecord(spec, definition, ".", "uid-1", status="completed", reason="max trials reached (2)")
    raised = as_katib_stores(doc)
    raised["spec"]["maxTrialCount"] = 4
    assert resume.refusals(record, raised, 2) == []
    raised["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "File"}}
    assert resume.refusals(record, raised, 2) == [
        "spec.metricsCollectorSpec cannot change (only spec.parallelTrialCount, spec.maxTrialCount, "
        "spec.maxFailedTrialCount can)"]


def test_the_copy_posted_again_is_the_stored_study_not_a_conflict():
    doc = plain()
    stored = StudyRecord(*load_definition(doc), ".", "uid-1")
    copied = as_katib_stores(doc)
    spec, definition = load_definition(copied)
    assert stored.spec != spec, "the study as converted names the defaults explicitly"
    assert same_study(stored, spec, definition)
    copied["spec"]["objective"]["metricStrategies"][1]["value"] = "latest"
    assert not same_study(stored, *load_definition(copied))


def test_each_collectors_source_and_a_kubeflow_jobs_labels_are_defaulted_as_katib_defaults_them():
    from functions.core import katib_defaults

    def spec_of(**given) -> dict:
        return katib_defaults.stored({"objective": {"type": "maximize", "objectiveMetricName": "acc"}, **given})

    assert spec_of(metricsCollectorSpec={"collector": {"kind": "File"}})["metricsCollectorSpec"]["source"] == {
        "fileSystemPath": {"kind": "File", "path": "/var/log/katib/metrics.log", "format": "TEXT"}}
    assert spec_of(metricsCollectorSpec={"collector": {"kind": "TensorFlowEvent"}, "source": {
        "fileSystemPath": {"path": "/logs"}}})["metricsCollectorSpec"]["source"] == {
        "fileSystemPath": {"kind": "Directory", "path": "/logs"}}
    assert spec_of(metricsCollectorSpec={"collector": {"kind": "PrometheusMetric"}, "source": {"httpGet": {
        "port": 0}}})["metricsCollectorSpec"]["source"] == {"httpGet": {"path": "/metrics", "port": 8080}}
    tf = spec_of(trialTemplate={"trialSpec": {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "spec": {}}})
    assert tf["trialTemplate"]["primaryPodLabels"] == {"training.kubeflow.org/job-role": "master"}
    assert tf["trialTemplate"]["successCondition"] == 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
    assert tf["trialTemplate"]["trialSpec"] == {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "spec": {}}, \
        "the trialSpec is compared as written, an empty field of it kept"
    workflow = spec_of(trialTemplate={"trialSpec": {"kind": "Workflow"}, "successCondition": "status.phase"})
    assert "failureCondition" not in workflow["trialTemplate"], "Katib defaults no other kind's conditions"
    assert spec_of(objective={"type": "maximize", "objectiveMetricName": "acc", "goal": None,
                              "additionalMetricNames": []}, trialTemplate={"retain": False, "primaryContainerName": ""}
                   ) == spec_of(), "zero values, which Katib's types drop, are no change"
    assert spec_of(maxFailedTrialCount=0)["maxFailedTrialCount"] == 0, "a count of 0 is a value"


def test_a_spec_of_any_shape_is_compared_not_refused_here():
    """Whatever shape an edited spec has, comparing it raises nothing: validation names what is
    wrong with it afterwards."""
    from functions.core import katib_defaults

    odd = [{"parameters": 5}, {"objective": {"type": ["minimize"], "objectiveMetricName": ["loss"],
                                             "metricStrategies": [{"name": ["loss"]}, "x"], "additionalMetricNames": 3}},
           {"metricsCollectorSpec": {"collector": {"kind": ["File"]}}}, {"metricsCollectorSpec": "StdOut"},
           {"trialTemplate": {"trialSpec": ["Job"]}}, {"parameters": ["x", {"feasibleSpace": [1]}]}]
    for spec in odd:
        assert katib_defaults.same_spec(spec, spec)
        assert resources.refused_fields("Experiment", {"spec": spec}, {"spec": {}}) != []
