"""Study definitions: every problem reported at once, by field path, with what was expected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import study_definition, unlined
from test_cli import here, katuna, write_study
from test_render import katib_style

from functions.adapters.sqlite_store import SqliteStore
from functions.core import yaml_documents
from functions.core.errors import InvalidStudy, KatunaError, UnparseableStudy
from functions.core.formats import load_study
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.validate import parse_study

ROOT = Path(__file__).parent.parent


def problems(definition) -> list[str]:
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    return [str(p) for p in caught.value.problems]


def test_the_quickstart_example_is_valid_and_round_trips():
    spec, _ = load_study((ROOT / "examples" / "quickstart.yaml").read_text())
    assert spec.name == "quickstart"
    assert [p.type for p in spec.parameters] == ["int", "float", "float", "categorical", "discrete"]
    assert spec.strategy("accuracy") == "max" and spec.strategy("loss") == "min"
    assert parse_study(spec.to_dict()) == spec


def test_defaults_follow_katib():
    definition = study_definition()
    del definition["parallelism"]
    spec = parse_study(definition)
    assert spec.parallelism == 3
    assert spec.metrics_collector.kind == "stdout" and spec.metrics_collector.format == "text"
    assert spec.strategy("loss") == "min"


def test_every_problem_is_reported_at_once_with_its_path():
    definition = study_definition(name="Not A Label", parallelism=-1, maxTrials=0, colour="blue")
    definition["objective"] = {"metric": "loss", "direction": "sideways", "goal": "low"}
    definition["parameters"] = [
        {"name": "x", "type": "float", "min": 1.0, "max": 0.0},
        {"name": "x", "type": "int", "min": 1.5, "max": 3},
        {"name": "lr", "type": "float", "min": 0.0, "max": 1.0, "log": True},
        {"name": "opt", "type": "categorical", "values": []},
        {"name": "z", "type": "complex"},
    ]
    found = problems(definition)
    expected = [
        "colour: unknown field",
        "name: expected a DNS-1123 label",
        "objective.goal: expected a finite number, got a string 'low'",
        "objective.direction: expected minimize or maximize, got 'sideways'",
        "parameters[0].max: expected >= min (1.0), got 0.0",
        "parameters[1].min: expected an integer, got a number 1.5",
        "parameters[2].min: expected > 0 on a log scale",
        "parameters[3].values: expected at least one value",
        "parameters[4].type: expected int, float, categorical or discrete, got 'complex'",
        "parameters[1].name: parameter 'x' is defined more than once (first at parameters[0]); expected each "
        "name once",
        "parallelism: expected an integer >= 1",
        "maxTrials: expected an integer >= 1",
    ]
    for item in expected:
        assert any(p.startswith(item) for p in found), f"{item!r} missing from {found}"


def test_a_name_that_is_no_label_is_quoted_in_its_problem():
    """As every other problem of the list says what it got, so that a long study file's
    name need not be looked up."""
    found = problems(study_definition(name="My_Study"))
    assert [p for p in found if p.startswith("name:")] == [
        "name: expected a DNS-1123 label: lower-case letters, digits and '-', starting and ending alphanumeric, "
        "at most 63 characters, got 'My_Study'"]


def test_placeholders_must_name_parameters_and_parameters_must_be_used():
    definition = study_definition()
    definition["parameters"].append({"name": "unused", "type": "int", "min": 1, "max": 2})
    definition["trialTemplate"]["command"] += ["${trialParameters.lr}", "${trialParameter.x}"]
    found = problems(definition)
    assert "trialTemplate.command[6]: ${trialParameters.lr} names no parameter; expected one of unused, x" in found
    assert any(p.startswith("trialTemplate.command[7]: unknown placeholder ${trialParameter.x}") for p in found)
    assert any(p.startswith("parameters[1]: 'unused' is not used by trialTemplate") for p in found)


@pytest.mark.parametrize("template, refusal", [
    (None, "trialTemplate: required; expected a mapping with command"),
    ({}, "trialTemplate: expected either command or trialSpec"),
    ({"env": {"A": "1"}}, "trialTemplate: expected either command or trialSpec"),
    ("python train.py", "trialTemplate: expected a mapping, got a string"),
])
def test_a_missing_or_empty_trial_template_is_one_problem(template: dict | str | None, refusal: str):
    """A study written without its trial template, or with none of its command, is told so
    once: not also that ``command`` is required, nor that neither form is given."""
    definition = study_definition()
    if template is None:
        del definition["trialTemplate"]
    else:
        definition["trialTemplate"] = template
    assert [p for p in problems(definition) if p.startswith("trialTemplate")] == [refusal]


def test_a_parameter_refused_its_name_is_not_also_said_to_be_unused_by_a_placeholder_that_cannot_name_it():
    definition = study_definition()
    definition["parameters"].append({"name": "a}b", "type": "int", "min": 1, "max": 2})
    assert [p.split(":")[0] for p in problems(definition)] == ["parameters[1].name"]


@pytest.mark.parametrize("template, refusal", [
    ({"command": "python train.py --x=${trialParameters.x}"},
     "trialTemplate.command: expected a list, got a string 'python train.py --x=${trialParameters.x}'"),
    ({"command": ["python", {"x": "${trialParameters.x}"}]}, "trialTemplate.command[1]: expected a string, got a mapping"),
    ({}, "trialTemplate: expected either command or trialSpec"),
])
def test_a_refused_command_is_the_only_problem_its_placeholders_have(template: dict, refusal: str):
    """The parameters a refused command references are unknown, so none is reported unused."""
    found = problems(study_definition(trialTemplate=template))
    assert refusal in found
    assert not any("is not used by trialTemplate" in p for p in found), found


def test_algorithm_names_and_settings_are_checked():
    assert problems(study_definition(algorithm={"name": "annealing"}))[0].startswith(
        "algorithm.name: unknown algorithm 'annealing'; expected one of cmaes, gp, grid")
    found = problems(study_definition(algorithm={"name": "tpe", "settings": {"n_startup": 3}}))
    assert found[0].startswith("algorithm.settings.n_startup: not a setting of 'tpe'; expected one of:")
    assert "n_startup_trials" in found[0]


def test_grid_needs_finite_values():
    found = problems(study_definition(algorithm={"name": "grid"}))
    assert found == ["parameters[0]: grid needs a finite set of values: give float parameters a step"]


def test_cmaes_refuses_several_objectives():
    definition = study_definition(algorithm={"name": "cmaes"})
    definition["objective"] = {"metrics": [{"name": "loss", "direction": "minimize"},
                                           {"name": "size", "direction": "maximize"}]}
    assert problems(definition) == ["algorithm.name: 'cmaes' supports a single objective only"]


def test_a_study_must_be_able_to_end():
    definition = study_definition()
    del definition["maxTrials"]
    assert problems(definition) == [
        "maxTrials: required unless timeBudget, an objective goal or the grid algorithm ends the study"]
    definition["timeBudget"] = "10m"
    assert parse_study(definition).time_budget == 600


def test_a_study_whose_max_trials_is_null_must_be_able_to_end_too():
    """A null ``maxTrials`` gives no count of trials, as a missing one does: without another end
    the study is refused, not run on to the service's cap."""
    assert problems(study_definition(maxTrials=None)) == [
        "maxTrials: required unless timeBudget, an objective goal or the grid algorithm ends the study"]
    assert parse_study(study_definition(maxTrials=None, timeBudget="10m")).max_trials is None


