"""Katib's own examples: for every Experiment under ``examples/v1beta1/`` of Katib's repository, an
Experiment of katuna's (``tests/data/katib_examples/``) that uses the same features (algorithm and
settings, parameter kinds, collector, early stopping, trial kind, conditions, metadata
placeholders) with a small trial that prints as Katib's images do (``tests/trials/``).

All of them are applied at once, as Katib's ``kubeflow.org/v1beta1`` resources, to the loopback
Kubernetes API with the ``katib-api`` overlay and the operators installed, and one ``katuna
serve`` (trials on the cluster) takes them: each either runs, with Katib's trials, metrics and status, or fails with a status
that names the field and says why. The README's table of Katib's examples lists exactly these.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from http_helpers import Service, run_katuna
from kube_standin import katib_api
from kube_standin.nodes import STATIC_ALLOCATABLE, node
from kube_stub import KubeStub
from kubernetes import client

from functions.core import template_sources
from functions.core.errors import InvalidStudy
from functions.core.katib_trials import EXPERIMENT_LABEL

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data" / "katib_examples"
TRIALS = Path(__file__).parent / "trials"


def _trial_script(name: str) -> ModuleType:
    """A trial script of ``tests/trials``, loaded for the values it prints."""
    spec = importlib.util.spec_from_file_location(name, TRIALS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


katib_boost = _trial_script("katib_boost")
katib_mnist = _trial_script("katib_mnist")
NAMESPACE = "kubeflow"
KUBE_NAMESPACES = (NAMESPACE,)
USER = "katib-user"
"""Who applies the Experiments: a user with Katib's edit role in the namespace."""
OPERATORS = ("training-operator", "trainer", "jobset", "argo", "tekton")
"""The operators whose workload kinds Katib's examples run as trials."""
FPGA = "xilinx/aws-vu9p-f1"
"""The extended resource Katib's FPGA example asks for, unquoted: ``xilinx/aws-vu9p-f1: 1``."""

Metrics = Callable[[dict[str, str]], dict[str, float]]
"""The metrics Katib's collector reads from a trial's output, from the trial's parameters."""


@dataclass(frozen=True)
class Example:
    """One of Katib's examples: katuna's counterpart, the features it uses, and what katuna does."""

    file: str
    features: str
    refused: tuple[str, str] | None = None
    """(the field named, words of the reason) when katuna refuses it; None when it runs."""
    metrics: Metrics | None = None
    trials: int = 2
    cli: bool = False
    """Checked with the command line rather than applied to the cluster."""
    local: bool = False
    """Refused where trials run as Kubernetes Jobs only: its translation is taken, and it runs
    with local trials (``tests/test_pbt_runs.py`` runs it)."""


def _mnist_loss(params: dict[str, str]) -> dict[str, float]:
    """StdOut with Katib's default filter: the train lines' ``loss=``, reduced by min (the
    objective's direction); the test line has no ``=`` and is not a metric."""
    train, _ = katib_mnist.curve(float(params["lr"]), float(params.get("momentum", 0.5)), int(params.get("epochs", 1)))
    return {"loss": min(train)}


def _hyperband_loss(params: dict[str, str]) -> dict[str, float]:
    train, _ = katib_mnist.curve(float(params["lr"]), float(params["momentum"]), int(params["num-epochs"]))
    return {"loss": min(train)}


def _strategies(params: dict[str, str]) -> dict[str, float]:
    """``metricStrategies``: loss by min, accuracy by max (not its latest, 0.85)."""
    return {**_mnist_loss(params), "accuracy": max(katib_mnist.TRAIN_ACCURACY)}


def _file_text(params: dict[str, str]) -> dict[str, float]:
    """The file's test line through the Experiment's filter; the train lines do not match it."""
    _, tests = katib_mnist.curve(float(params["lr"]), float(params["momentum"]), 1)
    return {"accuracy": tests[0][0], "loss": tests[0][1]}


def _file_json(params: dict[str, str]) -> dict[str, float]:
    """JSON lines, one metric each, over two epochs. As Katib's defaults have it, an additional
    metric is reduced by the objective's direction too (max), not to its latest value."""
    _, tests = katib_mnist.curve(float(params["lr"]), float(params["momentum"]), 2)
    return {"accuracy": max(a for a, _ in tests), "loss": max(loss for _, loss in tests)}


