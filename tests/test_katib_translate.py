"""Katib Experiments mean what they mean in Katib: values as written, Katib's webhook rules and
field paths, algorithm settings in Katib's sense, trial metadata and ``retain``."""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from http_helpers import run_katuna
from hypothesis import given
from hypothesis import strategies as st
from test_cli import here
from test_katib import experiment

from functions.core import katib, katib_grid, template
from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.job import render_job
from functions.core.launch import TrialLaunch
from functions.core.log_keep import new_summary
from functions.core.metrics import Observation
from functions.core.samplers import build_sampler
from functions.core.space import distributions, sample

BATCH = {"name": "batch", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32", "64"]}}


def problems_of(doc: dict) -> dict[str, str]:
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    return {p.path: p.message for p in caught.value.problems}


def referring_to_all(doc: dict) -> dict:
    """``doc`` whose trial gets the value of every parameter besides the objective's ``x``."""
    names = [p["name"] for p in doc["spec"]["parameters"] if p["name"] != "x"]
    return with_trial_parameters(doc, [{"name": f"t{name}", "reference": name} for name in names],
                                 [f"--{name}=${{trialParameters.t{name}}}" for name in names])


def with_trial_parameters(doc: dict, parameters: list[dict], args: list[str]) -> dict:
    """``doc`` whose trial declares ``parameters`` and passes ``args`` after the objective's ``--x``."""
    doc = copy.deepcopy(doc)
    doc["spec"]["trialTemplate"]["trialParameters"] += parameters
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] += args
    return doc


# Values as written


def test_discrete_values_reach_the_trial_as_the_experiment_wrote_them():
    doc = experiment(parameters=[experiment()["spec"]["parameters"][0], BATCH])
    doc = with_trial_parameters(doc, [{"name": "batchSize", "reference": "batch"}], ["--batch=${trialParameters.batchSize}"])
    spec, _ = load_study(yaml.safe_dump(doc))
    assert spec.parameters[1].values == ("16", "32", "64")
    assert template.format_value(spec.parameters[1].values[0]) == "16"


def test_a_discrete_value_that_is_not_a_number_is_refused_with_its_path():
    bad = {"name": "batch", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "many"]}}
    doc = experiment(parameters=[experiment()["spec"]["parameters"][0], bad])
    doc = with_trial_parameters(doc, [{"name": "b", "reference": "batch"}], ["${trialParameters.b}"])
    assert problems_of(doc)["spec.parameters[1].feasibleSpace.list[1]"].startswith("expected a finite number: ")
    assert problems_of(doc)["spec.parameters[1].feasibleSpace.list[1]"].endswith(", got 'many'")


def _space(kind: str, **space) -> dict:
    """The Experiment whose one parameter ``x`` is of ``kind`` over ``space`` (0 to 10 unless given)."""
    return experiment(parameters=[{"name": "x", "parameterType": kind,
                                   "feasibleSpace": {"min": "0", "max": "10", **space}}])


# What Go's strconv.Atoi / ParseFloat (goptuna) and Python's int() / float() (Katib's other
# suggestion services) do not read alike, or katuna cannot search
NUMBERS_REFUSED = {
    "a fraction for an int": ("int", "min", 1.5, "got 1.5"),
    "true for an int": ("int", "min", True, "got a boolean (true)"),
    "true for a double": ("double", "max", True, "got a boolean (true)"),
    "true for a step": ("int", "step", True, "got a boolean (true)"),
    "an underscore": ("int", "max", "1_0", "got '1_0'"),
    "an underscore in a double": ("double", "max", "1_0.5", "got '1_0.5'"),
    "arabic-indic digits": ("int", "min", "\u0663", "got '\u0663'"),
    "a padded int": ("int", "min", " 3", "got ' 3'"),
    "a padded double": ("double", "max", "4 ", "got '4 '"),
    "a hexadecimal float": ("double", "min", "0x1p-2", "got '0x1p-2'"),
    "nan": ("double", "min", "nan", "got 'nan'"),
    "infinity": ("double", "max", "Infinity", "got 'Infinity'"),
    "past a float": ("double", "max", "1e400", "got '1e400'"),
    "past int64": ("int", "max", str(2**63), f"got '{2**63}'"),
}


@pytest.mark.parametrize("kind,field,value,got", NUMBERS_REFUSED.values(), ids=NUMBERS_REFUSED.keys())
def test_a_bound_katib_does_not_read_as_katuna_would_is_refused_naming_its_field(kind, field, value, got):
    with pytest.raises(InvalidStudy) as caught:
        load_study(json.dumps(_space(kind, **{field: value})))  # JSON: each string stays one
    message = {p.path: p.message for p in caught.value.problems}[f"spec.parameters[0].feasibleSpace.{field}"]
    assert message.startswith("expected an integer: " if kind == "int" else "expected a finite number: ")
    assert message.endswith(got)


def test_bounds_are_read_as_katib_reads_them():
    spec, _ = load_study(json.dumps(_space("int", min="+3", max="010", step="2")))
    assert (spec.parameters[0].low, spec.parameters[0].high, spec.parameters[0].step) == (3, 10, 2)
    spec, _ = load_study(json.dumps(_space("double", min="-.5", max="1E1")))
    assert (spec.parameters[0].low, spec.parameters[0].high) == (-0.5, 10.0)
    spec, _ = load_study(json.dumps(_space("int", min=0, max=7)))
    assert (spec.parameters[0].low, spec.parameters[0].high) == (0, 7)


TRIAL_SCRIPT = (
    "import sys; batch = int(sys.argv[1]); name = sys.argv[2]\n"
    "open(f'seen-{name}', 'w').write(sys.argv[1] + ' ' + sys.argv[3])\n"
    "print(f'loss={batch}')\n"
)


