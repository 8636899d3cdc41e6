"""Experiments as Kubeflow's Katib documentation shows them (its getting-started guide's
``KatibClient.tune``, its metrics-collector and resume guides), beyond Katib's own examples
(``tests/test_katib_examples.py``): the one katuna runs runs as Katib runs it, and the ones it
refuses are refused naming the field, what Katib does with it and what to write instead."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml
from http_helpers import run_katuna

from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.katib_shell import shell_word

DATA = Path(__file__).parent / "data" / "katib_docs"
TUNED = DATA / "getting-started-tune.yaml"


def tuned() -> dict:
    """The Experiment ``tune`` builds for the getting-started guide's objective function."""
    return yaml.safe_load(TUNED.read_text())


def problems_of(doc: dict) -> dict[str, str]:
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    return {p.path: p.message for p in caught.value.problems}


def test_the_getting_started_tune_experiment_runs_each_trial_on_the_values_it_was_given(tmp_path: Path):
    """tune's script pastes each value into Python source as a string in a bash here-document;
    every trial computes its objective from the values it was handed, and the result is read
    from what it printed, as Katib's StdOut collector reads it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")}
    db = str(tmp_path / "k.db")
    done = run_katuna("run", str(TUNED), "--db", db, cwd=tmp_path, env=environ)
    assert done.returncode == 0, done.stderr
    listed = run_katuna("trials", "tune-experiment", "--db", db, "--json", cwd=tmp_path, env=environ)
    trials = json.loads(listed.stdout)
    assert [t["state"] for t in trials] == ["COMPLETE"] * 4
    for trial in trials:
        a, b = trial["params"]["a"], trial["params"]["b"]
        assert isinstance(a, int) and 10 <= a <= 20 and 0.1 <= b <= 0.2
        assert trial["metrics"] == {"result": pytest.approx(4 * a - b ** 2)}
    assert "Study tune-experiment: completed (max trials reached (4))" in done.stdout


def test_a_push_collector_is_refused_naming_what_katib_does_and_what_to_write_instead():
    """The metrics-collector guide's Push collector (``tune(metrics_collector_config={"kind":
    "Push"})``, the trial calling the SDK's ``report_metrics``): katuna has no DB manager to
    receive the metrics, so the refusal says so and how the trial reports them instead."""
    pushed = tuned()
    pushed["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "Push"}}
    message = problems_of(pushed)["spec.metricsCollectorSpec.collector.kind"]
    assert "Katib's DB manager" in message and "report_metrics" in message
    assert "print each metric as name=value" in message and "StdOut, Katib's default" in message
    assert message.endswith("expected StdOut, File or TensorFlowEvent")


def test_an_experiment_ended_only_by_its_failures_is_refused_saying_how_katib_would_end_it():
    """The resume guide's Experiment without ``maxTrialCount`` (nor a goal) runs on Katib until
    ``maxFailedTrialCount`` trials failed: the refusal names that end, not only a deletion."""
    endless = copy.deepcopy(tuned())
    del endless["spec"]["maxTrialCount"]
    endless["spec"]["maxFailedTrialCount"] = 3
    message = problems_of(endless)["spec.maxTrialCount"]
    assert message.startswith("required unless spec.objective.goal is set")
    assert "until 3 of its trials failed (spec.maxFailedTrialCount) or it is deleted" in message


LLM_TUNED = DATA / "llm-tune.yaml"
TRAINER = '''import argparse, json
parser = argparse.ArgumentParser()
parser.add_argument("--training_parameters")
settings = json.loads(parser.parse_args().training_parameters)
print({"train_loss": float(settings["learning_rate"]) * 1000, "epoch": 1.0})
'''
"""A trainer reading its settings as Kubeflow's LLM trainer does (``json.loads`` of the
``--training_parameters`` argument), printing its loss as the Hugging Face trainer logs it."""


def test_a_quoted_json_argument_reaches_the_trainer_unquoted_as_katibs_shell_gives_it(tmp_path: Path):
    """tune's LLM trainer gets its settings as one JSON argument in single quotes, which the
    sh -c line Katib's webhook runs the primary container in removes; the trainer reads the JSON
    and each trial completes with the loss it printed, read by tune's filter."""
    (tmp_path / "trainer.py").write_text(TRAINER)
    doc = yaml.safe_load(LLM_TUNED.read_text())
    template = doc["spec"]["trialTemplate"]
    template["trialSpec"] = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{
            "name": "pytorch", "image": "docker.io/kubeflow/trainer-huggingface",
            "command": ["python3", str(tmp_path / "trainer.py")],
            "args": ["--training_parameters",
                     """'{"output_dir": "results", "learning_rate": "${trialParameters.learning_rate}"}'"""]}]}}}}
    template["trialParameters"] = template["trialParameters"][:1]
    doc["spec"]["parameters"] = doc["spec"]["parameters"][:1]
    (tmp_path / "llm.yaml").write_text(yaml.safe_dump(doc))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")}
    db = str(tmp_path / "k.db")
    done = run_katuna("run", str(tmp_path / "llm.yaml"), "--db", db, cwd=tmp_path, env=environ)
    assert done.returncode == 0, done.stderr
    trials = json.loads(run_katuna("trials", "llm-tune", "--db", db, "--json", cwd=tmp_path, env=environ).stdout)
    assert [t["state"] for t in trials] == ["COMPLETE"] * 2
    for trial in trials:
        assert trial["metrics"] == {"train_loss": pytest.approx(trial["params"]["learning_rate"] * 1000)}


def test_the_llm_tune_experiment_unquotes_only_the_words_katibs_webhook_wraps():
    """Katib's webhook wraps only the primary pods' container (the PyTorchJob's master) in its
    sh -c line: the master's JSON arguments lose their quotes, the worker's keep them, as on Katib."""
    study, _ = load_study(LLM_TUNED.read_text())
    assert study.trial_template.trial_spec is not None
    replicas = study.trial_template.trial_spec["spec"]["pytorchReplicaSpecs"]
    master = replicas["Master"]["template"]["spec"]["containers"][0]["args"]
    worker = replicas["Worker"]["template"]["spec"]["containers"][0]["args"]
    assert master[3] == '{"r": "${trialParameters.r}", "lora_alpha": 8}'
    assert master[5] == '{"output_dir": "results", "learning_rate": "${trialParameters.learning_rate}"}'
    assert worker[3] == """'{"output_dir": "results", "learning_rate": "${trialParameters.learning_rate}"}'"""


@pytest.mark.parametrize(("word", "given"), [
    ("--name='my model'", "--name=my model"),
    ('"a\\"b"', 'a"b'),
    ("a\\ b", "a b"),
    ("'--lr=${trialParameters.lr}'", "--lr=${trialParameters.lr}"),
    ('"--lr=${trialParameters.lr}"', "--lr=${trialParameters.lr}"),
    ("print('a')", "print('a')"),
    ("{'a': 1}", "{'a': 1}"),
    ("it's", "it's"),
    ('"$HOME"', '"$HOME"'),
    ("'a' b", "'a' b"),
])
def test_a_word_is_unquoted_only_where_katibs_shell_does_nothing_else_to_it(word: str, given: str):
    """Quotes and backslashes are removed as a shell removes them; a word the shell would also
    split, expand, glob or fail to read stays as written (such words are refused or documented)."""
    assert shell_word(word) == given
