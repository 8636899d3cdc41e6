"""Katib v1beta1 Experiments: translated field by field, run unchanged, refused loudly where unsupported."""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import TRIAL
from http_helpers import Service, run_katuna
from test_cli import here

from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.job import render_job
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.samplers import build_sampler
from functions.core.space import sample
from functions.core.trial_spec import located_containers
from functions.core.validate import parse_study

ROOT = Path(__file__).parent.parent


def experiment(**spec_overrides) -> dict:
    """A Katib Experiment whose trial is tests/trials/objective.py."""
    doc = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": "katib-exp", "namespace": "kubeflow"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["size"],
                          "metricStrategies": [{"name": "loss", "value": "latest"}]},
            "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "3"}]},
            "parallelTrialCount": 2, "maxTrialCount": 4, "maxFailedTrialCount": 1,
            "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-4", "max": "4"}}],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "position", "reference": "x", "description": "where to look"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "containers": [{"name": "main", "image": "python:3.12",
                                    "command": [sys.executable, str(TRIAL), "--x=${trialParameters.position}"]}],
                    "restartPolicy": "Never"}}}},
            },
        },
    }
    doc["spec"].update(copy.deepcopy(spec_overrides))
    return doc


def test_an_experiment_translates_field_by_field():
    spec, submitted = load_study(yaml.safe_dump(experiment()))
    assert submitted["kind"] == "Experiment"
    assert (spec.name, spec.parallelism, spec.max_trials) == ("katib-exp", 2, 4)
    assert spec.max_failed_trials == 0, "Katib fails the Experiment at its first failure when the count is 1"
    assert spec.objectives[0].metric == "loss" and spec.additional_metrics == ("size",)
    assert spec.strategy("loss") == "latest" and spec.strategy("size") == "min"
    assert (spec.algorithm.name, spec.algorithm.seed) == ("random", 3)
    assert (spec.parameters[0].type, spec.parameters[0].low, spec.parameters[0].high) == ("float", -4.0, 4.0)
    assert spec.kubernetes.namespace == "kubeflow"
    container = spec.trial_template.trial_spec["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == "--x=${trialParameters.x}", "trial parameters resolve to their reference"


def test_an_experiment_runs_locally_as_its_primary_container(embedded, tmp_path: Path):
    spec, definition = load_study(yaml.safe_dump(experiment()))
    embedded.submit(spec, definition, tmp_path)
    record = embedded.run("katib-exp")
    assert record.status == "completed"
    trials = embedded.store.trials("katib-exp")
    assert len(trials) == 4 and all(t.state == "COMPLETE" for t in trials)
    assert all(t.values[0] == pytest.approx((t.params["x"] - 2) ** 2, abs=1e-5) for t in trials)


NAMED_TRIAL = ("import os, sys\n"
               "name = os.environ.get('KATIB_TRIAL_NAME')\n"
               "sys.exit(f'no KATIB_TRIAL_NAME') if name is None else print(f'loss={name.rsplit(\"-\", 1)[1]}')\n")
"""A trial that reads its Trial's name as Katib's pod webhook passes it, and fails without it."""


def test_a_local_trial_reads_its_trial_name_from_katib_trial_name(embedded, tmp_path: Path):
    """Katib gives every trial's primary container ``KATIB_TRIAL_NAME`` (its SDK's
    ``report_metrics`` reads it, as may a program naming its outputs after its trial)."""
    doc = experiment(maxTrialCount=2, parallelTrialCount=1)
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, "-c", NAMED_TRIAL, "${trialParameters.position}"]
    spec, definition = load_study(yaml.safe_dump(doc))
    embedded.submit(spec, definition, tmp_path)
    assert embedded.run("katib-exp").status == "completed"
    assert sorted(t.values[0] for t in embedded.store.trials("katib-exp")) == [0.0, 1.0]


def _pytorch_job() -> dict:
    """A Katib Experiment whose trial is a PyTorchJob, master and worker both ``pytorch``."""
    doc = experiment()
    replica = {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [
        {"name": "pytorch", "image": "python:3.12", "command": ["python3", "train.py", "--x=${trialParameters.position}"]},
        {"name": "sidecar", "image": "busybox", "command": ["sleep", "1"]}]}}}
    doc["spec"]["trialTemplate"]["primaryContainerName"] = "pytorch"
    doc["spec"]["trialTemplate"]["trialSpec"] = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {
        "pytorchReplicaSpecs": {"Master": copy.deepcopy(replica), "Worker": copy.deepcopy(replica)}}}
    return doc


@pytest.mark.parametrize("doc", [experiment(), _pytorch_job()], ids=["Job", "PyTorchJob"])
def test_a_trial_workload_gives_katib_trial_name_to_every_container_named_primary(doc: dict):
    """As Katib's pod webhook does for every pod of a trial: the Job's primary container, and a
    PyTorchJob's master's and workers' ``pytorch`` containers, hold the Trial's name (the same
    on a later attempt); no other container does."""
    spec, definition = load_study(yaml.safe_dump(doc))
    record = StudyRecord(spec, definition, "/somewhere", "uid")
    for attempt in (1, 2):
        rendered = render_job(trial_launch(record, TrialRecord(spec.name, 7, {"x": 0.5}, attempt=attempt)), Cluster())
        named = {(where, own): [e.get("value") for e in c.get("env") or [] if e["name"] == "KATIB_TRIAL_NAME"]
                 for where, _, own, c in located_containers(rendered)}
        primary = doc["spec"]["trialTemplate"]["primaryContainerName"]
        assert named and all(found == (["katib-exp-7"] if own == primary else []) for (_, own), found in named.items())


def test_a_native_study_gets_no_katib_trial_name(tmp_path: Path):
    definition = {"name": "native", "objective": {"metric": "loss", "direction": "minimize"}, "maxTrials": 1,
                  "parameters": [{"name": "x", "type": "float", "min": 0, "max": 1}],
                  "trialTemplate": {"command": ["python3", "t.py", "${trialParameters.x}"], "image": "python:3.12"}}
    spec = parse_study(definition)
    launch = trial_launch(StudyRecord(spec, definition, str(tmp_path), "uid"), TrialRecord(spec.name, 0, {"x": 0.5}))
    assert "KATIB_TRIAL_NAME" not in launch.env
    assert "KATIB_TRIAL_NAME" not in str(render_job(launch, Cluster()))