def _epochs_json(params: dict[str, str]) -> dict[str, float]:
    """JSON lines over ``num-epochs`` epochs, each metric by max (the objective's direction)."""
    _, tests = katib_mnist.curve(float(params["lr"]), 0.5, int(params["num-epochs"]))
    return {"accuracy": max(a for a, _ in tests), "loss": max(loss for _, loss in tests)}


def _test_summaries(params: dict[str, str]) -> dict[str, float]:
    """The ``accuracy`` tag of the event files under ``test/`` (not ``train/``'s, not the
    output's), by max (the objective's direction)."""
    _, tests = katib_mnist.curve(float(params["learning_rate"]), 0.5, 1)
    return {"accuracy": max(a for a, _ in tests)}


def _two_epochs(params: dict[str, str]) -> dict[str, float]:
    """A workflow whose first step computes two epochs for the training step."""
    return _mnist_loss({**params, "epochs": "2"})


def _mpi(params: dict[str, str]) -> dict[str, float]:
    return _mnist_loss({"lr": params["lr"], "epochs": params["num-steps"]})


def _lightgbm(params: dict[str, str]) -> dict[str, float]:
    """Names with a space, through the Experiment's filter; every metric by max (the objective's
    direction, Katib's default for additional metrics too)."""
    iterations = katib_boost.lightgbm(float(params["lr"]), int(params["num-leaves"]), 3)
    return {name: max(i[name] for i in iterations) for name in iterations[0]}


def _boost(params: dict[str, str]) -> dict[str, float]:
    accuracy = katib_boost.rounds(float(params["alpha"]), float(params["eta"]), float(params["subsample"]))
    return {"accuracy": max(accuracy), "time": katib_boost.TIME}


TRIAL_TEMPLATES = {"defaultTrialTemplate.yaml": yaml.safe_dump({
    "apiVersion": "batch/v1", "kind": "Job",
    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
        "name": "training-container", "image": "docker.io/kubeflowkatib/mxnet-mnist:latest",
        "command": ["python", "-c", "import sys; lr = float(sys.argv[1]); print(f'Train-accuracy={0.5 + lr}'); "
                    "print(f'Validation-accuracy={0.4 + lr}')",
                    "${trialParameters.learningRate}", "${trialParameters.numberLayers}",
                    "${trialParameters.optimizer}"]}]}}}})}
"""Katib's ``trial-templates`` ConfigMap, whose default template the ConfigMap example names: a
Job printing its accuracies as Katib's mxnet-mnist image does."""


def _accuracies(params: dict[str, str]) -> dict[str, float]:
    """What the ConfigMap's template prints, from the learning rate alone."""
    return {"Train-accuracy": 0.5 + float(params["lr"]), "Validation-accuracy": 0.4 + float(params["lr"])}