def test_parallelism_cannot_exceed_max_trials():
    assert problems(study_definition(parallelism=5, maxTrials=2)) == [
        "parallelism: expected at most maxTrials (2), got 5"]


@pytest.mark.parametrize("written", ["9" * 400 + "s", 1e400, "inf"])
def test_a_duration_past_any_number_of_seconds_is_refused_not_taken_for_no_limit(written):
    """A float reads a number of 309 digits as infinity: a timeout so written would be no timeout
    on a local trial, and fail every trial's Job deadline on a cluster."""
    definition = study_definition(timeBudget=written)
    definition["trialTemplate"]["timeout"] = written
    found = problems(definition)
    assert [p.split(":")[0] for p in found] == ["timeBudget", "trialTemplate.timeout"]


@pytest.mark.parametrize("written", ["5 m", "1h 30m", "\u0661\u0660m", "\uff15m"])
def test_a_duration_is_ascii_digits_and_units_with_nothing_between_as_go_reads_one(written):
    definition = study_definition(timeBudget=written)
    assert [p.split(":")[0] for p in problems(definition)] == ["timeBudget"]


def test_an_image_with_whitespace_around_it_is_refused_as_every_pod_of_it_would_be():
    definition = study_definition()
    definition["trialTemplate"]["image"] = "python:3.12 "
    assert problems(definition) == ["trialTemplate.image: expected an image reference without leading or trailing "
                                    "whitespace, got 'python:3.12 ': the API server refuses every pod of such an image"]


def test_durations_and_collectors():
    definition = study_definition(timeBudget="1h30m")
    definition["trialTemplate"]["timeout"] = "soon"
    definition["metricsCollector"] = {"kind": "file", "format": "xml", "filters": ["(unclosed"]}
    found = problems(definition)
    assert any(p.startswith("trialTemplate.timeout: expected a positive duration") for p in found)
    assert "metricsCollector.path: required when kind is file" in found
    assert "metricsCollector.format: expected text or json, got 'xml'" in found
    assert any(p.startswith("metricsCollector.filters[0]: not a valid regular expression") for p in found)


def test_unparseable_text_is_one_clear_problem():
    with pytest.raises(InvalidStudy) as caught:
        load_study("name: [unclosed")
    assert str(caught.value.problems[0]).startswith("not valid YAML or JSON")
    with pytest.raises(InvalidStudy) as caught:
        load_study("- just\n- a list\n")
    assert str(caught.value.problems[0]) == "expected a mapping at the top level of the study definition, got a list"
    assert not isinstance(caught.value, UnparseableStudy), "it parsed: invalid (422), not unparseable (400)"


def test_json_is_accepted_too():
    import json

    spec, definition = load_study(json.dumps(study_definition()))
    assert spec.name == "demo" and definition["maxTrials"] == 4


@pytest.mark.parametrize("field, value, path", [
    ("name", "demo\n", "name"),
    ("parameter", "x\n", "parameters[0].name"),
    ("metric", "loss\n", "objective.metric"),
    ("env", "HOME\n", "trialTemplate.env.HOME\n"),
])
def test_names_with_a_trailing_newline_are_refused(field: str, value: str, path: str):
    definition = study_definition()
    if field == "name":
        definition["name"] = value
    elif field == "parameter":
        definition["parameters"][0]["name"] = value
        definition["trialTemplate"]["command"][3] = f"${{trialParameters.{value}}}"
    elif field == "metric":
        definition["objective"]["metric"] = value
    else:
        definition["trialTemplate"]["env"] = {value: "x"}
    assert any(p.startswith(f"{path}: expected") or p.startswith(f"{path}: metric name") for p in problems(definition)), \
        problems(definition)


@pytest.mark.parametrize("text, path, key, where", [
    ("name: a\nobjective: {metric: loss, direction: minimize}\nname: b\n", "name", "name", "line 3, column 1"),
    ("name: a\nparameters:\n  - {name: x, type: float, min: 0, max: 1, min: 2}\n", "parameters[0].min", "min",
     "line 3, column 44"),
    ('{"name": "a", "trialTemplate": {"env": {"A": "1", "A": "2"}}}', "trialTemplate.env.A", "A", "line 1, column 51"),
])
def test_a_key_given_twice_is_refused_naming_it_and_where(text: str, path: str, key: str, where: str):
    """Its line and column too: the document holding it is not read, so no line is found for its path."""
    with pytest.raises(KatunaError) as caught:
        load_study(text)
    assert [str(p) for p in caught.value.problems] == [f"{path}: duplicate key {key!r}; each key may appear once "
                                                       f"({where})"]


_BIG = "1" + "0" * 400