def test_a_local_trial_fails_at_its_jobs_active_deadline_as_kubernetes_fails_the_job(embedded, tmp_path: Path):
    """Katib's trial fails once its Job runs past ``activeDeadlineSeconds`` (DeadlineExceeded);
    a local trial has no Job, so it is ended there, not allowed to run on and report a value."""
    doc = experiment(maxTrialCount=1, parallelTrialCount=1)
    job = doc["spec"]["trialTemplate"]["trialSpec"]
    job["spec"]["activeDeadlineSeconds"] = 2
    job["spec"]["template"]["spec"]["containers"][0]["command"] = [
        sys.executable, "-c", "import time; print('loss=0.9', flush=True); time.sleep(6); print('loss=0.1')",
        "--x=${trialParameters.position}"]
    spec, definition = load_study(yaml.safe_dump(doc))
    embedded.submit(spec, definition, tmp_path)
    embedded.run("katib-exp")
    [trial] = embedded.store.trials("katib-exp")
    assert trial.state == "FAIL" and trial.values is None
    assert trial.reason.startswith("timed out: ran past its Job's spec.activeDeadlineSeconds of 2s (DeadlineExceeded")
    assert trial.finished_at - trial.started_at < 5


@pytest.mark.parametrize("deadline", [-1, "soon", 1.5, True, 2**63, 9_223_372_037])
def test_a_job_deadline_kubernetes_would_refuse_is_refused_naming_it(deadline):
    """The batch API takes a Job's ``activeDeadlineSeconds`` not negative, in an int64; its Job
    controller counts it in a Go duration, which holds 9223372036 seconds (a longer one reads as
    one already past, and fails the Job at once)."""
    doc = experiment()
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = deadline
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("spec.trialTemplate.trialSpec.spec.activeDeadlineSeconds",
         "expected a whole number of seconds from 0 to 9223372036, as Kubernetes counts a Job's (0 fails it at once, "
         f"and so does a longer one: the Job controller's clock cannot hold it), got {deadline!r}")]


def test_a_job_deadline_of_zero_is_taken_and_ends_each_local_trial_at_once(embedded, tmp_path: Path):
    """Kubernetes takes 0, and its Job controller fails such a Job at its first sync
    (``DeadlineExceeded``): a local trial is ended at once, as its Job would be."""
    doc = experiment(maxTrialCount=1, parallelTrialCount=1)
    job = doc["spec"]["trialTemplate"]["trialSpec"]
    job["spec"]["activeDeadlineSeconds"] = 0
    job["spec"]["template"]["spec"]["containers"][0]["command"] = [
        sys.executable, "-c", "import time; time.sleep(6); print('loss=0.1')", "--x=${trialParameters.position}"]
    spec, definition = load_study(yaml.safe_dump(doc))
    embedded.submit(spec, definition, tmp_path)
    embedded.run("katib-exp")
    [trial] = embedded.store.trials("katib-exp")
    assert trial.state == "FAIL" and trial.values is None
    assert trial.reason.startswith("timed out: ran past its Job's spec.activeDeadlineSeconds of 0s (DeadlineExceeded")


def args_only(**spec_overrides) -> dict:
    """An Experiment whose primary container gives only ``args``, as Katib's XGBoostJob example
    does: the image's entrypoint runs them."""
    doc = experiment(**spec_overrides)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"] = [
        {"name": "main", "image": "trainer", "args": ["--job_type=Train", "--x=${trialParameters.position}"]}]
    return doc


def test_a_container_with_args_alone_is_refused_where_trials_run_on_this_machine(embedded, tmp_path: Path):
    spec, definition = load_study(yaml.safe_dump(args_only()))
    with pytest.raises(InvalidStudy) as caught:
        embedded.submit(spec, definition, tmp_path)
    [problem] = caught.value.problems
    assert problem.path == "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].command"
    assert problem.message.startswith("required where trials run on this machine")
    assert "outside a cluster its image's entrypoint is not known" in problem.message
    assert "give it the command the entrypoint runs" in problem.message
    assert embedded.store.list_studies() == []


def test_a_container_with_args_alone_is_taken_where_trials_run_on_a_cluster():
    from functions.pools import check_study
    from functions.settings import Settings

    spec, definition = load_study(yaml.safe_dump(args_only()))
    check_study(spec, definition, Settings(), runs_jobs=True)


EXAMPLES = Path(__file__).parent / "data" / "katib_examples"


@pytest.mark.parametrize("example, refused", [
    ("katib-argo-workflow", {"spec.templates[2].container.command[3]": "Argo's {{inputs.parameters.epochs}}"}),
    ("tekton-pipeline-run", {"spec.pipelineSpec.tasks[1].taskSpec.steps[0].command[2]": "Tekton's $(params.epochs)",
                             "spec.pipelineSpec.tasks[1].taskSpec.steps[0].command[4]": "Tekton's $(params.lr)"}),
])
def test_a_workflow_step_reading_what_its_engine_fills_in_is_refused_where_trials_run_on_this_machine(
        embedded, tmp_path: Path, example: str, refused: dict[str, str]):
    """Katib's Argo and Tekton examples pass their training step a value an earlier step made:
    a local trial runs that step's command alone, with no engine to fill it in, so each trial
    would get ``--epochs={{inputs.parameters.epochs}}`` as written and fail."""
    spec, definition = load_study((EXAMPLES / f"{example}.yaml").read_text())
    with pytest.raises(InvalidStudy) as caught:
        embedded.submit(spec, definition, tmp_path)
    found = {problem.path.removeprefix("spec.trialTemplate.trialSpec."): problem.message
             for problem in caught.value.problems}
    assert list(found) == list(refused)
    for path, expression in refused.items():
        assert f"holds {expression}" in found[path] and "expected a value without it here" in found[path]
    assert embedded.store.list_studies() == []


def test_a_workflow_step_reading_what_its_engine_fills_in_is_taken_where_trials_run_on_a_cluster():
    from functions.pools import check_study
    from functions.settings import Settings

    spec, definition = load_study((EXAMPLES / "katib-argo-workflow.yaml").read_text())
    check_study(spec, definition, Settings(), runs_jobs=True)