NAS = ("spec.nasConfig", "neural architecture search is not supported")
INVENTORY: dict[str, Example] = {
    "argo/argo-workflow.yaml": Example(
        "katib-argo-workflow", "Argo Workflow; a step's output passed on; primaryPodLabels; GJSON phase conditions; "
        "retain", metrics=_two_epochs),
    "early-stopping/median-stop.yaml": Example(
        "median-stop", "random; medianstop (min_trials_required, start_step); double ×2; StdOut", metrics=_mnist_loss,
        trials=3),
    "early-stopping/median-stop-with-json-format.yaml": Example(
        "median-stop-with-json-format", "random; medianstop; double, int; File collector, JSON format",
        metrics=_epochs_json),
    "fpga/xgboost-example.yaml": Example(
        "xgb-svhn-fpga", "random; double ×3; additionalMetricNames; one trial at a time; pod template labels; "
        "an FPGA limit written as a number",
        metrics=_boost),
    "hp-tuning/bayesian-optimization.yaml": Example(
        "bayesian-optimization", "bayesianoptimization with random_state; double ×2", metrics=_mnist_loss),
    "hp-tuning/cma-es.yaml": Example(
        "cmaes", "cmaes with restart_strategy ipop; double ×2", metrics=_mnist_loss),
    "hp-tuning/grid.yaml": Example("grid", "grid; double ×2 with step", metrics=_mnist_loss),
    "hp-tuning/hyperband.yaml": Example(
        "hyperband", "hyperband (resource_name, eta, r_l); double ×2, int resource", metrics=_hyperband_loss),
    "hp-tuning/hyperopt-distribution.yaml": Example(
        "hyperopt-distribution", "random; normal, uniform, logUniform, logNormal distributions; double, int",
        metrics=_mnist_loss),
    "hp-tuning/multivariate-tpe.yaml": Example("multivariate-tpe", "multivariate-tpe; double ×2", metrics=_mnist_loss),
    "hp-tuning/optuna-distribution.yaml": Example(
        "optuna-distribution", "tpe; uniform and logUniform distributions, a double step; double, int",
        metrics=_mnist_loss),
    "hp-tuning/random.yaml": Example("random", "random; double ×2; StdOut", metrics=_mnist_loss),
    "hp-tuning/simple-pbt.yaml": Example(
        "simple-pbt", "pbt (suggestion_trial_dir, n_population, truncation_threshold); resumePolicy FromVolume",
        refused=("spec.algorithm.algorithmName", "pbt runs where trials run as Kubernetes Jobs only with a shared "
                                                  "claim for its checkpoints: set KATUNA_CHECKPOINT_CLAIM"), local=True),
    "hp-tuning/sobol.yaml": Example("sobol", "sobol; double ×2", metrics=_mnist_loss),
    "hp-tuning/tpe.yaml": Example("tpe", "tpe; double ×2", metrics=_mnist_loss),
    "kubeflow-trainer/trainjob-pytorch.yaml": Example(
        "torch-distributed-example", "Kubeflow Trainer TrainJob (torch-distributed runtime, two nodes)",
        metrics=_mnist_loss),
    "kubeflow-training-operator/mpijob-horovod.yaml": Example(
        "mpijob-horovod", "MPIJob; primaryPodLabels mpi-job-role; Succeeded/Failed conditions; int with step",
        metrics=_mpi),
    "kubeflow-training-operator/pytorchjob-mnist.yaml": Example(
        "pytorchjob-mnist", "PyTorchJob, master and worker", metrics=_mnist_loss),
    "kubeflow-training-operator/tfjob-mnist-with-summaries.yaml": Example(
        "tfjob-mnist-with-summaries", "TFJob; TensorFlowEvent collector on a Directory; primaryPodLabels",
        metrics=_test_summaries),
    "kubeflow-training-operator/xgboostjob-lightgbm.yaml": Example(
        "xgboostjob-lightgbm", "XGBoostJob; metricsFormat filter; metric names with spaces", metrics=_lightgbm),
    "metrics-collector/custom-metrics-collector.yaml": Example(
        "custom-metrics-collector", "random; Custom collector (customCollector container)",
        refused=("spec.metricsCollectorSpec.collector.customCollector", "not run by katuna")),
    "metrics-collector/file-metrics-collector.yaml": Example(
        "file-metrics-collector", "random; File collector, TEXT, metricsFormat filter; additionalMetricNames",
        metrics=_file_text, trials=1),
    "metrics-collector/file-metrics-collector-with-json-format.yaml": Example(
        "file-metrics-collector-with-json-format", "random; File collector, JSON format; additionalMetricNames",
        metrics=_file_json, trials=1),
    "metrics-collector/metrics-collection-strategy.yaml": Example(
        "metrics-collection-strategy", "tpe; metricStrategies min and max; additionalMetricNames", metrics=_strategies),
    "nas/darts-cpu.yaml": Example("darts-cpu", "darts; nasConfig; StdOut filter", refused=NAS),
    "nas/darts-gpu.yaml": Example("darts-gpu", "darts; nasConfig; StdOut filter", refused=NAS),
    "nas/enas-cpu.yaml": Example("enas-cpu", "enas; nasConfig", refused=NAS),
    "nas/enas-gpu.yaml": Example("enas-gpu", "enas; nasConfig", refused=NAS),
    "resume-experiment/from-volume-resume.yaml": Example(
        "from-volume-resume", "random; resumePolicy FromVolume", metrics=_mnist_loss),
    "resume-experiment/long-running-resume.yaml": Example(
        "long-running-resume", "random; resumePolicy LongRunning", metrics=_mnist_loss),
    "tekton/pipeline-run.yaml": Example(
        "tekton-pipeline-run", "Tekton PipelineRun; a task's result passed on; primaryPodLabels; GJSON conditions; "
        "retain", metrics=_two_epochs),
    "trial-template/trial-configmap-source.yaml": Example(
        "trial-configmap-source", "cmaes; int, double, categorical; trial template in a ConfigMap; Job conditions",
        metrics=_accuracies),
    "trial-template/trial-metadata-substitution.yaml": Example(
        "trial-metadata-substitution", "random; ${trialSpec.Name|Namespace|Kind|APIVersion|Labels[]|Annotations[]}",
        metrics=_mnist_loss),
}
"""Every ``kind: Experiment`` under Katib's ``examples/v1beta1/``, by its path there."""