@pytest.mark.parametrize("text, path, where", [
    (f"name: a\nextra:\n  first: &f {{deep: [1, {{n: {_BIG}}}]}}\n  <<: *f\n", "extra.first.deep[1].n",
     "line 3, column 28"),
    (f"name: a\nextra:\n  <<: {{deep: [1, {{n: {_BIG}}}]}}\n", "extra.<<.deep[1].n", "line 3, column 22"),
    (f"name: a\nbase: &b {{n: [{_BIG}]}}\nlater:\n  - <<: [*b]\n    m: *b\n", "base.n[0]", "line 2, column 15"),
    (f"name: a\n---\n{{x: [1, &n {_BIG}], y: {{<<: {{z: *n}}}}}}\n", "x[1]", "line 3, column 9"),
], ids=["merged-into-the-mapping-holding-its-anchor", "merged-as-written", "aliased-later", "second-document"])
def test_a_number_too_large_in_an_aliased_or_merged_document_is_refused_where_it_is_first_written(
        text: str, path: str, where: str):
    """Not where a merge key copies it: the mapping holding ``<<`` reads as if its pairs were its own."""
    with pytest.raises(yaml.YAMLError) as caught:
        yaml_documents.load_all(text)
    error = getattr(caught.value, "error", caught.value)
    assert str(error) == f"{path}: expected a number of at most 1.8e+308 in magnitude ({where})"


def test_a_warm_start_file_with_a_key_given_twice_is_refused(tmp_path: Path):
    (tmp_path / "results.json").write_text('[{"params": {"x": 1.0, "x": 2.0}, "values": [1.0]}]')
    definition = study_definition(warmStart={"file": str(tmp_path / "results.json")})
    with pytest.raises(InvalidStudy) as caught:
        load_study(json.dumps(definition), read_file=lambda path: Path(path).read_text())
    assert "duplicate key 'x'" in str(caught.value.problems[0])
    assert caught.value.problems[0].path == "warmStart.file"


def pod_study(resources: dict | None = None, **kubernetes) -> dict:
    """A study whose trials run as Jobs, with these container ``resources`` and ``kubernetes`` fields."""
    definition = study_definition(name="pods", kubernetes=kubernetes)
    definition["trialTemplate"].update(image="python:3.12", resources=resources or {"cpu": "1"})
    return definition


@pytest.mark.parametrize("definition", [
    pod_study({"cpu": "500m", "memory": "2Gi", "ephemeral-storage": "10Gi", "gpu": 2, "hugepages-2Mi": "64Mi"}),
    pod_study({"cpu": 1.5, "example.com/fpga": "1", "nvidia.com/gpu": "1.0", "amd.com/gpu": "1e1"}),
    pod_study(nodeSelector={"cloud.google.com/gke-accelerator": "nvidia-l4", "disk": ""}),
    pod_study(tolerations=[{"key": "katuna.dev/trial", "operator": "Exists"}, {"operator": "Exists"},
                           {"key": "gpu", "value": "true", "effect": "NoSchedule"},
                           {"key": "spot", "operator": "Equal", "effect": "NoExecute", "tolerationSeconds": 60}]),
    pod_study(serviceAccountName="trainer.ml-team"),
])
def test_pod_fields_kubernetes_takes_are_accepted(definition: dict):
    parse_study(definition)


@pytest.mark.parametrize("definition,path,words", [
    (pod_study({"gpus": "1"}), "trialTemplate.resources.gpus", "'gpus' is no container resource"),
    (pod_study({"disk": "10Gi"}), "trialTemplate.resources.disk", "no container resource"),
    (pod_study({"gpu": "0.5"}), "trialTemplate.resources.gpu", "nvidia.com/gpu cannot be split"),
    (pod_study({"example.com/fpga": "500m"}), "trialTemplate.resources.example.com/fpga", "cannot be split"),
    (pod_study({"requests.example.com/fpga": "1"}), "trialTemplate.resources.requests.example.com/fpga",
     "no extended resource name"),
    (pod_study({"memory": "2GB"}), "trialTemplate.resources.memory", "expected a quantity"),
    (pod_study({"cpu": "-1"}), "trialTemplate.resources.cpu", "expected a quantity of 0 or more"),
    (pod_study(nodeSelector={"gpu": "nvidia tesla"}), "kubernetes.nodeSelector.gpu", "expected a Kubernetes label value"),
    (pod_study(nodeSelector={"team/": "a"}), "kubernetes.nodeSelector.team/", "expected a Kubernetes label key"),
    (pod_study(tolerations=[{"key": "katuna.dev/trial", "operator": "Exists", "value": "true"}]),
     "kubernetes.tolerations[0].value", "expected no value with operator Exists"),
    (pod_study(tolerations=[{"key": "k", "value": "v", "effect": "NoSchedul"}]),
     "kubernetes.tolerations[0].effect", "got 'NoSchedul'"),
    (pod_study(tolerations=[{"key": "k", "value": "v", "effect": "NoSchedule", "tolerationSeconds": 30}]),
     "kubernetes.tolerations[0].tolerationSeconds", "only with effect NoExecute"),
    (pod_study(tolerations=[{"key": "k", "operator": "In", "value": "v"}]),
     "kubernetes.tolerations[0].operator", "expected Equal or Exists"),
    (pod_study(tolerations=[{"value": "v"}]), "kubernetes.tolerations[0].operator", "expected Exists without a key"),
    (pod_study(tolerations=[{"key": "k", "value": "a b"}]), "kubernetes.tolerations[0].value", "a Kubernetes label value"),
    (pod_study(tolerations=[{"key": "k", "efect": "NoSchedule"}]), "kubernetes.tolerations[0].efect", "unknown field"),
    (pod_study(serviceAccountName="Trainer_SA"), "kubernetes.serviceAccountName", "expected a service account name"),
])
def test_pod_fields_kubernetes_refuses_are_refused_naming_the_field(definition: dict, path: str, words: str):
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    [problem] = caught.value.problems
    assert problem.path == path and words in problem.message, str(problem)


def test_a_trial_spec_job_may_not_replace_pods_before_they_fail():
    definition = study_definition(name="replace")
    definition["trialTemplate"] = {"trialSpec": {
        "apiVersion": "batch/v1", "kind": "Job", "spec": {"podReplacementPolicy": "TerminatingOrFailed", "template": {
            "spec": {"containers": [{"name": "t", "image": "python:3.12", "command": ["python", "-c", "1"],
                                     "args": ["${trialParameters.x}"]}]}}}}}
    assert problems(definition) == [
        "trialTemplate.trialSpec.spec.podReplacementPolicy: expected Failed or nothing, got 'TerminatingOrFailed': "
        "katuna gives trial Jobs a podFailurePolicy (a preempted pod is no failure), with which Kubernetes replaces "
        "a pod only once it has failed"]
    definition["trialTemplate"]["trialSpec"]["spec"]["podReplacementPolicy"] = "Failed"
    parse_study(definition)