@pytest.mark.parametrize("example, told", [
    ("tfjob-mnist-with-summaries", "every trial writes its event files under /katib/mnist-with-summaries-logs/test, "
                                   "and 2 would run at once on this machine (parallelism): each would read the event "
                                   "files of the trials running beside it"),
    ("file-metrics-collector", "every trial writes its metrics to /katib/mnist.log, and 2 would run at once on this "
                               "machine (parallelism): each would read the lines of the trials running beside it"),
])
def test_trials_at_once_sharing_a_metrics_path_are_refused_in_the_words_of_its_collector(example: str, told: str):
    """Katib's TFJob example writes its event files to one folder, each pod its own on a cluster;
    two local trials at once would read each other's: refused by path, saying it of the
    event files and a folder (not of lines and a file, which the File collector reads)."""
    from functions.pools import check_study
    from functions.settings import Settings

    doc = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
    doc["spec"].update(maxTrialCount=2, parallelTrialCount=2)
    spec, definition = load_study(yaml.safe_dump(doc))
    with pytest.raises(InvalidStudy) as refused:
        check_study(spec, definition, Settings(), runs_jobs=False)
    [problem] = refused.value.problems
    assert problem.path == "spec.metricsCollectorSpec.source.fileSystemPath.path"
    assert problem.message.startswith(told), problem.message
    own = "folder" if "event files" in told else "file"
    assert f"each pod has its own {own}); expected a path naming each trial's own {own}," in problem.message