APPLIED = {path: example for path, example in INVENTORY.items() if not example.cli}


def experiment(example: Example, workdir: Path) -> dict[str, Any]:
    """katuna's Experiment for ``example``, its trial scripts found in ``tests/trials`` and its
    metrics files in a folder of each trial's own (the stand-in's pods share this machine's disk,
    where Katib gives each pod an empty volume)."""
    doc = yaml.safe_load((DATA / f"{example.file}.yaml").read_text().replace("tests/trials/", f"{TRIALS}/"))
    trial = doc["spec"].get("trialTemplate") or {}
    trial_spec = trial.pop("trialSpec", None)
    # Katib's folders, before the trialSpec is back: the checkout's own path may hold "/katib/" too
    doc = _moved(doc, f"{workdir / example.file}/${{trialSpec.Name}}/")
    trial = doc["spec"].get("trialTemplate") or {}
    if trial_spec is not None and "/katib/" in json.dumps(trial_spec):
        # Katib fills in the trial's name only through a trial parameter that refers to it
        name = next((p["name"] for p in trial["trialParameters"] if p.get("reference") == "${trialSpec.Name}"), None)
        if name is None:
            name = "katunaTrialName"
            trial["trialParameters"].append({"name": name, "reference": "${trialSpec.Name}"})
        trial_spec = _moved(trial_spec, f"{workdir / example.file}/${{trialParameters.{name}}}/")
    if trial_spec is not None:
        doc["spec"]["trialTemplate"] = {**trial, "trialSpec": trial_spec}
    return doc


def _moved(value: Any, folder: str) -> Any:
    """``value`` with each of Katib's ``/katib/`` folders in its strings moved to ``folder``."""
    return json.loads(json.dumps(value).replace("/katib/", folder))


@pytest.fixture
def kube() -> Iterator[KubeStub]:
    cluster = KubeStub(namespaces=KUBE_NAMESPACES)
    # The FPGA example's node, whose device plugin advertises the FPGAs its trials ask for.
    cluster.add_node(node("node-fpga", {}, (), {**STATIC_ALLOCATABLE, FPGA: "2"}, cluster.clock.stamp()))
    katib_api.install(cluster)
    for operator in OPERATORS:
        cluster.install_operator(operator)
    katib_api.bind(cluster, USER, "katuna-katib-edit", NAMESPACE)
    # The account Katib's Argo example names, given what Argo's executor needs (knative/trial-kinds/argo).
    cluster.add_service_account(NAMESPACE, "argo")
    cluster.authorizer.bind("katuna-argo-executor", NAMESPACE, NAMESPACE, "argo")
    cluster.create_config_map(NAMESPACE, "trial-templates", TRIAL_TEMPLATES)
    yield cluster
    cluster.close()


@pytest.fixture
def custom(kube: KubeStub) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(client.ApiClient(kube.configuration(USER)))