def indexed_study(name: str, completions: int, **overrides) -> dict:
    definition = study_definition(name=name, **overrides)
    definition["trialTemplate"] = {"maxAttempts": 3, "trialSpec": {
        "apiVersion": "batch/v1", "kind": "Job", "spec": {"completionMode": "Indexed", "completions": completions,
                                                          "template": {"spec": {"containers": [
            {"name": "t", "image": "python:3.12", "command": ["python", "-c", "1"], "args": ["${trialParameters.x}"]}]}}}}}
    return definition


def test_an_indexed_trial_spec_job_leaves_room_in_every_trials_name_for_its_last_pods_index():
    """``<study>-<last trial>-a<last attempt>-<completions - 1>`` is at most 63 characters: the
    hostname of the last pod of the last trial's last attempt, which the API server requires
    to be a DNS-1123 label when it takes the Job."""
    fits = "f" * (63 - len("-99-a3-9"))
    parse_study(indexed_study(fits, 10, maxTrials=100))
    assert problems(indexed_study(fits + "x", 10, maxTrials=100)) == [
        f"name: expected at most {len(fits)} characters for an Indexed trialSpec Job of 10 completions: the last pod "
        f"of trial 99's attempt 3 would be named {fits}x-99-a3-9 (64 characters), and the API server refuses a Job "
        f"whose pod names pass the 63 of a DNS-1123 label; shorten the name by 1 characters, or lower maxTrials, "
        f"trialTemplate.maxAttempts or completions"]
    assert len(problems(indexed_study(fits, 11, maxTrials=100))) == 1, "the index 10 is a character longer"
    unbounded = indexed_study(fits, 10, timeBudget="1h")
    del unbounded["maxTrials"]
    assert "trial 999999's attempt 3" in problems(unbounded)[0], "without maxTrials, up to KATUNA_MAX_TRIALS"


def test_a_trial_spec_job_may_not_be_suspended():
    """A suspended Job makes no pods: its trial would wait for ever. Kueue suspends and resumes
    the Jobs it queues itself; a template has no reason to."""
    definition = study_definition(name="suspended")
    definition["trialTemplate"] = {"trialSpec": {
        "apiVersion": "batch/v1", "kind": "Job", "spec": {"suspend": True, "template": {
            "spec": {"containers": [{"name": "t", "image": "python:3.12", "command": ["python", "-c", "1"],
                                     "args": ["${trialParameters.x}"]}]}}}}}
    assert problems(definition) == [
        "trialTemplate.trialSpec.spec.suspend: expected false or nothing, got True: a suspended Job makes no pods, "
        "so its trial would never run (an admission controller such as Kueue suspends and resumes Jobs itself)"]
    definition["trialTemplate"]["trialSpec"]["spec"]["suspend"] = False
    parse_study(definition)


def test_a_trial_spec_job_may_not_be_managed_by_another_controller():
    """Kubernetes' Job controller leaves a Job whose ``managedBy`` names another controller:
    MultiKueue runs it on a worker cluster, where katuna sees neither its pods nor their logs,
    and without it nothing runs the Job at all."""
    definition = study_definition(name="managed")
    definition["trialTemplate"] = {"trialSpec": {
        "apiVersion": "batch/v1", "kind": "Job", "spec": {"managedBy": "kueue.x-k8s.io/multikueue", "template": {
            "spec": {"containers": [{"name": "t", "image": "python:3.12", "command": ["python", "-c", "1"],
                                     "args": ["${trialParameters.x}"]}]}}}}}
    assert problems(definition) == [
        "trialTemplate.trialSpec.spec.managedBy: expected kubernetes.io/job-controller or nothing, got "
        "'kueue.x-k8s.io/multikueue': Kubernetes' Job controller leaves a Job another controller manages (MultiKueue "
        "runs it on another cluster), so katuna would see none of its pods and no log, and its trial would wait "
        "for ever"]
    definition["trialTemplate"]["trialSpec"]["spec"]["managedBy"] = "kubernetes.io/job-controller"
    parse_study(definition)


@pytest.mark.parametrize(("field", "why"), [("parallelism", "a Job of parallelism 0 makes no pods"),
                                           ("completions", "a Job of 0 completions succeeds at once without a pod")])
def test_a_trial_spec_job_may_not_run_no_pod(field: str, why: str):
    """The API server takes 0 for either, and the Job then never runs its pod: the trial would
    wait for ever (no container ever starts its timeout), or end as a run lost at every attempt."""
    definition = study_definition(name="empty")
    definition["trialTemplate"] = {"trialSpec": {
        "apiVersion": "batch/v1", "kind": "Job", "spec": {field: 0, "template": {
            "spec": {"containers": [{"name": "t", "image": "python:3.12", "command": ["python", "-c", "1"],
                                     "args": ["${trialParameters.x}"]}]}}}}}
    assert problems(definition) == [
        f"trialTemplate.trialSpec.spec.{field}: expected at least 1 (or nothing), got 0: {why}, so its trial would "
        "never run"]
    definition["trialTemplate"]["trialSpec"]["spec"][field] = 1
    parse_study(definition)


def test_primary_pod_labels_must_be_labels_a_selector_can_name():
    """They become the label selector that finds the primary pods: the API server answers 400
    to a selector of a key or value no label can have, at every read of the trial's pods."""
    definition = study_definition(name="primary")
    definition["trialTemplate"] = {"trialSpec": {
        "apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
            "spec": {"containers": [{"name": "t", "image": "python:3.12", "command": ["python", "-c", "1"],
                                     "args": ["${trialParameters.x}"]}]}}}},
        "primaryPodLabels": {"job role": "master", "training.kubeflow.org/replica-type": "chief worker"}}
    found = problems(definition)
    assert [p.split(":")[0] for p in found] == ["trialTemplate.primaryPodLabels.job role",
                                                 "trialTemplate.primaryPodLabels.training.kubeflow.org/replica-type"]
    assert "expected a Kubernetes label key" in found[0] and "expected a Kubernetes label value" in found[1]
    definition["trialTemplate"]["primaryPodLabels"] = {"job-role": "master"}
    parse_study(definition)


