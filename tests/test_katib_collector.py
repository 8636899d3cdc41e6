"""The cases of Katib's File metrics collector: katuna reads each input to the metrics Katib's
collector makes of it (``tests/data/katib_collector/cases.yaml``)."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from conftest import run_study, study_definition
from kube_versions import validate_strictly
from test_cli import here

from functions.core.lines import bounded_lines
from functions.core.metric_summary import Summary
from functions.core.metrics import Observation, json_timestamp, parse_json_lines, parse_text


def reduced(observations: list[Observation], strategies: dict[str, str]) -> dict[str, float]:
    """One value per observed metric, as a trial's summary keeps it: its min, max or latest."""
    summary = Summary(strategies, keep=0)
    summary.add(observations)
    return summary.reduced()

DATA = Path(__file__).parent / "data" / "katib_collector"
CASES = yaml.safe_load((DATA / "cases.yaml").read_text())["cases"]


def read(case: dict) -> list[Observation]:
    """The case's file read as the collector reads a trial's file: in chunks, line by line."""
    with (DATA / case["file"]).open("rb") as handle:
        lines = list(bounded_lines(iter(lambda: handle.read(7), b"")))
    if case["format"] == "json":
        return parse_json_lines(lines, case["metrics"])
    return parse_text(lines, case["metrics"], case.get("filters", []))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_each_case_reads_to_the_metrics_katib_keeps(case: dict):
    found = read(case)
    assert [(o.metric, o.value, o.timestamp) for o in found] == [
        (metric, float(value), timestamp) for metric, value, timestamp in case["observations"]]
    objective = case["metrics"][0]
    assert any(o.metric == objective for o in found) is case.get("objective_reported", True)
    for strategy, expected in case.get("reduced", {}).items():
        assert reduced(found, dict.fromkeys(case["metrics"], strategy)) == expected


def test_epoch_timestamps_name_their_instant_and_odd_ones_are_dropped():
    assert json_timestamp(1638422847) == "2021-12-02T05:27:27Z"
    assert json_timestamp(0.5) == "1970-01-01T00:00:00.5Z"
    assert json_timestamp(1.5e-7) == "1970-01-01T00:00:00.00000015Z"
    for odd in ("", "invalid", "2021-12-02", "2021-13-02T00:00:00Z", True, None, -1, math.nan, 1e300):
        assert json_timestamp(odd) is None, odd


def katib_file_study(case: dict, direction: str, tmp_path: Path) -> dict:
    """A study whose trials copy the case's input into their metrics file, as a training program
    writing its log would."""
    shutil.copy(DATA / case["file"], tmp_path / "input")
    metrics = case["metrics"]
    copy = f"import shutil; shutil.copy('input', 'metrics/{case['file']}')"
    definition = study_definition(
        objective={"metric": metrics[0], "direction": direction, "additionalMetrics": metrics[1:]},
        maxTrials=1, parallelism=1,
        metricsCollector={"kind": "file", "path": f"metrics/{case['file']}", "format": case["format"],
                          "filters": case.get("filters", [])},
    )
    definition["trialTemplate"]["command"] = [sys.executable, "-c", "import os; os.makedirs('metrics', exist_ok=True); "
                                              f"{copy}  # x=${{trialParameters.x}}"]
    return definition


@pytest.mark.parametrize("name", ["logs in TEXT format", "logs in JSON format"])
def test_a_trial_writing_the_file_gets_katibs_metrics(embedded, tmp_path: Path, name: str):
    case = next(c for c in CASES if c["name"] == name)
    run_study(embedded, katib_file_study(case, "maximize", tmp_path), tmp_path)
    trial = embedded.store.trials("demo")[0]
    assert trial.state == "COMPLETE", trial.reason
    assert trial.metrics == case["reduced"]["max"]


def test_a_file_without_the_objective_leaves_the_trial_without_metrics(embedded, tmp_path: Path):
    case = next(c for c in CASES if c["file"] == "invalid-value.log")
    run_study(embedded, katib_file_study(case, "maximize", tmp_path), tmp_path)
    trial = embedded.store.trials("demo")[0]
    assert trial.state == "FAIL"
    assert trial.reason.startswith("metrics unavailable: objective 'accuracy' never reported")


@pytest.mark.slow
def test_katuna_render_shows_the_wrapped_container_and_the_job_is_valid(tmp_path: Path):
    """``katuna render`` prints the Job as the cluster gets it: the File collector's wrapper
    around the command, and an emptyDir at the metrics file's folder, valid for Kubernetes."""
    definition = study_definition(metricsCollector={"kind": "file", "path": "/var/log/katib/${trialSpec.Name}.log"})
    definition["trialTemplate"]["image"] = "python:3.12"
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(definition))
    done = here("render", "study.yaml", "--params", "x=1.5", cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    job = yaml.safe_load(done.stdout)
    pod = job["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    assert command[:2] == ["sh", "-c"] and command[3:5] == ["katuna-metrics-file", "/var/log/katib/demo-0.log"]
    assert command[5:] == definition["trialTemplate"]["command"][:2] + ["--x", "1.5", "--mode", "ok"]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "katuna-metrics-file", "mountPath": "/var/log/katib"}]
    validate_strictly(["-"], stdin=done.stdout)