def reading_from_the_pod() -> dict:
    """An Experiment whose primary container reads a variable from a Secret, one from the pod's
    labels and every key of a ConfigMap, beside a plain one; a sidecar reads one too."""
    doc = experiment()
    pod = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod["containers"][0]["env"] = [
        {"name": "PLAIN", "value": "1"},
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "data", "key": "api-key"}}},
        {"name": "TRIAL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['katib.kubeflow.org/trial']"}}}]
    pod["containers"][0]["envFrom"] = [{"configMapRef": {"name": "settings"}}]
    pod["containers"].append({"name": "side", "image": "busybox", "command": ["sleep", "1"],
                              "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]})
    return doc


def test_a_variable_kubernetes_reads_from_elsewhere_is_refused_where_trials_run_on_this_machine(client):
    """A local trial has no pod: a variable read from a Secret, a ConfigMap or the pod's fields
    would be unset in every trial, where the same trial on a cluster gets it. Each is named, and
    what it reads from; the sidecar is not run here, so it is refused as a container that would
    not run (:func:`test_a_pods_other_parts_are_refused_where_trials_run_on_this_machine`), not
    for its variable."""
    answer = client.post("/studies", data=yaml.safe_dump(reading_from_the_pod()), content_type="application/yaml")
    assert answer.status_code == 422, answer.get_json()
    found = {p["path"].removeprefix("spec.trialTemplate.trialSpec.spec.template.spec.containers[0]."): p["message"]
             for p in answer.get_json()["problems"]}
    assert found.pop("spec.trialTemplate.trialSpec.spec.template.spec.containers[1]").startswith("container 'side'")
    assert list(found) == ["env[1].valueFrom", "env[2].valueFrom", "envFrom[0]"]
    assert found["env[1].valueFrom"].startswith("variable 'API_KEY' is read from key 'api-key' of Secret 'data' "
                                                "when Kubernetes starts the container")
    assert "the pod's field \"metadata.labels['katib.kubeflow.org/trial']\"" in found["env[2].valueFrom"]
    assert found["envFrom[0]"].startswith("every variable it names is read from ConfigMap 'settings'")
    assert all("the trial would run without it: expected a plain value here" in m for m in found.values())
    assert client.get("/studies/katib-exp").status_code == 404, "nothing is stored"


def test_a_variable_kubernetes_reads_from_elsewhere_is_taken_where_trials_run_on_a_cluster():
    from functions.pools import check_study
    from functions.settings import Settings

    spec, definition = load_study(yaml.safe_dump(reading_from_the_pod()))
    check_study(spec, definition, Settings(), runs_jobs=True)


def with_pod_parts() -> dict:
    """An Experiment whose trial's pod holds more than its primary container: an init container
    that fetches the data set into a folder shared with it, a sidecar it talks to, and mounts of
    a claim (the data set), that shared folder and a memory-backed ``/dev/shm``."""
    doc = experiment()
    pod = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod["initContainers"] = [{"name": "fetch", "image": "busybox", "command": ["wget", "-O", "/work/data.csv", "x"],
                              "volumeMounts": [{"name": "work", "mountPath": "/work"}]}]
    pod["containers"].append({"name": "cache", "image": "redis:7", "command": ["redis-server"]})
    pod["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "mnist"}},
                      {"name": "work", "emptyDir": {}}, {"name": "shm", "emptyDir": {"medium": "Memory"}}]
    pod["containers"][0]["volumeMounts"] = [{"name": "work", "mountPath": "/work"},
                                            {"name": "data", "mountPath": "/data", "readOnly": True},
                                            {"name": "shm", "mountPath": "/dev/shm"}]
    return doc


POD = "spec.trialTemplate.trialSpec.spec.template.spec"


def test_a_pods_other_parts_are_refused_where_trials_run_on_this_machine(client, tmp_path: Path):
    """A local trial runs its primary container's command alone, as a process: the init
    container that fetches its data, the sidecar it talks to and the claim it reads would not be
    there, and every trial would run without them (or on this machine's folders of those paths).
    Each is named, by ``katuna run`` and by ``POST /studies`` alike, and nothing is stored; the
    ``emptyDir`` mounts (a folder that starts empty) are taken."""
    expected = [f"{POD}.initContainers[0]", f"{POD}.containers[1]", f"{POD}.containers[0].volumeMounts[1]"]
    answer = client.post("/studies", data=yaml.safe_dump(with_pod_parts()), content_type="application/yaml")
    assert answer.status_code == 422, answer.get_json()
    found = {p["path"]: p["message"] for p in answer.get_json()["problems"]}
    assert list(found) == expected
    assert found[expected[0]].startswith("init container 'fetch' would not run")
    assert found[expected[1]].startswith("container 'cache' would not run beside the primary container 'main'")
    assert found[expected[2]].startswith("mounts volume 'data' (persistentVolumeClaim) at '/data'")
    assert all("or submit the study where trials run on Kubernetes" in m for m in found.values())
    assert client.get("/studies/katib-exp").status_code == 404, "nothing is stored"

    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(with_pod_parts()))
    run = run_katuna("run", "experiment.yaml", "--db", "k.db", cwd=tmp_path)
    assert run.returncode == 2, run
    assert all(path in run.stderr for path in expected), run.stderr
    assert not (tmp_path / "k.db").exists() or "katib-exp" not in run_katuna("studies", "--db", "k.db",
                                                                             cwd=tmp_path).stdout


def test_a_pod_of_the_primary_container_alone_with_empty_folders_runs_on_this_machine(embedded, tmp_path: Path):
    doc = with_pod_parts()
    pod = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    del pod["initContainers"], pod["containers"][1], pod["containers"][0]["volumeMounts"][1]
    doc["spec"].update(maxTrialCount=2)
    spec, definition = load_study(yaml.safe_dump(doc))
    embedded.submit(spec, definition, tmp_path)
    record = embedded.run(spec.name)
    assert (record.status, record.reason) == ("completed", "max trials reached (2)")


def test_a_pods_other_parts_are_taken_where_trials_run_on_a_cluster():
    from functions.pools import check_study
    from functions.settings import Settings

    spec, definition = load_study(yaml.safe_dump(with_pod_parts()))
    check_study(spec, definition, Settings(), runs_jobs=True)


@pytest.mark.parametrize(("word", "held"), [
    ("--data=${DATA_DIR}/train", "${DATA_DIR}"), ("--out=$HOME/runs", "$HOME"), ("${LOG_DIR:-/tmp}", "${LOG_DIR:-/tmp}"),
    ('--out="$HOME/runs"', "$HOME"), ("--seed=$1", "$1"), ("--stamp=$(date +%s)", "$(date +%s)"),
    ("--host=$(hostname)", "$(hostname)"), ("--ip=$$(POD_IP)", "$(POD_IP)"), ("--user=`id -u`", "`"),
    ("~/data", "~")])
def test_a_shell_expansion_in_a_primary_command_katib_runs_through_its_shell_is_refused(word: str, held: str):
    """Katib's collector wraps the primary container as ``sh -c "<command and args joined>"``, so
    its shell expands ``$HOME``, runs ``$(date)`` and backquotes, and expands a leading ``~``;
    katuna runs the command without a shell, and the program would get it as written. Refused
    naming the field; in a ``sh -c`` script, or a container Katib does not wrap (a sidecar), it
    stays. A Kubernetes ``$(NAME)`` of a variable the container defines is the kubelet's, which
    replaces it before any shell reads the word; of another, the kubelet leaves it for the shell
    to run, as it makes ``$$(NAME)`` ``$(NAME)``."""
    doc = experiment()
    pod = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod["containers"][0]["env"] = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    pod["containers"][0]["args"] = ["$(POD_IP)", word]
    pod["containers"].append({"name": "side", "image": "busybox", "command": ["echo", word]})
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    [problem] = caught.value.problems
    assert problem.path == "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].args[1]"
    assert f"holds {held}, which a shell expands: Katib's collector runs the primary container's command and args " \
           "as one sh -c line" in problem.message
    assert "expected the command as a script (command: [sh, -c, '<the command line>'])" in problem.message
    script = " ".join(pod["containers"][0].pop("command")) + " " + " ".join(pod["containers"][0].pop("args"))
    pod["containers"][0]["command"] = ["sh", "-c", script]
    load_study(yaml.safe_dump(doc))


@pytest.mark.parametrize("word", ["'$HOME'", "--cost=100$", "a\\$b", "$(DATA)", "--dir=a~b", "--lr=0.1"])
def test_what_katibs_shell_leaves_as_written_is_taken(word: str):
    """What Katib's shell passes on unchanged is taken: a ``$`` in single quotes, escaped, or
    ending a word, a ``~`` inside one, and a ``$(NAME)`` the kubelet replaces (``DATA`` may be
    any of the ConfigMap's keys the container's ``envFrom`` reads)."""
    doc = experiment()
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["envFrom"] = [{"configMapRef": {"name": "settings"}}]
    container["args"] = [word]
    load_study(yaml.safe_dump(doc))


@pytest.mark.parametrize(("args", "at", "operator"), [
    (["a.py", "&&", "echo", "done"], 1, "&&"), (["a.py", "|", "tee", "out.log"], 1, "|"),
    (["a.py", ">", "out.log"], 1, ">"), (["a.py", "2>&1"], 1, ">&"), (["a.py;", "echo"], 0, ";"),
    (["--url=http://host/?a=1&b=2"], 0, "&")])
def test_a_shell_operator_in_a_primary_command_katib_runs_through_its_shell_is_refused(args: list, at: int,
                                                                                      operator: str):
    """Katib's collector runs the primary container as ``sh -c "<command and args joined>"``,
    where ``&&``, ``|``, ``>`` and ``;`` end, pipe or redirect the command; katuna runs the
    command without a shell, and the program would get them as arguments. Refused naming the
    field; quoted or escaped (which the shell reads as a word) or in a ``sh -c`` script, it stays."""
    doc = experiment()
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["args"] = args
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    [problem] = caught.value.problems
    assert problem.path == f"spec.trialTemplate.trialSpec.spec.template.spec.containers[0].args[{at}]"
    assert f"holds {operator}, which a shell reads as an operator" in problem.message
    assert "Katib's collector runs the primary container's command and args as one sh -c line" in problem.message
    assert "expected the command as a script (command: [sh, -c, '<the command line>'])" in problem.message
    container["args"] = ["a.py", "'&&'", "a\\;b", '"x > y"']
    load_study(yaml.safe_dump(doc))
    container["command"] = ["sh", "-c", " ".join([*container["command"], *args])]
    del container["args"]
    load_study(yaml.safe_dump(doc))


def misspelt() -> dict:
    """An Experiment whose Job trialSpec has two fields a Job does not have."""
    doc = experiment()
    job = doc["spec"]["trialTemplate"]["trialSpec"]
    job["spec"]["backofLimit"] = 2
    job["spec"]["template"]["spec"]["containers"][0]["evn"] = [{"name": "LR", "value": "0.1"}]
    return doc


def test_a_job_field_a_job_does_not_have_is_refused_where_trials_run_on_this_machine(embedded, tmp_path: Path):
    """As Katib's webhook refuses it (and a cluster's strict dry run), naming each field, where
    a local trial would otherwise run without the environment the template meant to give it."""
    spec, definition = load_study(yaml.safe_dump(misspelt()))
    with pytest.raises(InvalidStudy) as caught:
        embedded.submit(spec, definition, tmp_path)
    assert sorted(p.path for p in caught.value.problems) == [
        "spec.trialTemplate.trialSpec.spec.backofLimit",
        "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].evn"]
    assert all(p.message.startswith("unknown field: a batch/v1 Job has no such field") for p in caught.value.problems)
    assert embedded.store.list_studies() == []


def test_a_service_running_trials_locally_refuses_a_job_field_a_job_does_not_have(client):
    body = yaml.safe_dump(misspelt())
    answer = client.post("/studies", data=body, content_type="application/yaml")
    assert answer.status_code == 422, answer.get_json()
    assert "spec.trialTemplate.trialSpec.spec.backofLimit" in [p["path"] for p in answer.get_json()["problems"]]
    assert client.get("/studies/katib-exp").status_code == 404, "nothing is stored"


def test_a_job_whose_fields_a_job_has_is_taken_though_its_quantity_is_a_number(embedded, tmp_path: Path):
    """Only unknown fields are refused: a limit written as a number, as Katib's FPGA example
    writes it, is the API server's to read where the Job is created."""
    doc = experiment()
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "limits": {"example.com/fpga": 1}}
    spec, definition = load_study(yaml.safe_dump(doc))
    embedded.submit(spec, definition, tmp_path)
    assert [s.name for s in embedded.store.list_studies()] == ["katib-exp"]