@pytest.mark.slow
def test_katuna_run_passes_discrete_strings_and_trial_metadata_to_the_trial(tmp_path: Path):
    """A trial that parses ``--batch-size`` as an int runs, and sees its own name and namespace."""
    doc = experiment(parameters=[BATCH], parallelTrialCount=1, maxTrialCount=3, maxFailedTrialCount=0)
    doc["spec"]["objective"] = {"type": "minimize", "objectiveMetricName": "loss"}
    doc["spec"]["trialTemplate"]["trialParameters"] = [
        {"name": "batchSize", "reference": "batch"}, {"name": "jobName", "reference": "${trialSpec.Name}"},
        {"name": "where", "reference": "${trialSpec.Namespace}"}]
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, "-c", TRIAL_SCRIPT, "${trialParameters.batchSize}",
                            "${trialParameters.jobName}", "${trialParameters.where}"]
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(doc))
    run = run_katuna("run", "experiment.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    seen = {path.name.removeprefix("seen-"): path.read_text() for path in tmp_path.glob("seen-*")}
    assert len(seen) == 3
    assert all(name.startswith("katib-exp-") for name in seen)
    assert {text.split()[0] for text in seen.values()} <= {"16", "32", "64"}
    assert {text.split()[1] for text in seen.values()} == {"kubeflow"}


# maxFailedTrialCount as Katib counts it


def failing(mode: str, max_failed: int) -> dict:
    """An Experiment of one trial at a time whose every trial fails (``crash``: exits 3;
    ``silent``: exits 0 without the objective, Katib's MetricsUnavailable)."""
    doc = experiment(parallelTrialCount=1, maxTrialCount=5, maxFailedTrialCount=max_failed)
    doc["metadata"]["name"] = f"fails-{mode}"
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"].append(f"--mode={mode}")
    return doc


@pytest.mark.slow
@pytest.mark.parametrize("mode,max_failed,trials", [("crash", 2, 2), ("silent", 1, 1), ("crash", 0, 1)],
                         ids=["two-failures", "no-metrics", "zero"])
def test_katuna_run_fails_an_experiment_once_its_failures_reach_max_failed_trial_count(
        tmp_path: Path, mode: str, max_failed: int, trials: int):
    """As Katib, the Experiment fails when its failed trials reach the count, not past it; 0
    fails it at the first failure, as 1 does."""
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(failing(mode, max_failed)))
    run = run_katuna("run", "experiment.yaml", cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    listed = here("trials", f"fails-{mode}", "--json", cwd=tmp_path)
    states = [t["state"] for t in json.loads(listed.stdout)]
    assert states == ["FAIL"] * trials
    said = " ".join(run.stdout.split())
    assert f"too many failed trials: {trials} failed, maxFailedTrialCount ({max_failed}) reached" in said, \
        "the reason names the count the Experiment gives"


@pytest.mark.slow
@pytest.mark.parametrize("last,metrics", [("loss=nan acc=0.6", {"loss": 0.3, "acc": 0.6}),
                                          ("", {"loss": 0.3, "acc": 0.7}),
                                          ("loss=inf", {"loss": 0.3, "acc": 0.7})],
                         ids=["nan-last", "nan-between", "inf-last"])
def test_a_trial_reporting_nan_keeps_the_value_of_its_finite_reports_as_katib_reads_them(
        tmp_path: Path, last: str, metrics: dict):
    """Katib's collector reads no number from ``loss=nan`` (its rule matches an empty value), and
    its reduction passes over what is no number: a trial that diverged in its last epoch keeps
    its best loss, and every metric its value over its finite reports (Katib's default strategy,
    min in a minimizing Experiment, for ``acc`` too)."""
    doc = experiment(maxTrialCount=1, parallelTrialCount=1, objective={
        "type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["acc"]})
    script = "print('loss=0.5 acc=0.7'); print('loss=0.3 acc=nan')" + (f"; print({last!r})" if last else "")
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        sys.executable, "-c", script, "${trialParameters.position}"]
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(doc))
    run = run_katuna("run", "experiment.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    listed = here("trials", "katib-exp", "--json", cwd=tmp_path)
    trial = json.loads(listed.stdout)[0]
    assert (trial["state"], trial["metrics"]) == ("COMPLETE", metrics), trial


def test_an_experiments_nan_is_no_value_and_a_metric_with_none_other_is_its_first_nan():
    """The translated Experiment passes over NaN and infinities (a native study fails on them);
    with no finite report there is nothing to keep, and the objective is its first value that
    is not finite, so the trial fails saying so (Katib's collector would find it unavailable)."""
    spec = load_study(yaml.safe_dump(experiment()))[0]
    assert spec.metrics_collector.non_finite == "skip"
    mixed = new_summary(spec)
    mixed.add([Observation("loss", 0.5), Observation("loss", math.inf), Observation("size", math.nan)])
    assert mixed.reduced() == {"loss": 0.5, "size": mixed.reduced()["size"]} and math.isnan(mixed.reduced()["size"])
    only = new_summary(spec)
    only.add([Observation("loss", math.inf), Observation("loss", math.nan)])
    assert only.reduced()["loss"] == math.inf


@pytest.mark.parametrize("max_failed,native", [(0, 0), (1, 0), (2, 1), (4, 3)])
def test_katuna_convert_gives_max_failed_trial_count_the_native_rule_of_the_same_meaning(
        tmp_path: Path, max_failed: int, native: int):
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(experiment(maxFailedTrialCount=max_failed)))
    converted = here("convert", "experiment.yaml", cwd=tmp_path)
    assert yaml.safe_load(converted.stdout)["maxFailedTrials"] == native


def test_a_negative_max_failed_trial_count_is_refused_as_written():
    assert problems_of(experiment(maxFailedTrialCount=-1)) == {"spec.maxFailedTrialCount": "expected an integer >= 0, got -1"}


# Every problem at once, with its Experiment path


def test_every_problem_is_listed_at_once_with_its_katib_path():
    doc = experiment(algorithm={"algorithmName": "enas"}, parallelTrialCount=0,
                     parameters=[experiment()["spec"]["parameters"][0],
                                 {"name": "y", "parameterType": "int", "feasibleSpace": {"min": "5", "max": "1"}}])
    doc["spec"]["objective"]["type"] = "maximise"
    doc = with_trial_parameters(doc, [{"name": "y", "reference": "y"}], ["--y=${trialParameters.y}"])
    found = problems_of(doc)
    assert set(found) >= {"spec.algorithm.algorithmName", "spec.objective.type", "spec.parallelTrialCount",
                          "spec.parameters[1].feasibleSpace.max"}
    assert found["spec.objective.type"] == "expected minimize or maximize, got 'maximise'"


@pytest.mark.parametrize(("given", "got"), [("float", "'float'"), (None, "nothing")])
def test_a_parameter_type_katib_does_not_have_is_refused_saying_what_was_given(given, got):
    doc = experiment(parameters=[{"name": "x", "parameterType": given, "feasibleSpace": {"min": "0", "max": "1"}}])
    assert problems_of(doc)["spec.parameters[0].parameterType"] == (
        f"expected int, double, categorical or discrete, got {got}")


def test_parameter_type_unknown_is_refused_saying_katib_s_webhook_takes_it_and_its_services_fail_it():
    doc = experiment(parameters=[{"name": "x", "parameterType": "unknown", "feasibleSpace": {"min": "0", "max": "1"}}])
    assert problems_of(doc)["spec.parameters[0].parameterType"] == (
        "expected int, double, categorical or discrete, got 'unknown' (Katib's webhook takes parameterType "
        "unknown, but no suggestion service samples such a parameter: each fails the Experiment when it builds "
        "its search space)")


def test_a_problem_of_the_translated_study_alone_is_told_with_the_katib_path():
    doc = experiment(maxTrialCount=0)
    del doc["spec"]["parallelTrialCount"], doc["spec"]["maxFailedTrialCount"]
    assert problems_of(doc) == {"spec.maxTrialCount": "expected an integer >= 1, got 0"}


WEBHOOK_RULES = {
    "unknown objective key": (lambda s: s["objective"].update(colour="blue"), "spec.objective.colour"),
    "unknown parameter key": (lambda s: s["parameters"][0].update(colour="blue"), "spec.parameters[0].colour"),
    "unknown feasibleSpace key": (lambda s: s["parameters"][0]["feasibleSpace"].update(colour="blue"),
                                  "spec.parameters[0].feasibleSpace.colour"),
    "no feasibleSpace": (lambda s: s["parameters"][0].pop("feasibleSpace"), "spec.parameters[0].feasibleSpace"),
    "a list for a double": (lambda s: s["parameters"][0]["feasibleSpace"].update(list=["1"]),
                            "spec.parameters[0].feasibleSpace.list"),
    "no max": (lambda s: s["parameters"][0]["feasibleSpace"].pop("max"), "spec.parameters[0].feasibleSpace.max"),
    "no min": (lambda s: s["parameters"][0]["feasibleSpace"].pop("min"), "spec.parameters[0].feasibleSpace.min"),
    "a range for a categorical": (lambda s: s["parameters"][0].update(
        parameterType="categorical", feasibleSpace={"list": ["1"], "min": "0"}), "spec.parameters[0].feasibleSpace"),
    "objective among additional metrics": (lambda s: s["objective"].update(additionalMetricNames=["loss"]),
                                           "spec.objective.additionalMetricNames"),
    "cmaes in one dimension": (lambda s: s["algorithm"].update(algorithmName="cmaes", algorithmSettings=[]),
                               "spec.algorithm.algorithmName"),
    "no algorithm name": (lambda s: s["algorithm"].pop("algorithmName"), "spec.algorithm.algorithmName"),
    "no primary container": (lambda s: s["trialTemplate"].pop("primaryContainerName"),
                             "spec.trialTemplate.primaryContainerName"),
    "no trial parameters": (lambda s: s["trialTemplate"].pop("trialParameters"), "spec.trialTemplate.trialParameters"),
    "a reference to no parameter": (lambda s: s["trialTemplate"]["trialParameters"][0].update(reference="z"),
                                    "spec.trialTemplate.trialParameters[0].reference"),
    "a trial parameter never used": (lambda s: s["trialTemplate"]["trialParameters"].append(
        {"name": "spare", "reference": "${trialSpec.Name}"}), "spec.trialTemplate.trialParameters[1].name"),
    "a trial parameter given twice": (lambda s: s["trialTemplate"]["trialParameters"].append(
        {"name": "position", "reference": "${trialSpec.Name}"}), "spec.trialTemplate.trialParameters[1].name"),
    # generator.go, applyParameters: more parameter assignments than trial parameters fails every trial
    "a parameter no trial parameter refers to": (lambda s: s["parameters"].append(
        {"name": "spare", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}),
        "spec.parameters[1].name"),
    "a reference given twice": (lambda s: s["trialTemplate"]["trialParameters"].append(
        {"name": "again", "reference": "x"}), "spec.trialTemplate.trialParameters[1].reference"),
    "an undeclared placeholder": (lambda s: s["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0][
        "command"].append("${trialParameters.ghost}"), "spec.trialTemplate.trialSpec"),
    "an unknown metadata reference": (lambda s: s["trialTemplate"]["trialParameters"].append(
        {"name": "colour", "reference": "${trialSpec.Colour}"}), "spec.trialTemplate.trialParameters[1].reference"),
    # validator.go, validateEarlyStopping and validateMetricsCollector: an empty section is no default
    "early stopping without its algorithm": (lambda s: s.update(earlyStopping={}), "spec.earlyStopping.algorithmName"),
    "a collector without its kind": (lambda s: s.update(metricsCollectorSpec={"collector": {}}),
                                     "spec.metricsCollectorSpec.collector.kind"),
    "a custom collector": (lambda s: s.update(metricsCollectorSpec={"collector": {
        "kind": "Custom", "customCollector": {"name": "c", "image": "i"}}}),
                           "spec.metricsCollectorSpec.collector.customCollector"),
    "a Directory for the File collector": (lambda s: s.update(metricsCollectorSpec={
        "collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/var/log/m", "kind": "Directory"}}}),
        "spec.metricsCollectorSpec.source.fileSystemPath.kind"),
    "a filter beside the File collector's JSON": (lambda s: s.update(metricsCollectorSpec={
        "collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/var/log/m", "kind": "File",
                                                                     "format": "JSON"},
                                                  "filter": {"metricsFormat": [r"([\w|-]+)\s*=\s*((-?\d+)(\.\d+)?)"]}}}),
        "spec.metricsCollectorSpec.source.filter"),
    # validator.go, validateTrialTemplate: "metadata.name and metadata.namespace in spec.trialTemplate must be omitted"
    "a name for the trial's workload": (lambda s: s["trialTemplate"]["trialSpec"].setdefault("metadata", {}).update(
        name="fixed"), "spec.trialTemplate.trialSpec.metadata.name"),
    "a namespace for the trial's workload": (lambda s: s["trialTemplate"]["trialSpec"].setdefault(
        "metadata", {}).update(namespace="other"), "spec.trialTemplate.trialSpec.metadata.namespace"),
    "too many filters": (lambda s: s.update(metricsCollectorSpec={"collector": {"kind": "StdOut"}, "source": {
        "filter": {"metricsFormat": [rf"(m{i})=([0-9.]+)" for i in range(17)]}}}),
        "spec.metricsCollectorSpec.source.filter.metricsFormat"),
}