def clashing_study(name: str = "clash") -> dict:
    """A study whose categorical and discrete parameters give values a trial or the sampler
    cannot tell apart."""
    definition = study_definition(name=name, maxTrials=2, parallelism=1)
    definition["parameters"] += [{"name": "c", "type": "categorical", "values": [True, 1, "1", 1.0, None, "a"]},
                                 {"name": "d", "type": "discrete", "values": ["16", 16.0, "32"]}]
    definition["trialTemplate"]["env"] = {"C": "${trialParameters.c}", "D": "${trialParameters.d}"}
    return definition


def refusals(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The problems ``katuna run`` lists, one a line, without the line of the file each names."""
    return [line.strip().removeprefix("- ") for line in unlined(result.stderr).splitlines() if line.startswith("  - ")]


@pytest.mark.slow
def test_list_values_a_trial_or_the_sampler_cannot_tell_apart_are_refused_each_named_and_nothing_stored(tmp_path: Path):
    result = katuna("run", str(write_study(tmp_path / "clash.yaml", clashing_study())), cwd=tmp_path, check=False,
                    columns=1000)
    assert result.returncode == 2, result.stdout + result.stderr
    assert refusals(result) == [
        "parameters[1].values[1]: 1 and true (index 0) are equal as Optuna compares choices (by ==: true == 1 == 1.0, "
        "0.0 == -0.0), so the sampler would take one for the other; expected values that differ",
        "parameters[1].values[2]: \"1\" and 1 (index 1) both reach the trial as '1'; expected values a trial can tell apart",
        "parameters[1].values[3]: 1.0 and true (index 0) are equal as Optuna compares choices (by ==: true == 1 == 1.0, "
        "0.0 == -0.0), so the sampler would take one for the other; expected values that differ",
        "parameters[2].values[1]: 16.0 and \"16\" (index 0) are the same number; expected distinct numbers",
    ]
    assert not (tmp_path / "katuna.db").exists(), "refused before the database is opened"


@pytest.mark.slow
def test_clashing_values_are_refused_with_every_other_problem_of_the_study(tmp_path: Path):
    definition = clashing_study()
    definition["parallelism"] = 9
    definition["parameters"][0]["max"] = -10.0
    result = katuna("run", str(write_study(tmp_path / "clash.yaml", definition)), cwd=tmp_path, check=False,
                    columns=1000)
    assert result.returncode == 2, result.stdout + result.stderr
    paths = [line.partition(":")[0] for line in refusals(result)]
    assert paths == ["parameters[0].max", "parameters[1].values[1]", "parameters[1].values[2]",
                     "parameters[1].values[3]", "parameters[2].values[1]", "parallelism"], refusals(result)
    assert not (tmp_path / "katuna.db").exists(), "refused before the database is opened"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["render", "convert"])
def test_render_and_convert_refuse_clashing_values_as_run_does(tmp_path: Path, command: str):
    result = katuna(command, str(write_study(tmp_path / "clash.yaml", clashing_study())), cwd=tmp_path, check=False,
                    columns=1000)
    assert result.returncode == 2, result.stdout + result.stderr
    assert [line.partition(":")[0] for line in refusals(result)] == [
        "parameters[1].values[1]", "parameters[1].values[2]", "parameters[1].values[3]", "parameters[2].values[1]"]
    assert result.stdout == ""


@pytest.mark.parametrize("values", [["16", "many"], [None, {}, [1], 1, 1.0], ["1", None, "1"]])
def test_a_list_with_values_of_the_wrong_kind_gets_its_own_problems_and_no_clash(values: list):
    """Values no list may hold, or the same value twice, are refused as such; they are never
    compared as clashing choices (nor break the comparison)."""
    definition = study_definition(parameters=[{"name": "x", "type": "float", "min": 0, "max": 1},
                                              {"name": "d", "type": "discrete", "values": values},
                                              {"name": "c", "type": "categorical", "values": values}])
    found = problems(definition)
    assert found and all(p.startswith(("parameters[1].values", "parameters[2].values", "parameters[2]: 'c'",
                                       "parameters[1]: 'd'")) for p in found), found
    assert not any("tell apart" in p or "Optuna compares" in p or "same number" in p for p in found), found


def test_list_values_that_are_not_finite_or_past_2_53_are_refused_saying_what_to_write_instead():
    """NaN equals nothing, so a study listing it would differ from its own definition sent
    again (a 409 where an identical resubmission is a 200, and no restart); an integer past 2**53
    is rounded by the JSON readers the API serves. Quoted, each reaches the trial as written."""
    definition = study_definition(parameters=[
        {"name": "x", "type": "categorical", "values": [float("nan"), "a", float("-inf")]},
        {"name": "d", "type": "discrete", "values": [1, 2**70, float("inf"), "nan"]}])
    definition["trialTemplate"]["command"].append("${trialParameters.d}")
    assert problems(definition) == [
        'parameters[0].values[0]: expected a finite number, got nan; quote it ("nan") to pass the text',
        'parameters[0].values[2]: expected a finite number, got -inf; quote it ("-inf") to pass the text',
        "parameters[1].values[1]: expected an integer of at most 2**53 in magnitude, got 1.18e+21; quote it to "
        "pass it as written",
        "parameters[1].values[2]: expected a finite number, got inf",
        "parameters[1].values[3]: expected a finite number (or a string spelling one), got a string 'nan'",
    ]
    definition["parameters"] = [{"name": "x", "type": "categorical", "values": ["nan", "a", "-inf", 2**53]},
                                {"name": "d", "type": "discrete", "values": [1, str(2**70)]}]
    spec = parse_study(definition)
    assert [p.values for p in spec.parameters] == [("nan", "a", "-inf", 2**53), (1, str(2**70))]


def test_clashing_values_are_no_problem_of_a_study_whose_name_is_stored_and_the_store_is_asked_only_then():
    asked: list[str] = []

    def stored(name: str) -> bool:
        asked.append(name)
        return True

    assert parse_study(study_definition(name="plain"), stored=stored).name == "plain"
    assert parse_study(clashing_study(), stored=stored).name == "clash"
    assert asked == ["clash"]
    with pytest.raises(InvalidStudy) as refused:
        parse_study(clashing_study())
    assert [p.path for p in refused.value.problems] == [
        "parameters[1].values[1]", "parameters[1].values[2]", "parameters[1].values[3]", "parameters[2].values[1]"]


@pytest.mark.slow
def test_a_katib_discrete_list_giving_a_number_twice_is_refused_at_its_feasible_space(tmp_path: Path):
    experiment = yaml.safe_load((ROOT / "examples" / "katib-experiment.yaml").read_text())
    experiment["spec"]["parameters"][1] = {"name": "hidden", "parameterType": "discrete",
                                           "feasibleSpace": {"list": ["16", "32", "1.6e1"]}}
    experiment["spec"]["parameters"][2]["feasibleSpace"]["list"] = ["1", "1.0"]
    (tmp_path / "katib.json").write_text(json.dumps(experiment))
    result = katuna("run", str(tmp_path / "katib.json"), cwd=tmp_path, check=False, columns=1000)
    assert result.returncode == 2, result.stdout + result.stderr
    assert refusals(result) == ['spec.parameters[1].feasibleSpace.list[2]: "1.6e1" and "16" (index 0) are the same '
                                'number; expected distinct numbers'], "categorical strings are told apart as text"
    assert not (tmp_path / "katuna.db").exists(), "refused before the database is opened"


@pytest.mark.slow
def test_a_study_stored_before_list_values_were_checked_resumes_and_shows(tmp_path: Path):
    """A stored study is never rejected again: submitted again to resume it, it is the stored one."""
    definition = clashing_study()
    store = SqliteStore(tmp_path / "katuna.db")
    store.add_study(StudyRecord(parse_study(definition, stored=lambda name: True), definition, str(tmp_path),
                                uid="stored-earlier"))
    store.close()
    result = katuna("run", str(write_study(tmp_path / "clash.yaml", definition)), cwd=tmp_path)
    assert "Study clash: completed (max trials reached (2))" in result.stdout
    shown = json.loads(here("show", "clash", "--json", cwd=tmp_path).stdout)
    assert (shown["counts"]["complete"], shown["definition"]["parameters"][1]["values"]) == (2, [True, 1, "1", 1.0, None, "a"])


def test_problems_of_different_checks_are_listed_together():
    """Each refused pruner setting (Optuna raises at the first), an algorithm that cannot take
    several objectives beside its refused settings, a description that is no text and a
    strategy's metric listed once, all in one answer."""
    definition = study_definition(earlyStopping={"algorithm": "median", "patience": -1, "settings": {
        "n_startup_trials": -1, "n_warmup_steps": -4, "interval_steps": 0}}, description={"a": [1]})
    found = problems(definition)
    assert sorted(p.split(":")[0] for p in found) == [
        "description", "earlyStopping.patience", "earlyStopping.settings.interval_steps",
        "earlyStopping.settings.n_startup_trials", "earlyStopping.settings.n_warmup_steps"], found
    for early_stopping, refused in (({"algorithm": "percentile", "settings": {"percentile": 200}}, ["percentile"]),
                                    ({"algorithm": "asha", "settings": {"min_resource": 0, "bootstrap_count": 2}},
                                     ["min_resource"])):
        assert [p.split(":")[0] for p in problems(study_definition(earlyStopping=early_stopping))] == [
            f"earlyStopping.settings.{name}" for name in refused], "no refusal its removal would cause"
    definition = study_definition(algorithm={"name": "cmaes", "seed": -3})
    definition["objective"] = {"metrics": [{"name": "loss", "direction": "minimize"},
                                           {"name": "acc", "direction": "maximize"}]}
    assert {p.split(":")[0] for p in problems(definition)} == {"algorithm.seed", "algorithm.name"}
    definition = study_definition(description="")
    definition["objective"] = {"metric": "loss", "direction": "minimize", "additionalMetrics": ["acc", "loss"],
                               "strategies": {"f1": "max"}}
    assert "objective.strategies.f1: not a collected metric; expected one of loss, acc" in problems(definition)


@pytest.mark.parametrize("objective", [
    {"metric": "loss", "strategies": {"loss": "latest"}},
    {"metric": "loss", "direction": "upward", "strategies": {"loss": "latest"}},
    {"metrics": [{"name": "loss"}, {"name": "acc", "direction": "maximize"}], "strategies": {"loss": "latest"}}])
def test_an_objective_refused_for_its_direction_still_names_a_metric_its_strategy_may_name(objective):
    """The one problem is the direction's: the objective's metric is still the one a strategy
    names, not "not a collected metric" (a Katib Experiment without ``objective.type`` was told
    both, and the second, at its ``metricStrategies[0].value``, was false)."""
    definition = study_definition()
    definition["objective"] = objective
    found = problems(definition)
    assert len(found) == 1 and "direction" in found[0].split(":")[0], found


def _launch(definition: dict, params: dict):
    spec = parse_study(definition)
    return trial_launch(StudyRecord(spec, definition, "/base", "uid"), TrialRecord(spec.name, 3, params))


def test_a_misspelt_or_missing_parameters_field_is_its_one_problem_not_each_placeholders():
    """``paramters:`` is one mistake: listed as the unknown field and ``parameters`` required,
    without every ``${trialParameters.x}`` of the template and the metrics file also refused
    as naming no parameter ("expected one of none"), which would send the reader to fix them."""
    for given in ({"paramters": [{"name": "x", "type": "float", "min": 0, "max": 1}]}, {}, {"parameters": []},
                  {"parameters": {"name": "x"}}):
        definition = study_definition(metricsCollector={"kind": "file", "path": "out/${trialParameters.x}.log"})
        del definition["parameters"]
        definition.update(given)
        definition["trialTemplate"]["env"] = {"X": "${trialParameters.x}"}
        found = problems(definition)
        assert not [p for p in found if "names no parameter" in p], found
        assert [p for p in found if p.startswith("parameters")], found
    definition = study_definition()
    definition["trialTemplate"]["command"] += ["${trialParameters.y}"]
    assert "trialTemplate.command[6]: ${trialParameters.y} names no parameter; expected one of x" in problems(definition)


def test_a_working_directory_is_each_trials_own_with_its_placeholders_checked():
    definition = study_definition(parameters=[{"name": "x", "type": "float", "min": 0, "max": 1},
                                              {"name": "tool", "type": "categorical", "values": ["a", "b c"]}])
    definition["trialTemplate"]["workingDir"] = "runs/${trialParameters.tool}/${trialSpec.Name}"
    assert _launch(definition, {"x": 0.5, "tool": "b c"}).working_dir == "/base/runs/b c/demo-3"
    definition["trialTemplate"]["workingDir"] = "runs/${trialParameters.nope}/${HOME}"
    found = problems(definition)
    assert "trialTemplate.workingDir: ${trialParameters.nope} names no parameter; expected one of tool, x" in found
    assert any(p.startswith("trialTemplate.workingDir: unknown placeholder ${HOME}; ") for p in found)
    assert "parameters[1]: 'tool' is not used by trialTemplate" in " ".join(found)


def test_a_metrics_file_names_parameters_of_the_study_and_stays_in_the_working_directory():
    definition = study_definition(parameters=[{"name": "x", "type": "float", "min": 0, "max": 1},
                                              {"name": "tag", "type": "categorical", "values": ["a", "b"]}])
    definition["trialTemplate"]["command"] += ["${trialParameters.tag}"]
    definition["metricsCollector"] = {"kind": "file", "path": "out/${trialParameters.tag}-${trialSpec.Name}.log"}
    assert _launch(definition, {"x": 0.5, "tag": "b"}).metrics_file == "out/b-demo-3.log"
    for path, expected in [
        ("out/${trialParameters.nope}.log", "metricsCollector.path: ${trialParameters.nope} names no parameter; "
                                            "expected one of tag, x"),
        ("out/${HOME}.log", "metricsCollector.path: unknown placeholder ${HOME}; expected ${trialParameters.<name>} "
                            "or ${trialSpec.Name}"),
        ("out/../../secret.log", "metricsCollector.path: expected a path inside the trial's working directory "
                                 "(trialTemplate.workingDir), without '..' segments, got 'out/../../secret.log'"),
    ]:
        definition["metricsCollector"]["path"] = path
        assert any(p.startswith(expected) for p in problems(definition)), path
    definition["parameters"][1]["values"] = ["a", "../.."]
    definition["metricsCollector"]["path"] = "out/${trialParameters.tag}/m.log"
    assert any(p.startswith("metricsCollector.path: ${trialParameters.tag} may be '../..', which would take the path "
                            "out of its folder") for p in problems(definition))


@pytest.mark.parametrize(("field", "value", "path"), [
    ("command", [sys.executable, "t.py", "${trialParameters.x}", "a\ud800b"], "trialTemplate.command[3]"),
    ("env", {"X": "\udfff"}, "trialTemplate.env.X"),
    ("env", {"X\udc80": "a"}, "trialTemplate.env.X\\udc80"),
])
def test_a_lone_surrogate_in_what_a_trial_starts_with_is_refused_naming_the_field(field: str, value, path: str):
    definition = study_definition()
    definition["trialTemplate"][field] = value
    assert any(p.startswith(f"{path}: expected ") and "lone surrogates" in p for p in problems(definition))


def test_a_variable_named_as_katunas_own_is_refused_naming_the_field():
    definition = study_definition()
    definition["trialTemplate"]["env"] = {"KATUNA_TRIAL": "7", "KATUNA_PARAM_x": "1", "katuna_own": "ok"}
    found = problems(definition)
    assert [p.split(":")[0] for p in found] == ["trialTemplate.env.KATUNA_PARAM_x", "trialTemplate.env.KATUNA_TRIAL"]
    assert "expected a name not beginning with KATUNA_" in found[0]
    definition = katib_style()
    containers = definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    containers[0]["env"] = [{"name": "KATUNA_STUDY", "value": "other"}]
    assert any(p.startswith("trialTemplate.trialSpec.spec.template.spec.containers[0].env[0].name: expected a name "
                            "not beginning with KATUNA_, got 'KATUNA_STUDY'") for p in problems(definition))


def _with_trial_spec(trial_spec: dict) -> dict:
    definition = study_definition(name="typed")
    definition["trialTemplate"] = {"trialSpec": trial_spec}
    return definition


def _job(**container) -> dict:
    argv = [sys.executable, "-c", "print('loss=1')", "${trialParameters.x}"]
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "t", "image": "python:3.12", "command": argv, **container}]}}}}


