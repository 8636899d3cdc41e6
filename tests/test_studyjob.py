"""Katib v1alpha1 StudyJobs: the Go worker template rendered safely, the study run unchanged."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from conftest import TRIAL

from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.studyjob import TemplateError, render_go_template

ROOT = Path(__file__).parent.parent
TEMPLATE = """apiVersion: batch/v1
kind: Job
metadata:
  name: {{.WorkerID}}
  namespace: {{.NameSpace}}
spec:
  template:
    spec:
      containers:
      - name: {{.WorkerID}}
        image: example/trainer
        command:
        - "PYTHON"
        - "TRIAL"
        {{- with .HyperParameters}}
        {{- range .}}
        - "{{.Name}}={{.Value}}"
        {{- end}}
        {{- end}}
      restartPolicy: Never"""


def studyjob(**spec_overrides) -> dict:
    doc = {
        "apiVersion": "kubeflow.org/v1alpha1", "kind": "StudyJob",
        "metadata": {"namespace": "kubeflow", "name": "sj"},
        "spec": {
            "studyName": "sj", "owner": "crd", "optimizationtype": "minimize", "objectivevaluename": "loss",
            "requestcount": 3, "metricsnames": ["loss", "size"],
            "parameterconfigs": [
                {"name": "--x", "parametertype": "double", "feasible": {"min": "-3", "max": "3"}},
                {"name": "--mode", "parametertype": "categorical", "feasible": {"list": ["ok"]}},
            ],
            "workerSpec": {"goTemplate": {"rawTemplate": TEMPLATE.replace("PYTHON", sys.executable)
                                          .replace("TRIAL", str(TRIAL))}},
            "suggestionSpec": {"suggestionAlgorithm": "random", "requestNumber": 2,
                               "suggestionParameters": [{"name": "seed", "value": "5"}]},
        },
    }
    doc["spec"].update(spec_overrides)
    return doc


def test_the_go_template_constructs_katib_workers_use():
    root = {"WorkerID": "w-1", "NameSpace": "ns", "HyperParameters": [{"Name": "--a", "Value": "1"},
                                                                      {"Name": "--b", "Value": "two"}]}
    rendered = render_go_template("id={{.WorkerID}} in {{ .NameSpace }}\n{{- with .HyperParameters}}"
                                  "{{- range .}}\n- {{.Name}}={{.Value}}{{- end}}{{- end}}\nend", root)
    assert rendered == "id=w-1 in ns\n- --a=1\n- --b=two\nend"
    assert render_go_template("{{with .HyperParameters}}x{{end}}", {"HyperParameters": []}) == ""
    with pytest.raises(TemplateError, match="unsupported template action"):
        render_go_template("{{ printf \"%s\" .WorkerID }}", root)
    with pytest.raises(TemplateError, match="without {{end}}"):
        render_go_template("{{range .HyperParameters}}x", root)


def test_a_studyjob_translates_with_placeholders_instead_of_values():
    spec, submitted = load_study(yaml.safe_dump(studyjob()))
    assert submitted["kind"] == "StudyJob"
    assert (spec.name, spec.parallelism, spec.max_trials) == ("sj", 2, 6)
    assert spec.additional_metrics == ("size",) and (spec.algorithm.seed, spec.algorithm.settings) == (5, ())
    container = spec.trial_template.trial_spec["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "${trialSpec.Name}"
    assert "name" not in spec.trial_template.trial_spec.get("metadata", {}), "every trial's workload is named so"
    assert container["command"][-2:] == ["--x=${trialParameters.--x}", "--mode=${trialParameters.--mode}"]


def test_a_studyjob_runs_locally(embedded, tmp_path: Path):
    definition = studyjob()
    definition["spec"]["suggestionSpec"]["suggestionParameters"] = []
    spec, submitted = load_study(yaml.safe_dump(definition))
    embedded.submit(spec, submitted, tmp_path)
    record = embedded.run("sj")
    assert record.status == "completed"
    trials = embedded.store.trials("sj")
    assert len(trials) == 6
    assert all(t.values[0] == pytest.approx((t.params["--x"] - 2) ** 2, abs=1e-5) for t in trials)


def test_the_articles_example_is_valid():
    spec, _ = load_study((ROOT / "examples" / "studyjob.yaml").read_text())
    assert spec.name == "random-example" and spec.max_trials == 4 and spec.objectives[0].goal == 0.99


def test_studyjob_problems_name_their_fields():
    bad = studyjob(suggestionSpec={"suggestionAlgorithm": "hyperband"}, colour="red",
                   workerSpec={"goTemplate": {"rawTemplate": "{{ .Missing }}"}})
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(bad))
    found = {p.path: p.message for p in caught.value.problems}
    assert found["spec.suggestionSpec.suggestionAlgorithm"].startswith("'hyperband' is not supported")
    assert found["spec.colour"] == ("unknown field; expected one of metricsCollectorSpec, metricsnames, "
                                    "objectivevaluename, optimizationgoal, optimizationtype, owner, parameterconfigs, "
                                    "requestcount, studyName, suggestionSpec, workerSpec")
    assert found["spec.workerSpec.goTemplate.rawTemplate"] == "cannot be rendered: unknown field .Missing"


def test_studyjob_bounds_are_read_as_katibs_go_suggestions_read_them():
    doc = studyjob()
    doc["spec"]["parameterconfigs"][0]["feasible"] = {"min": " -3", "max": True}
    doc["spec"]["parameterconfigs"].append({"name": "--n", "parametertype": "int", "feasible": {"min": "1_0",
                                                                                             "max": 2.5}})
    with pytest.raises(InvalidStudy) as caught:
        load_study(json.dumps(doc))
    found = {p.path: p.message for p in caught.value.problems}
    assert found["spec.parameterconfigs[0].feasible.min"].endswith("got ' -3'")
    assert found["spec.parameterconfigs[0].feasible.max"].endswith("got a boolean (true)")
    assert found["spec.parameterconfigs[2].feasible.min"].endswith("got '1_0'")
    assert found["spec.parameterconfigs[2].feasible.max"].startswith("expected an integer")


def test_a_single_request_studyjob_runs_one_trial_at_a_time():
    doc = studyjob(requestcount=1)
    del doc["spec"]["suggestionSpec"]["requestNumber"]
    spec, _ = load_study(yaml.safe_dump(doc))
    assert (spec.parallelism, spec.max_trials) == (1, 1)


def test_studyjob_settings_are_converted_or_refused_naming_them():
    doc = studyjob()
    doc["spec"]["suggestionSpec"].update(suggestionAlgorithm="tpe", suggestionParameters=[
        {"name": "n_startup_trials", "value": "abc"}])
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [str(p) for p in caught.value.problems] == ["algorithm.settings.n_startup_trials: expected an integer, got 'abc'"]
    doc["spec"]["suggestionSpec"]["suggestionParameters"] = [{"name": "gamma", "value": "0.25"}]
    spec, _ = load_study(yaml.safe_dump(doc))
    assert dict(spec.algorithm.settings) == {"gamma": 0.25, "multivariate": False}, \
        "Katib's tpe (hyperopt's) models each parameter on its own"


def test_a_template_path_is_refused_saying_where_the_template_goes():
    """A StudyJob whose worker template lives in Katib's ConfigMap names ``templatePath`` and
    says what to do, instead of asking for the rawTemplate it never gave."""
    doc = studyjob(workerSpec={"goTemplate": {"templatePath": "cpuWorkerTemplate.yaml"}})
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    found = {p.path: p.message for p in caught.value.problems}
    assert "rawTemplate" in found["spec.workerSpec.goTemplate.templatePath"]
    assert "spec.workerSpec.goTemplate.rawTemplate" not in found