@pytest.mark.parametrize("change,path", WEBHOOK_RULES.values(), ids=WEBHOOK_RULES.keys())
def test_katibs_webhook_rules_refuse_by_path(change, path: str):
    doc = experiment()
    change(doc["spec"])
    assert path in problems_of(doc)


def test_a_filter_beside_a_json_metrics_file_is_refused_with_katibs_words_and_text_keeps_its_filter():
    """Katib's webhook: ``filter must be nil when format of metrics file is json`` (validator.go);
    the filter applies to a TEXT file, which is taken."""
    def collected(file_format: str) -> dict:
        return experiment(metricsCollectorSpec={"collector": {"kind": "File"}, "source": {
            "fileSystemPath": {"path": "/var/log/m", "kind": "File", "format": file_format},
            "filter": {"metricsFormat": [r"(\w+)=(\S+)"]}}})
    refused = problems_of(collected("JSON"))
    assert list(refused) == ["spec.metricsCollectorSpec.source.filter"], refused
    assert refused["spec.metricsCollectorSpec.source.filter"].startswith(
        "filter must be nil when format of metrics file is json")
    load_study(yaml.safe_dump(collected("TEXT")))


def filtered(*patterns: str, kind: str = "StdOut") -> dict:
    source = {"fileSystemPath": {"path": "/var/log/katib/metrics.log"}} if kind == "File" else {}
    return experiment(metricsCollectorSpec={"collector": {"kind": kind},
                                            "source": {**source, "filter": {"metricsFormat": list(patterns)}}})


@pytest.mark.parametrize("pattern", [r"((\w+)=\d+)", "(\\w+)=\n(\\d+)", r"(\w+(\d))"])
def test_a_filter_whose_text_lacks_two_groups_one_after_the_other_is_refused_as_katibs_webhook_refuses_it(
        pattern: str):
    """Katib's webhook matches each filter's text against ``.*\\(.*\\).*\\(.*\\).*``: groups that nest,
    or that a line break parts, are refused, though RE2 counts two."""
    found = problems_of(filtered(r"(\w+)=(\d+)", pattern, kind="File"))
    assert found == {"spec.metricsCollectorSpec.source.filter.metricsFormat[1]": (
        f"two top subexpressions are required, as Katib's webhook says: two parenthesised groups, one after the "
        f"other, the metric's name then its value, got {pattern!r}")}


def test_a_stdout_filter_without_two_groups_is_refused_saying_katibs_webhook_takes_it_unchecked():
    """Katib's webhook returns before the filters for a StdOut collector; its collector then reads
    the first two groups as a name and a value, so ``((\\w+)=\\d+)`` names every metric ``loss=3``
    and none is read. The refusal says whose rule it is, and what Katib would do."""
    found = problems_of(filtered(r"((\w+)=\d+)"))
    message = found["spec.metricsCollectorSpec.source.filter.metricsFormat[0]"]
    assert message.startswith("two top subexpressions are required, as Katib's webhook says of a File "
                              "collector's filter (it takes a StdOut filter unchecked, and Katib's collector then "
                              "reads no metric through this one)")


def test_a_filter_katibs_webhook_takes_is_taken_and_one_that_does_not_compile_is_refused_once():
    """``((\\w+)=(\\d+))`` holds two groups one after the other (inside a third): Katib's webhook
    takes it, and so does katuna (both then read its first group, ``acc=1``, as the name)."""
    spec, _ = load_study(yaml.safe_dump(filtered(r"((\w+)=(\d+))")))
    assert spec.metrics_collector.filters == (r"((\w+)=(\d+))",)
    found = problems_of(filtered(r"(\w+=\d+"))
    assert list(found) == ["spec.metricsCollectorSpec.source.filter.metricsFormat[0]"]
    assert found["spec.metricsCollectorSpec.source.filter.metricsFormat[0]"].startswith("not a valid regular expression")


def file_collector(**file: str) -> dict:
    return experiment(metricsCollectorSpec={"collector": {"kind": "File"}, "source": {
        "fileSystemPath": {"kind": "File", **file}}})