@pytest.mark.slow
@pytest.mark.timeout(600)  # thirty-odd Experiments and sixty-odd pods: minutes on a loaded machine
def test_every_example_runs_or_is_refused_as_katib_would(kube: KubeStub, custom: client.CustomObjectsApi,
                                                        tmp_path: Path):
    """All examples at once on one service and one cluster (one test, so that one process runs
    them); every example that does not behave as Katib would is reported together."""
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="katuna", KATUNA_KATIB_API="true")
    try:
        for example in APPLIED.values():
            custom.create_namespaced_custom_object("kubeflow.org", "v1beta1", NAMESPACE, "experiments",
                                                   experiment(example, tmp_path))
        ended = _wait_for_ends(custom, {example.file for example in APPLIED.values()}, service)
    finally:
        service.close()
    wrong = []
    for path, example in sorted(APPLIED.items()):
        check = _runs if example.refused is None else _refused
        wrong += [f"{path}: {problem}" for problem in check(example, ended[example.file], custom)]
    wrong += _values(custom) + _metadata(kube)
    assert not wrong, "\n".join(wrong)


def _wait_for_ends(custom: client.CustomObjectsApi, names: set[str], service: Service,
                   seconds: float = 480.0) -> dict[str, dict[str, Any]]:
    """Every Experiment named, once it has ended, by its name."""
    deadline = time.monotonic() + seconds
    ended: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        listed = custom.list_namespaced_custom_object("kubeflow.org", "v1beta1", NAMESPACE, "experiments")["items"]
        ended = {item["metadata"]["name"]: item for item in listed if _end(item)}
        if names <= set(ended):
            return ended
        time.sleep(0.5)
    log = (service.workdir / "serve.log").read_text()[-3000:]
    states = {item["metadata"]["name"]: {k: v for k, v in (item.get("status") or {}).items() if k.startswith("trials")}
              for item in listed}
    raise AssertionError(f"still running: {sorted(names - set(ended))}\n{states}\n{log}")


def _end(item: dict[str, Any]) -> dict[str, Any]:
    """The Experiment's Succeeded or Failed condition, once it has one (else empty)."""
    conditions = (item.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] in ("Succeeded", "Failed") and c["status"] == "True"), {})


def trials_of(custom: client.CustomObjectsApi, name: str) -> list[dict[str, Any]]:
    return custom.list_namespaced_custom_object("kubeflow.org", "v1beta1", NAMESPACE, "trials",
                                                label_selector=f"{EXPERIMENT_LABEL}={name}")["items"]


def _params(trial: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in trial["spec"]["parameterAssignments"]}


def _runs(example: Example, item: dict[str, Any], custom: client.CustomObjectsApi) -> list[str]:
    """Katib's status (every trial run, ended by the trial count) and, per Trial, the metrics
    Katib's collector reads from its output, each reduced by its strategy (``value``, the slot
    of ``min``, ``max`` or ``latest`` that Katib's controller picks)."""
    status, end = item["status"], _end(item)
    if (end.get("type"), end.get("reason")) != ("Succeeded", "ExperimentMaxTrialsReached"):
        return [f"ended {end.get('type')} ({end.get('reason')}: {end.get('message')})"]
    wrong = []
    if status["trialsSucceeded"] + status.get("trialsEarlyStopped", 0) != example.trials:
        wrong.append(f"expected {example.trials} trials, got {status}")
    assert example.metrics is not None
    for trial in trials_of(custom, example.file):
        observed = {m["name"]: float(m["value"]) for m in trial["status"]["observation"]["metrics"]}
        expected = example.metrics(_params(trial))
        if observed != pytest.approx(expected):
            wrong.append(f"{trial['metadata']['name']} {_params(trial)}: metrics {observed}, expected {expected}")
    return wrong


def _refused(example: Example, item: dict[str, Any], custom: client.CustomObjectsApi) -> list[str]:
    """Failed before any trial, with a problem on the field that says why."""
    assert example.refused is not None
    status, (field_, why) = item["status"], example.refused
    problems = {p["field"]: p["message"] for p in status.get("problems") or []}
    if _end(item).get("type") != "Failed" or status.get("trials"):
        return [f"expected a refusal, got {status}"]
    if why not in problems.get(field_, ""):
        return [f"expected a problem on {field_} saying {why!r}, got {problems}"]
    return []