WRONG_TYPES = {
    "additionalMetrics": (study_definition(name="typed", objective={"metric": "loss", "direction": "minimize",
                                                                     "additionalMetrics": 3}),
                          "objective.additionalMetrics", "expected a list, got an integer 3"),
    "trialSpec.spec": (_with_trial_spec({**_job(), "spec": 3}), "trialTemplate.trialSpec.spec", "expected a mapping, got an integer"),
    "argo labels": (_with_trial_spec({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"templates": [
        {"name": "train", "metadata": {"labels": -1}, "container": {"command": ["t", "${trialParameters.x}"]}}]}}),
        "trialTemplate.trialSpec.spec.templates[0].metadata.labels", "expected a mapping, got an integer"),
    "env name": (_with_trial_spec(_job(env=[{"name": "A", "value": "1"}, {"name": 5, "value": "x"}])),
                 "trialTemplate.trialSpec.spec.template.spec.containers[0].env[1].name", "expected a string, got an integer"),
}
"""Studies with a field of the wrong type that was a traceback (and a 500), or was taken and
then failed every trial, each with the problem that now refuses it."""


@pytest.mark.parametrize("command", ["convert", "render", "run"])
@pytest.mark.parametrize("case", WRONG_TYPES)
def test_a_field_of_the_wrong_type_exits_2_naming_it_and_stores_nothing(tmp_path: Path, command: str, case: str):
    definition, path, message = WRONG_TYPES[case]
    result = here(command, str(write_study(tmp_path / "typed.yaml", definition)), cwd=tmp_path, check=False)
    assert result.returncode == 2 and f"  - {path}: {message}\n" in unlined(result.stderr), unlined(result.stderr)
    assert not (tmp_path / "katuna.db").exists()