@pytest.mark.parametrize(("file", "field", "message"), [
    ({"path": "m.log"}, "path", "expected an absolute path (Katib's webhook: file path where metrics file exists is "
                                "required), got 'm.log'"),
    ({"path": "${trialSpec.Name}/m.log"}, "path", "expected an absolute path"),
    ({"path": "/m.json", "format": "json"}, "format", "expected TEXT or JSON, in capitals (Katib's webhook: format of "
                                                      "metrics file is required for metrics collector), got 'json'"),
    ({"path": "/m.log", "format": "Text"}, "format", "expected TEXT or JSON, in capitals"),
    ({"path": "/m.log", "format": "CSV"}, "format", "expected TEXT or JSON, in capitals"),
])
def test_a_file_collectors_relative_path_or_format_katibs_webhook_refuses_is_refused_naming_the_field(
        file: dict, field: str, message: str):
    found = problems_of(file_collector(**file))
    assert list(found) == [f"spec.metricsCollectorSpec.source.fileSystemPath.{field}"], found
    assert found[f"spec.metricsCollectorSpec.source.fileSystemPath.{field}"].startswith(message)


def test_a_file_collector_takes_an_absolute_path_and_text_by_default_or_json():
    spec, _ = load_study(yaml.safe_dump(file_collector()))
    assert (spec.metrics_collector.path, spec.metrics_collector.format) == ("/var/log/katib/metrics.log", "text")
    spec, _ = load_study(yaml.safe_dump(file_collector(path="/logs/${trialSpec.Name}.json", format="JSON")))
    assert (spec.metrics_collector.path, spec.metrics_collector.format) == ("/logs/${trialSpec.Name}.json", "json")


REPEATED = {
    "a metric strategy": (("objective", "metricStrategies"), [{"name": "loss", "value": "min"},
                                                               {"name": "loss", "value": "latest"}]),
    "an algorithm setting": (("algorithm", "algorithmSettings"), [{"name": "random_state", "value": "3"},
                                                                   {"name": "random_state", "value": "4"}]),
    "an early stopping setting": (("earlyStopping", "algorithmSettings"), [{"name": "min_trials_required",
                                                                            "value": "2"},
                                                                           {"name": "min_trials_required",
                                                                            "value": "3"}]),
}


@pytest.mark.parametrize("where,items", REPEATED.values(), ids=REPEATED.keys())
def test_a_name_given_twice_in_a_list_katib_reads_by_name_is_refused(where: tuple[str, str], items: list):
    """Katib reads one of the two, the first here and the last there; katuna would read the last."""
    doc = experiment(earlyStopping={"algorithmName": "medianstop"})
    doc["spec"][where[0]][where[1]] = items
    found = problems_of(doc)
    assert found[f"spec.{where[0]}.{where[1]}[1].name"] == f"{items[0]['name']!r} is given at [0] already; " \
                                                           "expected each name once"