def _values(custom: client.CustomObjectsApi) -> list[str]:
    """Grid points on their steps; int values as integers; a normal rounded to its step (from
    zero, as hyperopt's ``qnormal`` rounds); hyperband's resource at ``r_l``."""
    wrong = []
    for trial in trials_of(custom, "grid"):
        lr, momentum = float(_params(trial)["lr"]), float(_params(trial)["momentum"])
        if not (_on_step(lr, 0.01, 0.005) and 0.01 <= lr <= 0.05 and _on_step(momentum, 0.5, 0.1)):
            wrong.append(f"grid: {_params(trial)} off the grid")
    for trial in trials_of(custom, "optuna-distribution"):
        params = _params(trial)
        if not (re.fullmatch(r"[123]", params["epochs"]) and re.fullmatch(r"\d+", params["batch_size"])
                and _on_step(float(params["lr"]), 1, 0.1)):
            wrong.append(f"optuna-distribution: {params}")
    for trial in trials_of(custom, "hyperopt-distribution"):
        params = _params(trial)
        if not (re.fullmatch(r"[123]", params["epochs"]) and re.fullmatch(r"\d+", params["batch_size"])
                and _on_step(float(params["lr"]), 0, 0.01) and 0.001 <= float(params["momentum"]) <= 1):
            wrong.append(f"hyperopt-distribution: {params}")
    epochs = {_params(trial)["num-epochs"] for trial in trials_of(custom, "hyperband")}
    if epochs != {"2"}:
        wrong.append(f"hyperband: num-epochs {epochs}, expected r_l (2)")
    return wrong


def _on_step(value: float, low: float, step: float) -> bool:
    return round((value - low) / step, 6).is_integer()


def _metadata(kube: KubeStub) -> list[str]:
    """Katib's trial-metadata substitution: each trial's Job gets its own name, namespace, kind,
    API version, and the label and annotation of the trialSpec."""
    jobs = {name: job for name, job in kube.created_jobs.items()
            if job["metadata"]["namespace"] == NAMESPACE and name.startswith("trial-metadata-substitution-")}
    wrong = [] if len(jobs) == 2 else [f"trial-metadata-substitution: {len(jobs)} Jobs"]
    for name, job in jobs.items():
        env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
               if e["name"].startswith("TRIAL_")}
        expected = {"TRIAL_NAME": name, "TRIAL_NAMESPACE": NAMESPACE, "TRIAL_KIND": "Job",
                    "TRIAL_API_VERSION": "batch/v1", "TRIAL_LABEL_CUSTOM": "custom-label",
                    "TRIAL_ANNOTATION_CUSTOM": "custom-annotation"}
        if env != expected:
            wrong.append(f"trial-metadata-substitution: {name} has {env}")
    return wrong


TEMPLATES = template_sources.ClusterTemplates(
    lambda namespace, name: TRIAL_TEMPLATES if (namespace, name) == (NAMESPACE, "trial-templates") else None, "katuna")
"""The cluster's ConfigMaps as the translation reads them at submission."""


@pytest.mark.parametrize("path", sorted(INVENTORY))
def test_each_example_is_taken_or_refused_naming_the_field(path: str, tmp_path: Path):
    """The translation alone, in this process: what the cluster run shows, in milliseconds."""
    example = INVENTORY[path]
    if example.refused is None or example.local:
        template_sources.load(experiment(example, tmp_path), TEMPLATES)
        return
    with pytest.raises(InvalidStudy) as refused:
        template_sources.load(experiment(example, tmp_path), TEMPLATES)
    field_, why = example.refused
    problems = {p.path: p.message for p in refused.value.problems}
    assert list(problems) == [field_] and why in problems[field_], "the reason alone, no follow-on noise"


KATIB_TRIAL_TEMPLATES = {"defaultTrialTemplate.yaml": yaml.safe_dump({
    "apiVersion": "batch/v1", "kind": "Job",
    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
        "name": "training-container", "image": "ghcr.io/kubeflow/katib/pytorch-mnist-cpu:latest",
        "command": ["python3", "/opt/pytorch-mnist/mnist.py", "--epochs=1", "--batch-size=16",
                    "--lr=${trialParameters.learningRate}", "--momentum=${trialParameters.momentum}"]}]}}}})}
"""The default template of Katib's own ``trial-templates`` ConfigMap
(``manifests/v1beta1/components/controller/trial-templates.yaml``)."""