@pytest.mark.parametrize("case", WRONG_TYPES)
def test_a_submitted_field_of_the_wrong_type_is_refused_naming_it_and_nothing_is_stored(client, case: str):
    definition, path, message = WRONG_TYPES[case]
    answer = client.post("/studies", json=definition)
    assert answer.status_code == 422, answer.get_data(as_text=True)[:500]
    assert {"path": path, "message": message} in [{k: p[k] for k in ("path", "message")}
                                                  for p in answer.get_json()["problems"]]
    assert client.get("/studies/typed").status_code == 404


@pytest.mark.parametrize("objective,path,name", [
    ({"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "acc", "direction": "maximize"},
                  {"name": "loss", "direction": "maximize"}]}, "objective.metrics[2].name", "loss"),
    ({"metric": "loss", "direction": "minimize", "additionalMetrics": ["acc", "loss"]}, "objective.additionalMetrics[1]",
     "loss"),
    ({"metrics": [{"name": "acc", "direction": "maximize"}, {"name": "latency", "direction": "minimize"}],
      "additionalMetrics": ["f1", "acc"]}, "objective.additionalMetrics[1]", "acc")])
def test_a_metric_named_twice_is_refused_at_its_repetition(objective, path, name):
    """At the path of the name to remove, not at ``objective`` as a whole; once."""
    definition = study_definition()
    definition["objective"] = objective
    assert problems(definition) == [f"{path}: metric {name!r} is listed more than once"]