def post_yaml(service: Service, document: dict) -> tuple[int, bytes]:
    """The status and body of ``POST /studies`` of ``document`` as YAML."""
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(document), {"Content-Type": "application/yaml"})
    return status, body


@pytest.mark.slow
def test_a_service_running_trials_locally_refuses_a_container_with_args_alone(tmp_path: Path):
    service = Service(tmp_path, workers=1)
    try:
        status, body = post_yaml(service, args_only())
        assert status == 422, body
        assert [p["path"] for p in json.loads(body)["problems"]] == [
            "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].command"]
        assert service.request("GET", "/studies/katib-exp")[0] == 404
    finally:
        service.close()


@pytest.mark.slow
def test_parameter_names_katib_takes_run_locally_and_show_as_written(tmp_path: Path):
    """Katib's webhook checks no parameter name: ``model/lr`` and ``optimizer[lr]`` reach the
    trial through their trial parameters, and its trials list them as written."""
    doc = experiment(maxTrialCount=2, parallelTrialCount=1, parameters=[
        {"name": "model/lr", "parameterType": "double", "feasibleSpace": {"min": "1", "max": "3"}},
        {"name": "optimizer[lr]", "parameterType": "categorical", "feasibleSpace": {"list": ["0", "1"]}}])
    template = doc["spec"]["trialTemplate"]
    template["trialParameters"] = [{"name": "position", "reference": "model/lr"},
                                   {"name": "optimizer", "reference": "optimizer[lr]"}]
    template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] += [
        "--y=${trialParameters.optimizer}"]
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(doc))
    run = run_katuna("run", "experiment.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    listed = here("trials", "katib-exp", "--json", cwd=tmp_path)
    trials = json.loads(listed.stdout)
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:
        params = trial["params"]
        assert set(params) == {"model/lr", "optimizer[lr]"} and params["optimizer[lr]"] in ("0", "1")
        assert trial["values"][0] == pytest.approx((params["model/lr"] - 2) ** 2 + int(params["optimizer[lr]"]), abs=1e-5)


@pytest.mark.parametrize(("name", "why"), [
    ("a}b", "it ends a ${trialParameters.<name>} placeholder"),
    ('a"b', "a query sorting or filtering trials by the parameter names it in quotes"),
    ("a=b", "katuna render --params reads NAME=VALUE"),
    ("a,b", "the dashboard asks for a chart's parameters as a comma-separated list"),
    ("line\nbreak", None)])
def test_a_parameter_name_katuna_cannot_carry_is_refused_saying_why(name: str, why: str | None):
    doc = experiment(parameters=[{"name": name, "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}])
    doc["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = name
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    found = {p.path: p.message for p in caught.value.problems}
    assert found["spec.parameters[0].name"].startswith(
        "expected printable text without control characters, '}', '\"', '=' or ',', 1 to 4,096 characters, "
        f"got {name!r}")
    assert why is None or found["spec.parameters[0].name"].endswith(f"({name[1]!r}: {why})")


def test_median_stop_translates_to_katibs_medianstop_rule():
    spec, _ = load_study(yaml.safe_dump(experiment(earlyStopping={
        "algorithmName": "medianstop",
        "algorithmSettings": [{"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "3"}]})))
    assert spec.early_stopping.algorithm == "medianstop"
    assert dict(spec.early_stopping.settings) == {"min_trials_required": 2, "start_step": 3}


@pytest.mark.slow
def test_hyperband_is_random_search_under_the_hyperband_pruner(embedded, tmp_path: Path):
    doc = experiment(
        algorithm={"algorithmName": "hyperband", "algorithmSettings": [
            {"name": "resource_name", "value": "--epochs"}, {"name": "eta", "value": "2"}, {"name": "r_l", "value": "6"}]},
        maxTrialCount=8, parallelTrialCount=4,
        parameters=[{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-4", "max": "4"}},
                    {"name": "--epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "6"}}])
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "epochs", "reference": "--epochs"})
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] += ["--mode=curve", "--epochs=${trialParameters.epochs}", "--sleep=0.6"]
    spec, definition = load_study(yaml.safe_dump(doc))
    assert spec.algorithm.name == "random"
    assert spec.early_stopping.algorithm == "hyperband"
    assert dict(spec.early_stopping.settings) == {"min_resource": 1, "max_resource": 6, "reduction_factor": 2}
    assert spec.parameters[1].values == (6,)
    embedded.submit(spec, definition, tmp_path)
    assert embedded.run("katib-exp").status == "completed"
    states = [t.state for t in embedded.store.trials("katib-exp")]
    assert len(states) == 8 and "COMPLETE" in states


def test_file_collector_with_json_and_custom_filters_translate():
    spec, _ = load_study(yaml.safe_dump(experiment(metricsCollectorSpec={
        "collector": {"kind": "File"},
        "source": {"fileSystemPath": {"path": "/var/log/metrics.json", "format": "JSON"}}})))
    assert (spec.metrics_collector.kind, spec.metrics_collector.path, spec.metrics_collector.format) == (
        "file", "/var/log/metrics.json", "json")
    spec, _ = load_study(yaml.safe_dump(experiment(metricsCollectorSpec={
        "source": {"filter": {"metricsFormat": [r"([\w|-]+):\s*(\d+\.\d+)"]}}})))
    assert spec.metrics_collector.filters == (r"([\w|-]+):\s*(\d+\.\d+)",)


def test_what_katuna_cannot_honour_is_an_error_naming_the_field():
    doc = experiment(
        earlyStopping={"algorithmName": "truncation"}, resumePolicy="Always", colour="blue",
        algorithm={"algorithmName": "enas"},
        metricsCollectorSpec={"collector": {"kind": "PrometheusMetric"}},
        parameters=[{"name": "x", "parameterType": "double",
                     "feasibleSpace": {"min": "0", "max": "1", "distribution": "gaussian"}}],
    )
    doc["spec"]["trialTemplate"].update(retain=True, configMap={"configMapName": "templates"},
                                        successCondition="status.succeeded>0")
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    found = {p.path: p.message for p in caught.value.problems}
    for path in ("spec.colour", "spec.earlyStopping.algorithmName", "spec.resumePolicy", "spec.algorithm.algorithmName",
                 "spec.metricsCollectorSpec.collector.kind", "spec.parameters[0].feasibleSpace.distribution",
                 "spec.trialTemplate.configMap", "spec.trialTemplate.successCondition"):
        assert path in found, f"{path} missing from {found}"
    assert found["spec.colour"] == ("unknown field; expected one of algorithm, earlyStopping, maxFailedTrialCount, "
                                    "maxTrialCount, metricsCollectorSpec, objective, parallelTrialCount, parameters, "
                                    "resumePolicy, trialTemplate")


def test_katuna_convert_prints_the_native_study(tmp_path: Path):
    converted = here("convert", str(ROOT / "examples" / "katib-experiment.yaml"))
    native = yaml.safe_load(converted.stdout)
    spec, _ = load_study(converted.stdout)
    assert native["name"] == "katib-digits" and spec.algorithm.name == "tpe" and spec.algorithm.seed == 10
    assert spec == load_study((ROOT / "examples" / "katib-experiment.yaml").read_text())[0]


@pytest.mark.slow
def test_an_experiment_can_be_posted_to_the_api(tmp_path: Path):
    service = Service(tmp_path, workers=1)
    try:
        status, body = post_yaml(service, experiment())
        assert status == 201, body
        assert service.wait_for("katib-exp")["counts"]["complete"] == 4
        bad = experiment(earlyStopping={"algorithmName": "truncation"})
        status, _, body = service.request("POST", "/studies", json.dumps(bad), {"Content-Type": "application/json"})
        assert status == 422
        assert {"path": "spec.earlyStopping.algorithmName",
                "message": "'truncation' is not supported; expected medianstop"} in json.loads(body)["problems"]
    finally:
        service.close()


@pytest.mark.slow
def test_an_experiment_whose_collector_cannot_wrap_its_container_is_refused_and_not_stored(tmp_path: Path):
    doc = experiment(metricsCollectorSpec={"collector": {"kind": "File"}})
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"] = [
        {"name": "main", "image": "trainer", "args": ["--x=${trialParameters.position}"]}]
    service = Service(tmp_path, workers=1)
    try:
        status, body = post_yaml(service, doc)
        assert status == 422, body
        assert [p["path"] for p in json.loads(body)["problems"]] == [
            "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].command"]
        assert service.request("GET", "/studies/katib-exp")[0] == 404
    finally:
        service.close()


def test_a_grid_experiment_runs_its_whole_grid_once(embedded, tmp_path: Path):
    doc = experiment(algorithm={"algorithmName": "grid"},
                     parameters=[{"name": "x", "parameterType": "double",
                                  "feasibleSpace": {"min": "-2", "max": "2", "step": "1"}}])
    del doc["spec"]["maxTrialCount"], doc["spec"]["maxFailedTrialCount"]  # the grid ends it
    spec, definition = load_study(yaml.safe_dump(doc))
    embedded.submit(spec, definition, tmp_path)
    record = embedded.run("katib-exp")
    assert record.reason == "search space exhausted after 5 trials"
    assert sorted(t.params["x"] for t in embedded.store.trials("katib-exp")) == [-2.0, -1.0, 0.0, 1.0, 2.0]


def test_the_default_parallel_trial_count_above_the_max_trial_count_is_refused_as_katib_refuses_it():
    """Katib's defaulting webhook sets ``parallelTrialCount`` 3, and its validating webhook then
    refuses it above ``maxTrialCount``."""
    doc = experiment(maxTrialCount=2)
    del doc["spec"]["parallelTrialCount"], doc["spec"]["maxFailedTrialCount"]
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [str(p) for p in caught.value.problems] == [
        "spec.parallelTrialCount: expected at most spec.maxTrialCount (2), got 3 (defaulted to 3, as Katib's webhook "
        "defaults it; give a parallelTrialCount of at most 2)"]
    doc["spec"]["maxTrialCount"] = 3
    assert load_study(yaml.safe_dump(doc))[0].parallelism == 3


def test_a_tpe_parallel_trial_count_over_the_limit_is_refused_as_such():
    """A ``tpe`` Experiment's count past ``KATUNA_MAX_PARALLELISM`` is refused at its own field,
    not as a setting of ``algorithmSettings`` that the Experiment never wrote."""
    doc = experiment(maxTrialCount=1_000_000, parallelTrialCount=1_000_000, maxFailedTrialCount=3,
                     algorithm={"algorithmName": "tpe"})
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [str(p) for p in caught.value.problems] == [
        "spec.parallelTrialCount: expected at most 1,000 (set by KATUNA_MAX_PARALLELISM), got 1,000,000"]


def _drawn_at_random(doc: dict, number: int) -> float:
    """The ``x`` the Experiment's seed gives trial ``number`` drawn at random: TPE's random
    start draws it as ``random`` of the same seed does, from the trial's own seed."""
    random = copy.deepcopy(doc)
    random["spec"]["algorithm"]["algorithmName"] = "random"
    spec, _ = load_study(yaml.safe_dump(random))
    study = optuna.create_study(sampler=build_sampler(spec.algorithm, spec.parameters, number))
    return sample(study, spec.parameters).params["x"]


@pytest.mark.slow
@pytest.mark.parametrize("lookahead", ["0", "1"])
def test_tpe_draws_at_random_only_the_trials_asked_before_one_ends_as_katibs_hyperopt_service(
        tmp_path: Path, lookahead: str):
    """Katib's hyperopt service asks hyperopt's TPE for each request's trials with
    ``n_startup_jobs`` the request's size, counted against the trials that succeeded (or stopped
    early) with a metric: its first request (``parallelTrialCount`` trials) is drawn at random,
    and each later one, for the slots that just freed, by TPE. So katuna draws at random only the
    first ``parallelTrialCount`` trials, with ``katuna run``'s look-ahead too (it prepares none
    while the sampler is one result short of its random start's end); every trial asked after an
    end is TPE's."""
    doc = experiment(algorithm={"algorithmName": "tpe", "algorithmSettings": [{"name": "random_state", "value": "7"}]},
                     maxTrialCount=5)
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(doc))
    run = run_katuna("run", "experiment.yaml", cwd=tmp_path, env={**os.environ, "KATUNA_LOOKAHEAD": lookahead})
    assert run.returncode == 0, run.stdout + run.stderr
    trials = sorted(json.loads(here("trials", "katib-exp", "--json", cwd=tmp_path).stdout), key=lambda t: t["number"])
    assert [t["state"] for t in trials] == ["COMPLETE"] * 5
    at_random = [t["params"]["x"] == pytest.approx(_drawn_at_random(doc, t["number"]), abs=1e-9) for t in trials]
    assert at_random == [True] * 2 + [False] * 3


@pytest.mark.parametrize("field", ["maxFailedTrialCount", "parallelTrialCount"])
def test_a_count_above_the_max_trial_count_is_refused_as_katib_refuses_it(field: str):
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(experiment(**{field: 5})))
    assert [str(p) for p in caught.value.problems] == [f"spec.{field}: expected at most spec.maxTrialCount (4), got 5"]


def test_the_objective_among_the_additional_metrics_is_one_problem_as_katib_says_it():
    doc = experiment()
    doc["spec"]["objective"]["additionalMetricNames"] = ["size", "loss"]
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [str(p) for p in caught.value.problems] == [
        "spec.objective.additionalMetricNames: should not contain spec.objective.objectiveMetricName"]


def test_an_additional_metric_listed_twice_is_one_metric_as_katib_collects_it():
    """Katib's webhook takes a name listed twice, and its collector and Trial keep one metric of
    each name; katuna does not refuse the Experiment for it."""
    doc = experiment()
    doc["spec"]["objective"]["additionalMetricNames"] = ["size", "width", "size"]
    spec, _ = load_study(yaml.safe_dump(doc))
    assert spec.additional_metrics == ("size", "width")


@pytest.mark.parametrize("missing", [{}, {"trialSpec": None}], ids=["left out", "null"])
def test_a_trial_template_without_its_trial_spec_is_one_problem_naming_the_trial_spec(missing: dict):
    """Not also the native study's ``command``, which no Experiment has."""
    doc = experiment()
    doc["spec"]["trialTemplate"].pop("trialSpec")
    doc["spec"]["trialTemplate"].update(missing)
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [p.path for p in caught.value.problems] == ["spec.trialTemplate.trialSpec"]


def test_a_metrics_format_that_re2_cannot_compile_is_refused():
    doc = experiment(metricsCollectorSpec={"source": {"filter": {"metricsFormat": [r"(\w+)=(\d+)(?=x)"]}}})
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert caught.value.problems[0].path == "spec.metricsCollectorSpec.source.filter.metricsFormat[0]"
    assert "invalid perl operator: (?=" in caught.value.problems[0].message


def test_metrics_formats_whose_search_costs_too_much_are_refused_by_path():
    doc = experiment(metricsCollectorSpec={"source": {"filter": {"metricsFormat": [r"((?:[ab]{0,30}){0,30})=(x)"]}}})
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [p.path for p in caught.value.problems] == ["spec.metricsCollectorSpec.source.filter.metricsFormat"]
    assert "KATUNA_MAX_FILTER_PROGRAM" in caught.value.problems[0].message


@pytest.mark.timeout(120)
def test_tpe_settings_given_as_strings_run_past_the_startup_trials(embedded, tmp_path: Path):
    """Katib gives ``gamma: "0.25"`` (hyperopt's fraction): it must reach TPE as a rule it can call."""
    doc = experiment(algorithm={"algorithmName": "tpe", "algorithmSettings": [
        {"name": "gamma", "value": "0.25"}, {"name": "random_state", "value": "5"}]},
        parallelTrialCount=1, maxTrialCount=4)
    spec, definition = load_study(yaml.safe_dump(doc))
    assert dict(spec.algorithm.settings)["gamma"] == 0.25
    embedded.submit(spec, definition, tmp_path)
    assert embedded.run("katib-exp").status == "completed"
    assert [t.state for t in embedded.store.trials("katib-exp")] == ["COMPLETE"] * 4


POOL = {"provider": "gke", "capacity": "spot", "maxNodes": 100, "machineType": "e2-standard-4"}
ANNOTATION = 'metadata.annotations["katuna.dev/node-pool"]'


def as_resource(doc: dict, annotation: str | None) -> dict:
    """The Experiment as a ``katuna.dev/v1`` resource, its node pool (if any) in the annotation."""
    resource = {**copy.deepcopy(doc), "apiVersion": "katuna.dev/v1"}
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(doc)}
    if annotation is not None:
        annotations["katuna.dev/node-pool"] = annotation
    resource["metadata"]["annotations"] = annotations
    return resource


def test_an_experiment_document_asks_for_a_node_pool_beside_its_spec():
    spec, _ = load_study(yaml.safe_dump({**experiment(), "nodePool": POOL}))
    assert (spec.node_pool.provider, spec.node_pool.max_nodes, spec.node_pool.name) == ("gke", 100, "katuna-katib-exp")
    assert dict(spec.trial_cluster.node_selector) == {"cloud.google.com/gke-nodepool": "katuna-katib-exp"}
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump({**experiment(), "nodePool": {**POOL, "maxNodes": 0}}))
    assert [p.path for p in caught.value.problems] == ["nodePool.maxNodes"]


@pytest.mark.parametrize("text", [json.dumps(POOL), yaml.safe_dump(POOL)], ids=["json", "yaml"])
def test_an_experiment_resource_asks_for_a_node_pool_in_an_annotation(text: str):
    from functions.core import resources
    from functions.core.formats import load_definition

    definition = resources.definition(as_resource(experiment(), text))
    assert definition["metadata"]["annotations"] == {"katuna.dev/node-pool": text}, "only katuna's annotation is kept"
    spec, _ = load_definition(definition)
    assert spec == load_study(yaml.safe_dump({**experiment(), "nodePool": POOL}))[0]


def test_an_experiment_resource_may_ask_for_as_many_eks_nodes_as_the_accounts_quota():
    """The annotation's node pool is held to the EKS quota the service is configured with, as a
    native study's is: 600 nodes where the account's quota was raised to 600, not AWS's 450."""
    from functions.core import resources
    from functions.core.formats import load_definition
    from functions.settings import Settings

    pool = json.dumps({"provider": "eks", "instanceTypes": ["m5.xlarge"], "maxNodes": 600})
    definition = resources.definition(as_resource(experiment(), pool))
    env = {"KATUNA_EKS_CLUSTER": "tuning", "KATUNA_EKS_SUBNETS": "subnet-a",
           "KATUNA_EKS_NODE_ROLE": "arn:aws:iam::123456789012:role/n", "KATUNA_MAX_POOL_NODES": "1000"}
    spec, _ = load_definition(definition, limits=Settings.from_env({**env, "KATUNA_EKS_NODES_PER_GROUP": "600"}).limits)
    assert spec.node_pool.max_nodes == 600
    with pytest.raises(InvalidStudy) as caught:
        load_definition(definition, limits=Settings.from_env(env).limits)
    assert [(p.path, "set KATUNA_EKS_NODES_PER_GROUP" in p.message) for p in caught.value.problems] == [
        (f"{ANNOTATION}.maxNodes", True)]


BAD_ANNOTATIONS = {
    "fields": (json.dumps({**POOL, "maxNodes": 0, "colour": "blue"}),
               [f"{ANNOTATION}.colour", f"{ANNOTATION}.maxNodes"]),
    "not yaml": ("{provider: [gke", [ANNOTATION]),
    "not a mapping": ("gke", [ANNOTATION]),
}


@pytest.mark.parametrize("text,paths", BAD_ANNOTATIONS.values(), ids=BAD_ANNOTATIONS.keys())
def test_a_bad_node_pool_annotation_is_refused_naming_its_fields(text: str, paths: list[str]):
    from functions.core import resources
    from functions.core.formats import load_definition

    with pytest.raises(InvalidStudy) as caught:
        load_definition(resources.definition(as_resource(experiment(), text)))
    assert sorted(p.path for p in caught.value.problems) == paths
    assert all("nodePool block" in p.message for p in caught.value.problems if p.path == ANNOTATION)


def test_a_node_pool_given_twice_is_refused():
    doc = {**experiment(), "nodePool": POOL, "metadata": {"name": "katib-exp",
                                                          "annotations": {"katuna.dev/node-pool": json.dumps(POOL)}}}
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [p.path for p in caught.value.problems] == ["nodePool"]
    assert ANNOTATION in caught.value.problems[0].message


def test_the_node_pool_annotation_on_the_katib_page_is_valid():
    from doc_blocks import block

    from functions.core import resources
    from functions.core.formats import load_definition

    shown = yaml.safe_load(block("docs/katib.md", "A node pool for an Experiment", "yaml"))
    annotation = shown["metadata"]["annotations"]["katuna.dev/node-pool"]
    spec, _ = load_definition(resources.definition(as_resource(experiment(), annotation)))
    assert (spec.node_pool.provider, spec.node_pool.capacity, spec.node_pool.max_nodes) == ("gke", "spot", 100)


def test_trial_metadata_written_in_the_trialspec_itself_reaches_the_trial_as_written():
    """Katib fills in only ``${trialParameters.<name>}``: the trial's name reaches the workload
    through a trial parameter that references ``${trialSpec.Name}``, and a ``${trialSpec.Name}``
    (or ``.Namespace``, or one Katib does not know) written in the trialSpec itself stays as it
    is written, on a cluster and on this machine alike."""
    doc = experiment()
    trial = doc["spec"]["trialTemplate"]
    trial["trialParameters"].append({"name": "trialName", "reference": "${trialSpec.Name}"})
    container = trial["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] += ["--run=${trialParameters.trialName}", "--logs=/logs/${trialSpec.Name}"]
    container["env"] = [{"name": "WHERE", "value": "${trialSpec.Namespace}/${trialSpec.Owner} $${trialSpec.Kind}"}]
    spec, definition = load_study(yaml.safe_dump(doc))
    record = StudyRecord(spec, definition, "/somewhere", "uid")
    launch = trial_launch(record, TrialRecord(spec.name, 7, {"x": 0.5}))
    assert launch.argv[-3:] == ["--x=0.5", "--run=katib-exp-7", "--logs=/logs/${trialSpec.Name}"]
    assert launch.env["WHERE"] == "${trialSpec.Namespace}/${trialSpec.Owner} $${trialSpec.Kind}"
    pod = render_job(launch, Cluster())["spec"]["template"]["spec"]["containers"][0]
    assert pod["command"][-3:] == launch.argv[-3:]
    assert {"name": "WHERE", "value": launch.env["WHERE"]} in pod["env"]


def test_a_dollar_right_before_a_trial_parameter_reaches_the_trial_before_its_value_as_in_katib():
    """Katib's trial generator replaces every ``${trialParameters.<name>}`` of the template's
    text, whatever precedes it: ``$${trialParameters.price}`` gives ``$`` and the value (and is
    a use of the trial parameter, which is then not refused as unused), while a
    ``$${trialSpec.Name}`` it leaves as it is; the translation writes each ``$`` before a
    placeholder as the native format's ``$$``."""
    doc = experiment()
    trial = doc["spec"]["trialTemplate"]
    trial["trialParameters"] += [{"name": "price", "reference": "y"}, {"name": "trialName", "reference": "${trialSpec.Name}"}]
    doc["spec"]["parameters"].append({"name": "y", "parameterType": "int", "feasibleSpace": {"min": "3", "max": "3"}})
    container = trial["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "PRICE", "value": "$${trialParameters.price} $$${trialParameters.trialName}"},
                        {"name": "KEPT", "value": "$${trialSpec.Name}"}]
    spec, definition = load_study(yaml.safe_dump(doc))
    launch = trial_launch(StudyRecord(spec, definition, "/somewhere", "uid"), TrialRecord(spec.name, 7, {"x": 0.5, "y": 3}))
    assert launch.env["PRICE"] == "$3 $$katib-exp-7"
    assert launch.env["KEPT"] == "$${trialSpec.Name}"