def _tekton_as_shipped(doc: dict[str, Any]) -> None:
    """Katib's PipelineRun as it ships: its first param names the trial parameter rather than
    passing its value, and the training step reads ``$(trialParameters.lr)``, which Tekton never sets."""
    run = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]
    run["params"][0] = {"name": "learningRate", "description": "Learning rate for the training model",
                        "reference": "lr"}
    step = run["pipelineSpec"]["tasks"][1]["taskSpec"]["steps"][0]
    step["command"] = [arg.replace("$(params.lr)", "$(trialParameters.lr)") for arg in step["command"]]


AS_SHIPPED: dict[str, tuple[Callable[[dict[str, Any]], None], dict[str, str], list[str]]] = {
    "hp-tuning/simple-pbt.yaml": (lambda doc: doc["spec"].update(maxTrialCount=2), TRIAL_TEMPLATES,
                                  ["spec.maxFailedTrialCount"]),
    "tekton/pipeline-run.yaml": (_tekton_as_shipped, TRIAL_TEMPLATES, [
        "spec.trialTemplate.trialParameters[0].name",
        "spec.trialTemplate.trialSpec.spec.pipelineSpec.tasks[1].taskSpec.steps[0].command[4]"]),
    "trial-template/trial-configmap-source.yaml": (lambda doc: None, KATIB_TRIAL_TEMPLATES, [
        "spec.trialTemplate.trialParameters[1].name", "spec.trialTemplate.trialParameters[2].name",
        "spec.trialTemplate.trialSpec"]),
}
"""The examples Katib's own webhook refuses as Katib ships them: the change that makes katuna's
counterpart as shipped, the ConfigMap templates it reads, and the fields refused (each as
``validator.go`` refuses it: a trial parameter the template never uses, one it uses undeclared,
more failures allowed than trials; and the PipelineRun's ``$(trialParameters.lr)``, which
neither Tekton nor the kubelet replaces, so that Katib's shell would run it as a command)."""


@pytest.mark.parametrize("path", sorted(AS_SHIPPED))
def test_an_example_as_katib_ships_it_is_refused_as_katibs_webhook_refuses_it(path: str, tmp_path: Path):
    change, templates, fields = AS_SHIPPED[path]
    doc = experiment(INVENTORY[path], tmp_path)
    change(doc)
    with pytest.raises(InvalidStudy) as refused:
        template_sources.load(doc, template_sources.ClusterTemplates(
            lambda namespace, name: templates if (namespace, name) == (NAMESPACE, "trial-templates") else None,
            "katuna"))
    assert [problem.path for problem in refused.value.problems] == fields


def test_a_configmap_template_is_refused_by_the_command_line_naming_the_field(tmp_path: Path):
    example = INVENTORY["trial-template/trial-configmap-source.yaml"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")}
    done = run_katuna("run", str(DATA / f"{example.file}.yaml"), "--db", str(tmp_path / "k.db"), cwd=Path.cwd(),
                      env=environ)
    assert done.returncode == 2, done
    assert "spec.trialTemplate.configMap" in done.stderr


def _section(page: str, heading: str) -> str:
    return (ROOT / page).read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _agree(listed: dict[str, str]) -> None:
    """Every example listed once, with what the inventory says katuna does with it."""
    assert sorted(listed) == sorted(INVENTORY)
    for path, outcome in listed.items():
        refused = INVENTORY[path].refused
        if refused is None:
            assert outcome.startswith("runs"), (path, outcome)
        else:
            assert "refuse" in outcome and f"`{refused[0]}`" in outcome, (path, outcome)


def test_the_readme_groups_every_example_by_what_katuna_does_with_it():
    rows = [line.split("|")[1:-1] for line in _section("README.md", "Katib's examples").splitlines()
            if line.startswith("| ") and ".yaml`" in line]
    listed = [(path, outcome.strip()) for outcome, paths in rows for path in re.findall(r"`([^`]+\.yaml)`", paths)]
    assert len(listed) == len(dict(listed)), "an example listed twice"
    _agree(dict(listed))


def test_the_katib_page_lists_every_example_one_by_one():
    rows = [line.split("|")[1:-1] for line in _section("docs/katib.md", "Katib's examples, one by one").splitlines()
            if line.startswith("| `")]
    _agree({cells[0].strip().strip("`"): cells[2].strip() for cells in rows})