@pytest.mark.parametrize("text, first", [
    (json.dumps({**study_definition(name="many"), **{f"field{i}": 0 for i in range(5_000)}}), "field0: unknown field"),
    (json.dumps({**study_definition(name="many"), "description": {f"\x00{i}": 0 for i in range(5_000)}}),
     "description.\\00: expected a name without NUL characters"),
    ("name: many\ndescription:\n" + "- yes\n" * 5_000, "description[0]: yes (line 3, column 3)"),
])
def test_a_study_of_thousands_of_problems_keeps_the_first_hundred_and_counts_the_rest(text, first):
    """A study with a problem in each of its fields (5,000 unknown fields, names holding a NUL,
    scalars YAML 1.1 and 1.2 read differently) keeps the first 100 problems, those an answer
    lists, and counts the others: each one kept took a kilobyte, and a 1 MiB body of them built
    20 to 100 MB before the answer dropped all but those 100."""
    from functions.core.errors import PROBLEMS_LISTED

    with pytest.raises(InvalidStudy) as caught:
        load_study(text)
    refused = caught.value
    assert len(refused.problems) == PROBLEMS_LISTED and str(refused.problems[0]).startswith(first), refused.problems[0]
    assert refused.count >= 5_000 and refused.unlisted == refused.count - PROBLEMS_LISTED
    assert str(refused).startswith(f"invalid study ({refused.count} problem(s))")
    assert str(refused).endswith(f"({refused.count - PROBLEMS_LISTED:,} more problems not listed)")


def _nul_in_env(doc: dict, count: int) -> dict:
    """``doc``, a Katib Experiment, with ``count`` environment variables whose values hold a NUL."""
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": f"V{i}", "value": f"a\x00{i}"} for i in range(count)]
    return doc


@pytest.mark.parametrize("spec, count", [
    ({"resumePolicy": "Sometimes"}, 1 + 150),
    ({"nasConfig": {"graphConfig": {"numLayers": 2}}}, 1),
])
def test_an_experiments_problems_past_the_hundred_listed_are_counted_as_those_listed_are(spec, count):
    """An Experiment with a problem of its own (a ``resumePolicy`` Katib has not) and 150
    values no trial can start with: the native study's problems past the hundred kept count
    too, on every path that reads it; and where the Experiment's own problem makes the others
    mere consequences (a ``nasConfig`` refused: its trial template's problems), none is counted,
    listed or not."""
    from test_katib import experiment

    from functions.core.katib import from_experiment

    doc = _nul_in_env(experiment(**spec), 150)
    for read in (lambda: from_experiment(doc), lambda: load_study(json.dumps(doc))):
        with pytest.raises(InvalidStudy) as caught:
            read()
        assert caught.value.count == count, [str(p)[:60] for p in caught.value.problems[:3]]
        assert str(caught.value).startswith(f"invalid study ({count} problem(s))")


def test_the_placeholders_pasted_into_code_are_looked_for_only_where_no_problem_of_the_template_was_found():
    """A trial template with a problem of its own, found past the hundred problems kept (150
    unknown fields come first), is not read for placeholders pasted into code, as where it is
    among them; one without is."""
    definition = study_definition(name="pasted")
    definition["parameters"].append({"name": "tag", "type": "categorical", "values": ["a b", "c"]})
    definition["trialTemplate"]["command"] = [sys.executable, "-c", "print('${trialParameters.tag}')",
                                              "${trialParameters.x}"]
    definition.update({f"field{i}": 0 for i in range(150)})
    with pytest.raises(InvalidStudy) as pasted:
        parse_study(definition)
    assert pasted.value.count == 150 + 1, "the placeholder pasted into code"
    definition["trialTemplate"]["unknown"] = 1
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    assert caught.value.count == 150 + 1, "the template's unknown field alone"


def test_strings_no_trial_can_start_with_are_found_without_holding_a_problem_for_each():
    """49,000 names holding a NUL: the first 100 by path are kept and the rest counted, and
    the walk holds neither a problem nor a path for each of them (11 MB at the peak before)."""
    import tracemalloc

    definition = study_definition(name="many")
    definition["description"] = {f"\x00{i:05}": 0 for i in range(49_000)}
    tracemalloc.start()
    try:
        with pytest.raises(InvalidStudy) as caught:
            parse_study(definition)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.count == 49_000 + 1, "and the description is no text"
    kept = [p.path for p in caught.value.problems]
    assert kept == [f"description.\\0{i:05}" for i in range(100)]
    assert peak < 2_000_000, f"{peak:,} bytes at the peak"