def test_a_refused_experiment_leads_with_its_reason_and_adds_no_follow_on():
    """One cause, one problem: a trial parameter the trialSpec never uses is the problem (as
    Katib's webhook says it), not also the native advice to reference its parameter in a
    command; neural architecture search is refused as such, without the problems of its
    parameters and template it would otherwise cause; a custom collector once."""
    unused = experiment()
    unused["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"][-1] = "--x=1"
    assert list(problems_of(unused)) == ["spec.trialTemplate.trialParameters[0].name"]
    mistaken = experiment()
    mistaken["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = "X"
    assert list(problems_of(mistaken)) == ["spec.trialTemplate.trialParameters[0].reference"], \
        "not also its parameter as referred to by none"
    nas = experiment(algorithm={"algorithmName": "darts"}, parameters=[],
                     nasConfig={"graphConfig": {"numLayers": 8}, "operations": []})
    nas["spec"]["trialTemplate"]["trialParameters"] = [{"name": "searchSpace", "reference": "search-space"}]
    nas["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"][-1] = \
        "--search-space=${trialParameters.searchSpace}"
    nas["spec"]["resumePolicy"] = "Sometimes"
    found = problems_of(nas)
    assert list(found) == ["spec.nasConfig", "spec.resumePolicy"], "a problem that does not follow from it is still told"
    assert found["spec.nasConfig"].startswith("neural architecture search is not supported: katuna tunes the values "
                                              "of spec.parameters")
    assert found["spec.resumePolicy"] == "expected Never, LongRunning or FromVolume"
    custom = experiment(metricsCollectorSpec={"collector": {"kind": "Custom", "customCollector": {"name": "c"}}})
    assert list(problems_of(custom)) == ["spec.metricsCollectorSpec.collector.customCollector"]


def test_a_name_katib_refuses_is_refused():
    doc = experiment()
    doc["metadata"]["name"] = "a" * 41
    assert "metadata.name" in problems_of(doc)


# Algorithm settings in Katib's sense

SETTINGS = {
    "hyperopt tpe": ("tpe", {"gamma": "0.25", "prior_weight": "1.5", "n_EI_candidates": "12", "random_state": "7"},
                     {"gamma": 0.25, "prior_weight": 1.5, "n_ei_candidates": 12, "n_startup_trials": 1,
                      "multivariate": False}),
    "optuna multivariate-tpe": ("multivariate-tpe", {"n_startup_trials": "3", "n_ei_candidates": "8", "random_state": "7"},
                                {"n_startup_trials": 3, "n_ei_candidates": 8}),
    "goptuna cmaes": ("cmaes", {"sigma": "0.75", "random_state": "7", "restart_strategy": "none"},
                      {"sigma0": 0.5, "n_startup_trials": 0}),
    "goptuna ipop": ("cmaes", {"restart_strategy": "ipop", "random_state": "7"},
                     {"restart_strategy": "ipop", "n_startup_trials": 0}),
    "goptuna bipop": ("cmaes", {"restart_strategy": "bipop", "random_state": "7"},
                      {"restart_strategy": "bipop", "n_startup_trials": 0}),
    "random": ("random", {"random_state": "7"}, {}),
    "sobol": ("sobol", {"random_state": "7"}, {}),
    "grid": ("grid", {"random_state": "7"}, {}),
}


def _with_settings(algorithm: str, settings: dict[str, str]) -> dict:
    second = {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1", "step": "0.5"}}
    doc = experiment(algorithm={"algorithmName": algorithm,
                                "algorithmSettings": [{"name": k, "value": v} for k, v in settings.items()]},
                     parameters=[{"name": "x", "parameterType": "double",
                                  "feasibleSpace": {"min": "-4", "max": "4", "step": "1"}}, second])
    return with_trial_parameters(doc, [{"name": "y", "reference": "y"}], ["--y=${trialParameters.y}"])


@pytest.mark.parametrize("algorithm,settings,expected", SETTINGS.values(), ids=SETTINGS.keys())
def test_katib_settings_become_optuna_settings_of_the_same_meaning(algorithm, settings, expected):
    spec, _ = load_study(yaml.safe_dump(_with_settings(algorithm, settings)))
    assert dict(spec.algorithm.settings) == expected
    assert spec.algorithm.seed == 7


@pytest.mark.parametrize("algorithm", ["random", "cmaes", "hyperband"])
@pytest.mark.parametrize("seed", ["4294967296", "-1"])
def test_a_random_state_out_of_the_seeds_range_is_refused_by_its_name(algorithm: str, seed: str):
    """The seed is checked against its range as the setting is read, so the refusal names
    ``random_state`` at its entry: the native study's check named the entry alone
    (``algorithmSettings[1].value: expected an integer from 0 to 4294967295``), and
    hyperband's not even the entry."""
    doc = _with_settings(algorithm, {"sigma" if algorithm == "cmaes" else "eta": "3", "random_state": seed})
    found = problems_of(doc)
    said = found["spec.algorithm.algorithmSettings[1].value"]
    assert said.startswith(f"random_state of {algorithm}: expected an integer from 0 to 4294967295") and \
        said.endswith(f", got {seed}"), found
    told = "(the seeds katuna's samplers take; Katib's" in said
    assert told == (algorithm != "random" or seed != "-1"), \
        "a seed katuna refuses says what Katib's service does with it, where it does not refuse it up front"


@pytest.mark.parametrize("given", [{}, {"value": None}], ids=["left out", "null"])
def test_a_setting_without_its_value_is_read_as_katib_reads_it_the_empty_string(given: dict):
    """Not as the word ``None``, which is one of ``restart_strategy``'s values: Katib's CMA-ES
    services fail an empty ``restart_strategy``, and katuna refuses it by its path."""
    doc = _with_settings("cmaes", {})
    doc["spec"]["algorithm"]["algorithmSettings"] = [{"name": "restart_strategy", **given}]
    found = problems_of(doc)
    assert list(found) == ["spec.algorithm.algorithmSettings[0].value"]
    assert found["spec.algorithm.algorithmSettings[0].value"].endswith("got ''")


def test_cmaes_sigma_in_the_parameters_units_becomes_optunas_fraction_of_the_narrowest_range():
    """Katib's goptuna takes ``sigma`` in the parameters' units; Optuna's ``sigma0`` is a fraction
    of every range rescaled to [0, 1] (an int's or stepped one's one step wider). Above, x spans
    9 steps of 1 and y 3 of 0.5: y's 1.5 is the narrowest."""
    def sigma0(others: list[dict], sigma: str = "5") -> float:
        x = {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "100"}}
        doc = experiment(algorithm={"algorithmName": "cmaes", "algorithmSettings": [{"name": "sigma", "value": sigma}]},
                         parameters=[x, *others])
        return dict(katib.from_experiment(referring_to_all(doc))["algorithm"]["settings"])["sigma0"]

    def double(low: str, high: str, **more: str) -> dict:
        return {"name": f"p{low}{high}", "parameterType": "double", "feasibleSpace": {"min": low, "max": high, **more}}
    assert sigma0([double("0", "200")]) == 0.05
    assert sigma0([{"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "10"}}]) == 0.5, \
        "an int of 10 values is 10 wide"
    assert sigma0([double("0", "0.7", step="0.1")], "0.08") == pytest.approx(0.1)
    assert sigma0([double("0.001", "10.001", distribution="logUniform"), double("3", "3")]) == 0.5, \
        "goptuna searches a logUniform double in its own units; a single value has no range"


@pytest.mark.slow
def test_cmaes_samples_around_the_mean_with_katibs_sigma():
    """``sigma: 5`` on [0, 100]: goptuna's CMA-ES samples about 50 +- 5, never the corners."""
    doc = experiment(algorithm={"algorithmName": "cmaes", "algorithmSettings": [
        {"name": "sigma", "value": "5"}, {"name": "random_state", "value": "1"}]},
        parameters=[{"name": name, "parameterType": "double", "feasibleSpace": {"min": "0", "max": "100"}}
                    for name in ("x", "y")])
    spec, _ = load_study(yaml.safe_dump(referring_to_all(doc)))
    study = optuna.create_study()
    points = []
    for number in range(12):
        study.sampler = build_sampler(spec.algorithm, spec.parameters, number)
        trial = sample(study, spec.parameters)
        points.append((trial.params["x"], trial.params["y"]))
        study.tell(trial, (trial.params["x"] - 50) ** 2 + (trial.params["y"] - 50) ** 2)
    assert all(20 < value < 80 for point in points[1:] for value in point), points


def test_tpe_takes_the_defaults_of_katibs_hyperopt_service_where_the_experiment_gives_none():
    """hyperopt's TPE starts once as many trials have ended as the request asks for: its first
    request's trials are drawn at random, and a trial asked alone after one ended is TPE's,
    whatever ``parallelTrialCount``; ``ceil(0.25 * sqrt(n))`` trials are the good ones. Optuna's
    own defaults are 10 and a tenth."""
    spec, _ = load_study(yaml.safe_dump(_with_settings("tpe", {})))
    assert dict(spec.algorithm.settings) == {"gamma": 0.25, "n_startup_trials": 1, "multivariate": False}
    doc = _with_settings("tpe", {})
    doc["spec"].update(parallelTrialCount=5, maxTrialCount=10)
    assert dict(load_study(yaml.safe_dump(doc))[0].algorithm.settings)["n_startup_trials"] == 1
    given = load_study(yaml.safe_dump(_with_settings("tpe", {"gamma": "0.5"})))[0]
    assert dict(given.algorithm.settings) == {"gamma": 0.5, "n_startup_trials": 1, "multivariate": False}, \
        "the Experiment's settings win"
    given = load_study(yaml.safe_dump(_with_settings("tpe", {"n_startup_trials": "7"})))[0]
    assert dict(given.algorithm.settings)["n_startup_trials"] == 7
    assert dict(load_study(yaml.safe_dump(_with_settings("multivariate-tpe", {})))[0].algorithm.settings) == {}, \
        "Katib runs multivariate-tpe on Optuna, with Optuna's defaults"


def _modelled_together(spec) -> dict:
    """The parameters the study's TPE models jointly for a trial, once a trial has completed
    (none where it models each parameter on its own)."""
    study = optuna.create_study(sampler=build_sampler(spec.algorithm, spec.parameters, 0))
    study.tell(sample(study, spec.parameters), 1.0)
    sample(study, spec.parameters)
    return study.sampler.infer_relative_search_space(study, study.get_trials(deepcopy=False)[-1])


@pytest.mark.parametrize("settings", [{}, {"n_startup_trials": "3"}], ids=["hyperopt's", "optuna's"])
def test_katibs_tpe_models_each_parameter_on_its_own_as_both_its_services_do(settings: dict):
    """hyperopt's TPE, and Katib's Optuna service (``multivariate=False`` for ``tpe``), model
    each parameter apart; Optuna 5's TPE models them jointly by default. ``multivariate-tpe``
    models them jointly in both."""
    spec, _ = load_study(yaml.safe_dump(_with_settings("tpe", settings)))
    assert _modelled_together(spec) == {}
    joint, _ = load_study(yaml.safe_dump(_with_settings("multivariate-tpe", settings)))
    assert set(_modelled_together(joint)) == {"x", "y"}


def _suggested_beside(spec, running: list[dict]) -> dict:
    """The parameters the study's sampler suggests for trial 12, after ten completed trials (a
    bowl around x = 1), with the trials ``running`` asked and not yet told."""
    space = distributions(spec.parameters)
    study = optuna.create_study()
    for i in range(10):
        point = {"x": float(i % 9 - 4), "y": (i % 3) / 2}
        study.add_trial(optuna.trial.create_trial(params=point, distributions=space, value=(point["x"] - 1) ** 2))
    for point in running:
        study.add_trial(optuna.trial.create_trial(params=point, distributions=space,
                                                  state=optuna.trial.TrialState.RUNNING))
    study.sampler = build_sampler(spec.algorithm, spec.parameters, 12)
    return sample(study, spec.parameters).params


@pytest.mark.parametrize("settings,optunas", [({}, False), ({"n_EI_candidates": "24"}, False),
                                              ({"n_startup_trials": "3"}, True), ({"n_ei_candidates": "24"}, True)],
                         ids=["hyperopt's defaults", "hyperopt's", "optuna's", "optuna's candidates"])
def test_katibs_tpe_heeds_running_trials_in_either_services_terms(settings: dict, optunas: bool):
    """Katib's Optuna service runs TPE with ``constant_liar=True``, which counts each running
    trial as the worst: the next suggestion keeps away from it. Its hyperopt service, which runs
    ``tpe`` by default, is told only the trials that ended, so parallel trials' suggestions pile
    up beside those still running; katuna's TPE heeds them in either service's terms. Given
    Optuna's settings, it runs Optuna's TPE defaults, not hyperopt's ``gamma`` rule and start."""
    spec, _ = load_study(yaml.safe_dump(_with_settings("tpe", {**settings, "random_state": "7"})))
    running = [{"x": 1.0, "y": 0.5}, {"x": 1.0, "y": 0.0}, {"x": 2.0, "y": 0.5}]
    assert _suggested_beside(spec, running) != _suggested_beside(spec, [])
    taken = dict(spec.algorithm.settings)
    assert ("gamma" in taken) != optunas
    if optunas:
        startup = settings.get("n_startup_trials")
        assert taken.get("n_startup_trials") == (startup and int(startup)), \
            "Katib's Optuna service runs Optuna's TPE defaults (10 random trials, a tenth good), not hyperopt's"


def test_tpe_settings_fit_one_of_katibs_services_as_each_refuses_the_others():
    """Katib runs ``tpe`` on hyperopt (gamma, prior_weight, n_EI_candidates) unless a deployment
    routes it to Optuna (n_startup_trials, n_ei_candidates), and ``multivariate-tpe`` on Optuna:
    each service fails the Experiment on a setting it does not know."""
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(_with_settings("tpe", {"gamma": "0.3", "n_startup_trials": "4"})))
    assert [(p.path, p.message) for p in caught.value.problems] == [(
        "spec.algorithm.algorithmSettings", "mixes the settings of Katib's two tpe services, each of which refuses "
        "the other's: gamma (hyperopt's, which runs tpe by default) with n_startup_trials (Optuna's); expected the "
        "settings of one")]
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(_with_settings("tpe", {"bogus": "1"})))
    assert [p.path for p in caught.value.problems] == ["spec.algorithm.algorithmSettings[0].name"], \
        "an unknown setting alone, no mix of services"
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(_with_settings("multivariate-tpe", {"gamma": "0.3", "n_ei_candidates": "8"})))
    assert [p.message for p in caught.value.problems] == [
        "'gamma' is not a setting of Katib's multivariate-tpe; expected one of: random_state, n_ei_candidates, "
        "n_startup_trials"]


def test_bayesian_optimisation_settings_map_to_the_gp_sampler():
    native = katib.from_experiment(_with_settings("bayesianoptimization", {
        "base_estimator": "RF", "n_initial_points": "4", "acq_func": "LCB", "acq_optimizer": "sampling", "random_state": "7"}))
    assert native["algorithm"] == {"name": "gp", "seed": 7, "settings": {
        "n_startup_trials": 4, "base_estimator": "RF", "acq_func": "LCB", "acq_optimizer": "sampling",
        "log_uniform_floats": True}}, "Katib's skopt service searches every double on a log scale"


def test_cmaes_suggests_the_first_trials_from_its_first_generation_as_katibs_goptuna_service_does():
    """Katib's goptuna service starts CMA-ES at once; Optuna's CMA-ES would draw every trial asked
    before one completes (a whole first wave of parallel trials) at random."""
    spec, _ = load_study(yaml.safe_dump(_with_settings("cmaes", {"random_state": "7"})))
    study = optuna.create_study(sampler=build_sampler(spec.algorithm, spec.parameters, 0))
    for _ in range(3):
        study.ask(distributions(spec.parameters))
    assert [trial.system_attrs.get("cma:generation") for trial in study.trials] == [0, 0, 0]


REFUSED = {
    "a restart strategy Katib lacks": ("cmaes", "restart_strategy", "lpop", "value", "expected 'none' or 'None' or 'ipop' or 'bipop'"),
    "a gradient-boosted surrogate": ("bayesianoptimization", "base_estimator", "GBRT", "value", "scikit-learn"),
    "a run-time acquisition": ("bayesianoptimization", "acq_func", "PIps", "value", "run time"),
    "gamma out of range": ("tpe", "gamma", "1.5", "value", "expected a number in (0, 1)"),
    "a word for a count": ("multivariate-tpe", "n_startup_trials", "few", "value", "expected an integer"),
    "another service's setting": ("random", "gamma", "0.25", "name", "not a setting of Katib's random"),
}


@pytest.mark.parametrize("algorithm,name,value,field,reason", REFUSED.values(), ids=REFUSED.keys())
def test_a_setting_without_an_equivalent_is_refused_naming_it_and_the_algorithm(algorithm, name, value, field, reason):
    found = problems_of(_with_settings(algorithm, {name: value}))
    message = found[f"spec.algorithm.algorithmSettings[0].{field}"]
    assert reason in message and (name in message or field == "name") and algorithm in message


# Fields once dropped


def test_primary_pod_labels_are_kept_in_the_translated_study():
    doc = experiment()
    doc["spec"]["trialTemplate"]["primaryPodLabels"] = {"training.kubeflow.org/job-role": "master"}
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["metadata"] = {
        "labels": {"training.kubeflow.org/job-role": "master"}}
    spec, _ = load_study(yaml.safe_dump(doc))
    assert dict(spec.trial_template.primary_pod_labels) == {"training.kubeflow.org/job-role": "master"}
    assert spec.trial_template.to_dict()["primaryPodLabels"] == {"training.kubeflow.org/job-role": "master"}


# Trial metadata and retain


def _launch(spec, retain: bool) -> TrialLaunch:
    tmpl = spec.trial_template
    return TrialLaunch(study=spec.name, uid="u", number=0, attempt=1, job_name="katib-exp-0-1", argv=[], env={},
                       working_dir=".", timeout=None, cluster=spec.trial_cluster, params={"x": 1.5},
                       trial_spec=tmpl.trial_spec, primary_container=tmpl.primary_container, retain=retain)


def test_metadata_trial_parameters_become_the_trials_own_fields():
    doc = with_trial_parameters(experiment(), [
        {"name": "job", "reference": "${trialSpec.Name}"}, {"name": "ns", "reference": "${trialSpec.Namespace}"},
        {"name": "kind", "reference": "${trialSpec.Kind}"}, {"name": "api", "reference": "${trialSpec.APIVersion}"},
        {"name": "team", "reference": "${trialSpec.Labels[team]}"}],
        ["${trialParameters.job}", "${trialParameters.ns}", "${trialParameters.kind}", "${trialParameters.api}",
         "${trialParameters.team}"])
    doc["spec"]["trialTemplate"]["trialSpec"]["metadata"] = {"labels": {"team": "vision"}}
    spec, _ = load_study(yaml.safe_dump(doc))
    job = render_job(_launch(spec, retain=False))
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[-6:] == ["--x=1.5", "katib-exp-0-1", "kubeflow", "Job", "batch/v1", "vision"]


def test_a_metadata_reference_to_a_label_or_annotation_the_trial_spec_lacks_is_refused_by_path():
    """Katib's trial generator fails every trial whose reference names a key the trialSpec's
    labels or annotations lack; a reference that is no metadata field is one problem, not two."""
    doc = with_trial_parameters(experiment(), [
        {"name": "team", "reference": "${trialSpec.Labels[nope]}"},
        {"name": "owner", "reference": "${trialSpec.Annotations[owner]}"},
        {"name": "bogus", "reference": "${trialSpec.Bogus}"}],
        ["${trialParameters.team}", "${trialParameters.owner}", "${trialParameters.bogus}"])
    doc["spec"]["trialTemplate"]["trialSpec"]["metadata"] = {"labels": {"team": "vision"}}
    found = problems_of(doc)
    where = "spec.trialTemplate.trialParameters"
    first = len(experiment()["spec"]["trialTemplate"]["trialParameters"])
    assert found == {
        f"{where}[{first}].reference": "${trialSpec.Labels[nope]} names label 'nope', which spec.trialTemplate."
        "trialSpec.metadata.labels lacks (it has team): Katib fails every trial of such an Experiment (failed to "
        "fetch Label)",
        f"{where}[{first + 1}].reference": "${trialSpec.Annotations[owner]} names annotation 'owner', which spec."
        "trialTemplate.trialSpec.metadata.annotations lacks (it has none): Katib fails every trial of such an "
        "Experiment (failed to fetch Annotation)",
        f"{where}[{first + 2}].reference": "names no parameter: '${trialSpec.Bogus}'; expected a parameter name or "
        "one of ${trialSpec.Name|Namespace|Kind|APIVersion|Labels[key]|Annotations[key]}"}


def test_retain_keeps_the_finished_trials_job():
    doc = experiment()
    doc["spec"]["trialTemplate"]["retain"] = True
    spec, _ = load_study(yaml.safe_dump(doc))
    assert spec.trial_template.retain
    defaults = Cluster(ttl_seconds_after_finished=600)
    assert render_job(_launch(spec, retain=False), defaults)["spec"]["ttlSecondsAfterFinished"] == 600
    assert render_job(_launch(spec, retain=True), defaults)["spec"]["ttlSecondsAfterFinished"] is None


# Katib's defaults and what it accepts


def test_a_file_collector_without_a_path_reads_katibs_default_file():
    spec, _ = load_study(yaml.safe_dump(experiment(metricsCollectorSpec={"collector": {"kind": "File"}})))
    collector = spec.metrics_collector
    assert (collector.kind, collector.path, collector.format) == ("file", "/var/log/katib/metrics.log", "text")


def test_a_json_file_collector_takes_metric_names_as_its_keys_are_written():
    """Katib's JSON collector reads each metric by its key, so no name is refused."""
    doc = experiment(metricsCollectorSpec={"collector": {"kind": "File"}, "source": {"fileSystemPath": {
        "path": "/var/log/katib/metrics.json", "kind": "File", "format": "JSON"}}})
    doc["spec"]["objective"].update(objectiveMetricName="val.loss", additionalMetricNames=["eval/acc", "valid 1 auc"])
    doc["spec"]["objective"]["metricStrategies"] = []
    spec, _ = load_study(yaml.safe_dump(doc))
    assert (spec.objectives[0].metric, spec.additional_metrics) == ("val.loss", ("eval/acc", "valid 1 auc"))


def test_a_metric_name_the_default_filter_cannot_read_is_refused_by_its_own_path():
    doc = experiment()
    doc["spec"]["objective"].update(objectiveMetricName="val.loss", additionalMetricNames=["size", "eval/acc"])
    doc["spec"]["objective"]["metricStrategies"] = []
    found = problems_of(doc)
    assert set(found) == {"spec.objective.objectiveMetricName", "spec.objective.additionalMetricNames[1]"}
    assert "'eval/acc' cannot be matched by the default metric filter" in found["spec.objective.additionalMetricNames[1]"]


def test_an_experiment_without_max_trial_count_or_goal_is_refused_in_katibs_terms():
    doc = experiment()
    del doc["spec"]["maxTrialCount"]
    found = problems_of(doc)
    assert list(found) == ["spec.maxTrialCount"]
    assert found["spec.maxTrialCount"].startswith("required unless spec.objective.goal is set")
    assert "it is deleted" in found["spec.maxTrialCount"] and "timeBudget" not in found["spec.maxTrialCount"]


def test_an_experiment_without_max_trial_count_ends_at_its_goal():
    doc = experiment()
    del doc["spec"]["maxTrialCount"]
    doc["spec"]["objective"]["goal"] = 0.1
    spec, _ = load_study(yaml.safe_dump(doc))
    assert (spec.max_trials, spec.objectives[0].goal) == (None, 0.1)


ARGS_ONLY = {"name": "main", "image": "trainer", "args": ["--x=${trialParameters.position}"]}


@pytest.mark.parametrize(("kind", "source"), [
    ("File", {"fileSystemPath": {"path": "/var/log/katib/metrics.log", "kind": "File"}}),
    ("TensorFlowEvent", {"fileSystemPath": {"path": "/var/log/katib/tfevent/", "kind": "Directory"}})])
def test_a_collector_that_wraps_the_command_refuses_a_container_without_one_at_submission(kind, source):
    """Katib reads the entrypoint from the image; katuna cannot, so the Experiment is refused
    before anything is stored, not at its first trial."""
    doc = experiment(metricsCollectorSpec={"collector": {"kind": kind}, "source": source})
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"] = [ARGS_ONLY]
    found = problems_of(doc)
    path = "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].command"
    assert list(found) == [path]
    assert found[path].startswith(f"required with the {kind} collector") and "image's entrypoint" in found[path]


def test_a_file_collector_on_a_kind_without_pod_template_containers_is_refused_at_submission():
    doc = experiment(metricsCollectorSpec={"collector": {"kind": "File"}})
    doc["spec"]["trialTemplate"].update(primaryContainerName="node", trialSpec={
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
        "spec": {"runtimeRef": {"name": "torch-distributed"},
                 "trainer": {"image": "trainer", "command": ["train", "--x=${trialParameters.position}"]}}})
    found = problems_of(doc)
    assert "TrainJob has no pod template container 'node'" in found["spec.metricsCollectorSpec.collector.kind"]


def test_a_strategy_of_a_metric_not_collected_is_ignored_as_katib_ignores_it():
    doc = experiment()
    doc["spec"]["objective"]["metricStrategies"].append({"name": "other", "value": "max"})
    spec, _ = load_study(yaml.safe_dump(doc))
    assert dict(spec.strategies) == {"loss": "latest"}


def test_a_job_restarting_its_pods_on_failure_is_refused_saying_why():
    """Without a podFailurePolicy a preemption would count as a failure, and a failed
    OnFailure Job's pods, whose log holds the trial's metrics and exit code, are deleted."""
    doc = experiment()
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    found = problems_of(doc)
    message = found["spec.trialTemplate.trialSpec.spec.template.spec.restartPolicy"]
    assert message.startswith("expected Never, got 'OnFailure'") and "podFailurePolicy" in message


def test_a_job_without_backoff_limit_gets_kubernetes_default_as_in_katib():
    spec, _ = load_study(yaml.safe_dump(experiment()))
    assert spec.trial_template.trial_spec["spec"]["backoffLimit"] == 6
    doc = experiment()
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["backoffLimit"] = 0
    spec, _ = load_study(yaml.safe_dump(doc))
    assert spec.trial_template.trial_spec["spec"]["backoffLimit"] == 0


def test_a_job_ttl_too_short_to_read_the_trials_log_is_refused_by_its_katib_path():
    doc = experiment()
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["ttlSecondsAfterFinished"] = 60
    found = problems_of(doc)
    assert found["spec.trialTemplate.trialSpec.spec.ttlSecondsAfterFinished"].startswith("expected at least 600")


def test_a_push_collector_is_refused_with_its_own_reason():
    found = problems_of(experiment(metricsCollectorSpec={"collector": {"kind": "Push"}}))
    assert "takes no pushed metrics" in found["spec.metricsCollectorSpec.collector.kind"]


def test_a_custom_collector_or_an_algorithm_not_run_is_refused_naming_what_katuna_runs():
    """The refusals of Katib's custom collector and of an algorithm katuna does not run say what
    to write instead: every collector kind katuna runs, every algorithm name it takes."""
    custom = problems_of(experiment(metricsCollectorSpec={"collector": {
        "kind": "Custom", "customCollector": {"name": "c", "image": "i"}}}))
    assert custom["spec.metricsCollectorSpec.collector.customCollector"].endswith(
        "expected the collector's kind StdOut, File or TensorFlowEvent, without a customCollector")
    named = problems_of(experiment(algorithm={"algorithmName": "asha"}))["spec.algorithm.algorithmName"]
    assert named.endswith("expected one of random, grid, tpe, multivariate-tpe, cmaes, sobol, bayesianoptimization, "
                          "hyperband, pbt"), named


def test_neural_architecture_search_is_refused_saying_what_comes_closest():
    """Katib's NAS examples (darts, enas): the refusal says what katuna takes instead and the
    closest search it runs, whether the Experiment gives a nasConfig or only the algorithm."""
    nas = experiment(nasConfig={"graphConfig": {"numLayers": 8}, "operations": []})
    message = problems_of(nas)["spec.nasConfig"]
    assert "categorical parameters" in message and "tpe or random" in message
    assert message.endswith("expected spec.parameters in place of spec.nasConfig")
    darts = problems_of(experiment(algorithm={"algorithmName": "darts"}))["spec.algorithm.algorithmName"]
    assert "categorical parameters" in darts and darts.endswith("bayesianoptimization, hyperband, pbt")


@pytest.mark.parametrize("kind, like", [("None", None), ("stdout", "StdOut"), ("tensorflowevent", "TensorFlowEvent")])
def test_a_collector_kind_katib_does_not_have_is_refused_as_such(kind: str, like: str | None):
    """Katib's webhook refuses a kind it does not have (``invalid metrics collector kind``): the
    refusal says so, with the kind it is spelt like, rather than that katuna does not support it."""
    message = problems_of(experiment(metricsCollectorSpec={"collector": {"kind": kind}}))[
        "spec.metricsCollectorSpec.collector.kind"]
    assert message.startswith(f"{kind!r} is no metrics collector kind of Katib's")
    assert (f"spelt like {like} (Katib's kinds are case-sensitive)" in message) is (like is not None)
    assert ("Katib 0.17 and earlier had it" in message and "renamed Push" in message) is (kind == "None")
    assert message.endswith("expected StdOut, File or TensorFlowEvent, the kinds katuna runs")


def test_a_trial_parameter_the_trialspec_never_uses_is_refused_saying_what_to_do():
    unused = experiment()
    unused["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"][-1] = "--x=1"
    [(path, message)] = problems_of(unused).items()
    name = unused["spec"]["trialTemplate"]["trialParameters"][0]["name"]
    assert path == "spec.trialTemplate.trialParameters[0].name"
    assert message.endswith(f"expected the trialSpec to use ${{trialParameters.{name}}} where the trial takes the "
                            "value, or the entry left out")


def hyperband(r_l: str, eta: str | None = None, parallel: int = 9) -> dict:
    """A hyperband Experiment; ``parallel`` trials at once, 9 by default (the largest bracket of
    ``r_l`` 9 with Katib's default ``eta`` 3)."""
    settings = [{"name": "resource_name", "value": "epochs"}, {"name": "r_l", "value": r_l}]
    doc = experiment(algorithm={"algorithmName": "hyperband", "algorithmSettings": [
        *settings, *([{"name": "eta", "value": eta}] if eta is not None else [])]},
        parallelTrialCount=parallel, maxTrialCount=max(parallel, 4),
        parameters=[experiment()["spec"]["parameters"][0],
                    {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}])
    return with_trial_parameters(doc, [{"name": "epochs", "reference": "epochs"}], ["--epochs=${trialParameters.epochs}"])


def test_hyperband_takes_a_whole_r_l_written_as_a_float_as_katib_does():
    spec, _ = load_study(yaml.safe_dump(hyperband("9.0")))
    assert dict(spec.early_stopping.settings)["max_resource"] == 9 and spec.parameters[1].values == (9,)


def test_a_fractional_r_l_is_refused_on_the_field_the_experiment_wrote_alone():
    found = problems_of(hyperband("9.5"))
    assert list(found) == ["spec.algorithm.algorithmSettings[1].value"]
    assert "got 9.5" in found["spec.algorithm.algorithmSettings[1].value"]


@pytest.mark.parametrize(("r_l", "eta", "least"), [("9", None, 9), ("9", "3.0", 9), ("9", "2", 8), ("8", "2", 8),
                                                   ("4", "2", 4), ("2", "2", 2), ("1", "3", 1), ("27", "3", 27)])
def test_hyperbands_parallel_trial_count_holds_its_largest_bracket_as_katibs_service_requires(
        r_l: str, eta: str | None, least: int):
    """Katib's hyperband service (``ValidateAlgorithmSettings``) refuses a ``parallelTrialCount``
    below ``ceil(eta ** smax)``, ``smax = int(log(r_l) / log(eta))``."""
    load_study(yaml.safe_dump(hyperband(r_l, eta, parallel=least)))
    if least > 1:
        found = problems_of(hyperband(r_l, eta, parallel=least - 1))
        assert list(found) == ["spec.parallelTrialCount"]
        message = found["spec.parallelTrialCount"]
        assert message.startswith(f"parallelTrialCount must be not less than {least}, as Katib's hyperband service "
                                  f"requires: its largest bracket runs eta ** int(log(r_l) / log(eta))"), message
        assert message.endswith(f"trials at once; got {least - 1}")


def grid(max_trials: int, *spaces: tuple[str, dict]) -> dict:
    """A grid Experiment of parameters ``(type, feasibleSpace)``, each passed to the trial."""
    parameters = [{"name": f"p{i}", "parameterType": kind, "feasibleSpace": space}
                  for i, (kind, space) in enumerate(spaces)]
    doc = experiment(algorithm={"algorithmName": "grid"}, maxTrialCount=max_trials, parallelTrialCount=1,
                     maxFailedTrialCount=1, parameters=[experiment()["spec"]["parameters"][0], *parameters])
    doc["spec"]["parameters"][0]["feasibleSpace"]["step"] = "1"
    return referring_to_all(doc)


def test_a_grid_experiment_asking_more_trials_than_katibs_grid_has_points_is_refused_at_max_trial_count():
    """Katib's grid service refuses it (``_validate_grid_setting``), counting a double's points
    as ``np.arange`` lists them in floats: 0.01 to 0.05 by 0.01 is 5, 0 to 0.7 by 0.1 is 7."""
    lr = ("double", {"min": "0.01", "max": "0.05", "step": "0.01"})
    n = ("int", {"min": "1", "max": "5"})
    x_points = 9  # the objective's x: -4 to 4 by 1
    found = problems_of(grid(100 * x_points, lr, n))
    assert found == {"spec.maxTrialCount": f"expected at most {25 * x_points}, the points of the grid as Katib's grid "
                                           f"service counts them, which refuses more: Max Trial Count: "
                                           f"{100 * x_points} > all possible search combinations: {25 * x_points}"}
    load_study(yaml.safe_dump(grid(25 * x_points, lr, n)))
    tenths = ("double", {"min": "0", "max": "0.7", "step": "0.1"})
    assert "all possible search combinations: 63" in problems_of(grid(8 * x_points, tenths))["spec.maxTrialCount"]
    load_study(yaml.safe_dump(grid(7 * x_points, tenths)))
    listed = ("categorical", {"list": ["a", "b"]})
    stepped = ("int", {"min": "0", "max": "10", "step": "5"})
    assert "all possible search combinations: 54" in problems_of(grid(55, listed, stepped))["spec.maxTrialCount"]


@given(st.floats(-1e6, 1e6), st.floats(0, 1e3), st.floats(1e-3, 10.0))
def test_a_doubles_grid_is_counted_as_numpy_lists_it_for_katib(low: float, width: float, step: float):
    high = low + width
    listed = np.arange(low, high + step, step)
    expected = len(listed) - (1 if len(listed) and listed[-1] > high else 0)
    assert katib_grid.arange_points(low, high, step) == expected


@pytest.mark.parametrize("algorithm", ["random", "hyperband"])
def test_a_boolean_random_state_is_refused_as_the_experiment_spells_it(algorithm):
    """An unquoted ``value: true`` is a YAML boolean; its refusal shows it as written, never as
    Python's ``True``."""
    doc = experiment(algorithm={"algorithmName": algorithm, "algorithmSettings": [{"name": "random_state", "value": True}]})
    with pytest.raises(InvalidStudy) as caught:
        katib.from_experiment(doc)
    [refusal] = [str(p) for p in caught.value.problems if p.path == "spec.algorithm.algorithmSettings[0].value"]
    assert refusal.startswith(f"spec.algorithm.algorithmSettings[0].value: random_state of {algorithm}: expected an integer")
    assert refusal.endswith(", got 'true'"), refusal
