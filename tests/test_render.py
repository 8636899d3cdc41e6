"""Trial Jobs rendered from a study: valid for Kubernetes, and immune to hostile parameter values."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from kube_versions import validate_strictly
from test_cli import here

from functions.core.cluster import SINK_BINDING_LABEL, STUDY_LABEL, TTL_WHY, Cluster
from functions.core.errors import InvalidStudy, RefusedWorkload
from functions.core.job import NotRenderable, render_job
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.core.workload_labels import labels

HOSTILE = ["it's: \"quoted\"", "line one\nline two: {x: 1}", "${trialParameters.x}", "- [a, b]\n---\nkind: Pod",
           "$(rm -rf /)", "' ; echo pwned #"]


def k8s_definition(**overrides) -> dict:
    definition = study_definition(name="render", **overrides)
    definition["parameters"].append({"name": "tag", "type": "categorical", "values": HOSTILE})
    definition["trialTemplate"].update(image="python:3.12", timeout="90s", resources={"cpu": "500m", "memory": "1Gi"},
                                       env={"TAG": "${trialParameters.tag}"}, workingDir="/app")
    definition["trialTemplate"]["command"] += ["--tag", "${trialParameters.tag}"]
    return definition


def job_for(definition: dict, params: dict, attempt: int = 1, defaults: Cluster | None = None) -> dict:
    spec = parse_study(definition)
    record = StudyRecord(spec, definition, "/somewhere/local", "uid")
    return render_job(trial_launch(record, TrialRecord(spec.name, 7, params, attempt=attempt)), defaults or Cluster())


def validate(tmp_path: Path, job: dict) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    validate_strictly([str(path)])


@pytest.mark.slow
@pytest.mark.parametrize("tag", HOSTILE)
def test_hostile_values_stay_single_strings_and_the_job_stays_valid(tmp_path: Path, tag: str):
    job = job_for(k8s_definition(), {"x": 1.5, "tag": tag})
    validate(tmp_path, job)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-2:] == ["--tag", tag]
    assert {"name": "TAG", "value": tag} in container["env"]
    reparsed = yaml.safe_load(yaml.safe_dump(job))
    assert reparsed == job, "the manifest round-trips: no value changed its structure"


def test_the_job_carries_what_a_trial_needs_on_a_spot_pool(tmp_path: Path):
    definition = k8s_definition()
    definition["kubernetes"] = {"nodeSelector": {"cloud.google.com/gke-spot": "true"}, "serviceAccountName": "trainer"}
    job = job_for(definition, {"x": -2.0, "tag": HOSTILE[0]}, attempt=2,
                  defaults=Cluster(namespace="tuning", image_pull_secrets=("regcred",), ttl_seconds_after_finished=600,
                                   start_allowance=300))
    validate(tmp_path, job)
    assert job["metadata"]["name"] == "render-7-a2"
    assert job["metadata"]["namespace"] == "tuning"
    assert job["metadata"]["labels"][STUDY_LABEL] == "render"
    assert job["metadata"]["labels"]["katuna.dev/trial"] == "7"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] == 600
    assert spec["activeDeadlineSeconds"] == (90 + 300) * 4, \
        "a backstop: the timeout plus the start allowance, for each of the 4 runs attempt 2 of 5 may make"
    assert spec["podFailurePolicy"]["rules"][0] == {
        "action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert spec["template"]["metadata"]["annotations"] == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}, \
        "the cluster autoscaler may not evict a running trial to empty an under-used node"
    assert spec["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "false", \
        "Istio injects no proxy, which would keep the pod running after the trial exits"
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"cloud.google.com/gke-spot": "true"}
    assert pod["tolerations"] == [{"key": "katuna.dev/trial", "operator": "Equal", "value": "true",
                                   "effect": "NoSchedule"}]
    assert pod["serviceAccountName"] == "trainer" and pod["imagePullSecrets"] == [{"name": "regcred"}]
    container = pod["containers"][0]
    assert container["workingDir"] == "/app"
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["KATUNA_STUDY"], env["KATUNA_TRIAL"], env["KATUNA_ATTEMPT"]) == ("render", "7", "2")


def test_a_job_needs_an_image():
    definition = k8s_definition()
    del definition["trialTemplate"]["image"]
    with pytest.raises(NotRenderable, match="trialTemplate.image"):
        job_for(definition, {"x": 0.0, "tag": "a"})


@pytest.mark.slow
def test_katuna_render_prints_a_valid_job_for_the_first_suggestion_or_given_params(tmp_path: Path):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(k8s_definition()))
    first = here("render", str(study))
    job = yaml.safe_load(first.stdout)
    validate(tmp_path, job)
    assert job["metadata"]["name"] == "render-0"
    given = here("render", str(study), "--params", "x=2.5", "--params", f"tag={HOSTILE[1]}")
    command = yaml.safe_load(given.stdout)["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[2:] == ["--x", "2.5", "--mode", "ok", "--tag", HOSTILE[1]]
    bad = here("render", str(study), "--params", "x=99", "--params", "tag=a", "--params", "y=1", check=False)
    assert bad.returncode == 2
    assert "--params x: expected a value in [-5.0, 5.0], got 99" in bad.stderr
    assert "--params y=1: expected name=value with a name among x, tag" in bad.stderr
    assert "--params tag: expected one of" in bad.stderr


def test_katuna_render_writes_each_replicas_tolerations_out_whole_with_no_yaml_aliases(tmp_path: Path):
    """Every replica of a PyTorchJob takes the same tolerations: written once each, as ``kubectl
    apply`` input is, never as a YAML anchor and aliases of it."""
    definition = study_definition(name="replicas", kubernetes={"tolerations": [
        {"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]})
    pod = {"spec": {"containers": [{"name": "pytorch", "image": "python:3.12",
                                    "command": ["train", "--x", "${trialParameters.x}"]}]}}
    definition["trialTemplate"] = {"primaryContainerName": "pytorch", "trialSpec": {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
            "Master": {"replicas": 1, "template": pod}, "Worker": {"replicas": 2, "template": pod}}}}}
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(definition))
    rendered = here("render", str(study)).stdout
    assert "&id" not in rendered and "*id" not in rendered, rendered
    replicas = yaml.safe_load(rendered)["spec"]["pytorchReplicaSpecs"]
    assert [replicas[role]["template"]["spec"]["tolerations"] for role in ("Master", "Worker")] == [
        [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]] * 2


def katib_style(**overrides) -> dict:
    """A study whose trial is a whole Job template, Katib style."""
    definition = study_definition(name="katib-style", **overrides)
    definition["parameters"].append({"name": "tag", "type": "categorical", "values": HOSTILE})
    definition["trialTemplate"] = {
        "primaryContainerName": "training",
        "trialSpec": {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"labels": {"team": "vision"}, "annotations": {"owner": "ada"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "image": "busybox", "command": ["sleep", "1"]},
                {"name": "training", "image": "python:3.12",
                 "command": [sys.executable, str(Path(__file__).parent / "trials" / "objective.py")],
                 "args": ["--x", "${trialParameters.x}", "--mode", "ok"],
                 "env": [{"name": "TAG", "value": "${trialParameters.tag}"},
                         {"name": "WHO", "value": "${trialSpec.Name} in ${trialSpec.Namespace} "
                                                  "for ${trialSpec.Labels[team]} by ${trialSpec.Annotations[owner]}"}]},
            ], "restartPolicy": "Never"}}},
        },
    }
    return definition


def test_a_katib_style_trial_spec_renders_with_every_placeholder_and_katunas_requirements(tmp_path: Path):
    job = job_for(katib_style(), {"x": 1.25, "tag": HOSTILE[3]}, defaults=Cluster(namespace="vision"))
    validate(tmp_path, job)
    assert job["metadata"]["name"] == "katib-style-7"
    assert job["metadata"]["labels"]["team"] == "vision" and job["metadata"]["labels"][STUDY_LABEL] == "katib-style"
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["type"] == "DisruptionTarget"
    assert job["spec"]["template"]["metadata"]["annotations"] == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    assert "sidecar.istio.io/inject" not in job["spec"]["template"]["metadata"]["labels"], "a trialSpec's is its own"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and len(pod["containers"]) == 2
    training = pod["containers"][1]
    assert training["args"] == ["--x", "1.25", "--mode", "ok"]
    env = {e["name"]: e["value"] for e in training["env"]}
    assert env["TAG"] == HOSTILE[3]
    assert env["WHO"] == "katib-style-7 in vision for vision by ada"
    assert env["KATUNA_TRIAL"] == "7"
    assert all(e["name"].startswith("KATUNA_PARAM_") for e in pod["containers"][0]["env"]), \
        "only the primary container gets katuna's trial variables; every container gets the parameters'"


def test_a_katib_style_trial_spec_runs_locally_as_its_primary_container(embedded, tmp_path: Path):
    """Its placeholders filled in as on a cluster; the pod holds the primary container alone, as
    a local trial runs it (a sidecar, which would not run here, is refused where trials run on
    this machine: ``tests/test_katib.py``)."""
    from conftest import run_study

    definition = katib_style(maxTrials=2)
    del definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    record = run_study(embedded, definition, tmp_path)
    assert record.status == "completed"
    for trial in embedded.store.trials("katib-style"):
        assert trial.values[0] == pytest.approx((trial.params["x"] - 2) ** 2, abs=1e-5)


def test_a_trial_spec_jobs_own_failure_policy_rules_follow_katunas_and_its_ttl_and_backoff_are_kept():
    definition = katib_style()
    rule = {"action": "FailJob", "onExitCodes": {"containerName": "training", "operator": "In", "values": [42]}}
    definition["trialTemplate"]["trialSpec"]["spec"].update(
        podFailurePolicy={"rules": [rule]}, ttlSecondsAfterFinished=900, backoffLimit=2)
    spec = job_for(definition, {"x": 1.0, "tag": "a"}, defaults=Cluster(ttl_seconds_after_finished=3600))["spec"]
    assert [r["action"] for r in spec["podFailurePolicy"]["rules"]] == ["Ignore", "FailJob"]
    assert spec["podFailurePolicy"]["rules"][1] == rule
    assert (spec["ttlSecondsAfterFinished"], spec["backoffLimit"]) == (900, 2)
    definition["trialTemplate"]["retain"] = True
    assert job_for(definition, {"x": 1.0, "tag": "a"})["spec"]["ttlSecondsAfterFinished"] is None, "retain keeps it"
    del definition["trialTemplate"]["trialSpec"]["spec"]["backoffLimit"]
    assert job_for(definition, {"x": 1.0, "tag": "a"})["spec"]["backoffLimit"] == 0, "a native study's default"


def test_a_trial_spec_jobs_pod_template_with_empty_metadata_gets_katunas_labels_and_annotations():
    """A pod template's ``metadata:`` left empty (null, as YAML reads it) is no metadata, as the
    API server reads it: the Job renders with katuna's pod labels and annotations there."""
    definition = katib_style()
    definition["trialTemplate"]["trialSpec"]["spec"]["template"]["metadata"] = None
    metadata = job_for(definition, {"x": 1.0, "tag": "a"})["spec"]["template"]["metadata"]
    assert metadata["labels"][STUDY_LABEL] == "katib-style"
    assert metadata["annotations"] == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}


def test_a_trial_spec_jobs_own_deadline_is_kept_where_it_is_sooner_than_katunas_backstop():
    """Kubernetes fails a Job past its ``activeDeadlineSeconds``, as Katib's trial does: the
    template's own deadline stays when sooner than the backstop katuna sizes from the timeout;
    a later one gives way to it; without a timeout it is the Job's only one."""
    definition = katib_style()
    definition["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 30
    assert job_for(definition, {"x": 1.0, "tag": "a"})["spec"]["activeDeadlineSeconds"] == 30
    definition["trialTemplate"]["timeout"] = "90s"
    assert job_for(definition, {"x": 1.0, "tag": "a"})["spec"]["activeDeadlineSeconds"] == 30
    definition["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 10 ** 6
    assert job_for(definition, {"x": 1.0, "tag": "a"})["spec"]["activeDeadlineSeconds"] == (90 + 3600) * 5


@pytest.mark.parametrize("timeout", [None, "90s"])
def test_a_trial_spec_jobs_deadline_filled_in_past_what_kubernetes_counts_refuses_that_trial(timeout):
    """A deadline given by a placeholder (``typedFields``) is known per trial: one filled in
    negative (the API server refuses it) or longer than the Job controller counts (it fails the
    Job at its first sync) refuses that trial at launch naming the field, not a Job failing at
    once; one it counts is kept, the sooner of it and katuna's backstop."""
    definition = katib_style()
    definition["parameters"].append({"name": "deadline", "type": "int", "min": -5, "max": 2**40})
    template = definition["trialTemplate"]
    template["trialSpec"]["spec"]["activeDeadlineSeconds"] = "${trialParameters.deadline}"
    template["typedFields"] = [["spec", "activeDeadlineSeconds"]]
    if timeout:
        template["timeout"] = timeout
    assert job_for(definition, {"x": 1.0, "tag": "a", "deadline": 30})["spec"]["activeDeadlineSeconds"] == 30
    for deadline in (-1, 9223372037, 2**40):
        with pytest.raises(RefusedWorkload) as refused:
            job_for(definition, {"x": 1.0, "tag": "a", "deadline": deadline})
        [problem] = refused.value.problems
        assert problem.path == "trialTemplate.trialSpec.spec.activeDeadlineSeconds"
        assert problem.message == ("expected a whole number of seconds from 0 to 9223372036, as Kubernetes counts a "
                                   "Job's (a longer one fails the Job at once: the Job controller's clock cannot hold "
                                   f"it), got {deadline} (its placeholders filled in)")


def test_a_trial_pod_gets_no_service_links_unless_its_trial_spec_asks_for_them():
    """Kubernetes puts every Service of the namespace into a pod's environment
    (``enableServiceLinks`` defaults to true): katuna's own addresses are no business of a
    trial, so its Jobs' pods go without them, a ``trialSpec`` Job's too, unless it says otherwise."""
    own = job_for(k8s_definition(), {"x": 1.0, "tag": "a"})["spec"]["template"]["spec"]
    assert own["enableServiceLinks"] is False
    definition = katib_style()
    assert job_for(definition, {"x": 1.0, "tag": "a"})["spec"]["template"]["spec"]["enableServiceLinks"] is False
    definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["enableServiceLinks"] = True
    assert job_for(definition, {"x": 1.0, "tag": "a"})["spec"]["template"]["spec"]["enableServiceLinks"] is True


def test_a_trial_spec_job_counting_failures_per_index_gets_no_job_wide_backoff_limit():
    """Kubernetes limits failures Job-wide by ``backoffLimit`` beside each index's own: katuna's
    default of none retried would end an Indexed Job at its first failed pod, whatever
    ``backoffLimitPerIndex`` allows, so a template counting per index gets none of katuna's."""
    definition = katib_style()
    definition["trialTemplate"]["trialSpec"]["spec"].update(completionMode="Indexed", completions=2,
                                                            backoffLimitPerIndex=3)
    spec = job_for(definition, {"x": 1.0, "tag": "a"})["spec"]
    assert spec["backoffLimit"] is None and spec["backoffLimitPerIndex"] == 3
    definition["trialTemplate"]["trialSpec"]["spec"]["backoffLimit"] = 4
    assert job_for(definition, {"x": 1.0, "tag": "a"})["spec"]["backoffLimit"] == 4, "the template's own is kept"


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("ttlSecondsAfterFinished", 60, "expected at least 600 (or none), got 60"),
    ("podFailurePolicy", {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [i + 1]}}
                                    for i in range(20)]}, "expected at most 19, got 20"),
])
def test_a_trial_spec_jobs_field_katuna_cannot_keep_is_refused_by_path(field, value, expected):

    definition = katib_style()
    definition["trialTemplate"]["trialSpec"]["spec"][field] = value
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    path = f"trialTemplate.trialSpec.spec.{field}" + (".rules" if field == "podFailurePolicy" else "")
    assert [p.path for p in caught.value.problems] == [path]
    assert caught.value.problems[0].message.startswith(expected)


def test_trial_spec_mistakes_are_reported_with_their_paths():
    from functions.core.errors import InvalidStudy

    definition = katib_style()
    spec = definition["trialTemplate"]["trialSpec"]
    spec["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    spec["spec"]["template"]["spec"]["containers"][1]["args"].append("${trialSpec.Uid}")
    definition["trialTemplate"]["primaryContainerName"] = "trainer"
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    found = [str(p) for p in caught.value.problems]
    assert "trialTemplate.primaryContainerName: names no container; expected one of sidecar, training" in found
    assert any(p.startswith("trialTemplate.trialSpec.spec.template.spec.restartPolicy: expected Never") for p in found)
    assert any(p.startswith("trialTemplate.trialSpec.spec.template.spec.containers[1].args[4]: unknown placeholder "
                            "${trialSpec.Uid}") for p in found)


def test_service_defaults_fill_what_the_study_leaves_out(tmp_path: Path):
    from functions.settings import Settings

    settings = Settings.from_env({"KATUNA_K8S_NAMESPACE": "ml", "KATUNA_K8S_SERVICE_ACCOUNT": "runner",
                                  "KATUNA_K8S_IMAGE_PULL_SECRETS": "a,b", "KATUNA_K8S_TTL_SECONDS": "600",
                                  "KATUNA_K8S_DEFAULT_RESOURCES": "cpu=2,memory=4Gi", "KATUNA_K8S_START_ALLOWANCE": "120"})
    definition = k8s_definition()
    del definition["trialTemplate"]["resources"]
    job = job_for(definition, {"x": 0.0, "tag": "$(rm -rf /)"}, defaults=settings.cluster_defaults())
    validate(tmp_path, job)
    pod = job["spec"]["template"]["spec"]
    assert (job["metadata"]["namespace"], pod["serviceAccountName"], job["spec"]["ttlSecondsAfterFinished"]) == (
        "ml", "runner", 600)
    assert job["spec"]["activeDeadlineSeconds"] == (90 + 120) * 5
    assert job_for(k8s_definition(), {"x": 0.0, "tag": "a"})["spec"]["activeDeadlineSeconds"] == (90 + 3600) * 5
    assert job_for(k8s_definition(), {"x": 0.0, "tag": "a"}, attempt=5)["spec"]["activeDeadlineSeconds"] == 90 + 3600, \
        "the last attempt may lose no pod: one run"
    assert pod["imagePullSecrets"] == [{"name": "a"}, {"name": "b"}]
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}}
    with pytest.raises(ValueError, match="KATUNA_K8S_DEFAULT_RESOURCES: expected name=quantity items, got 'cpu'"):
        Settings.from_env({"KATUNA_K8S_DEFAULT_RESOURCES": "cpu"})
    for given, words in (("cpu=1,gpus=1", "'gpus' is no container resource"), ("memory=2GB", "expected a quantity"),
                         ("gpu=0.5", "nvidia.com/gpu cannot be split")):
        with pytest.raises(ValueError, match=f"KATUNA_K8S_DEFAULT_RESOURCES: {words}"):
            Settings.from_env({"KATUNA_K8S_DEFAULT_RESOURCES": given})
    with pytest.raises(ValueError, match="KATUNA_K8S_START_ALLOWANCE: expected seconds >= 0, got -1"):
        Settings.from_env({"KATUNA_K8S_START_ALLOWANCE": "-1"})


def test_without_settings_a_trial_naming_no_resources_gets_the_default_ones_and_none_leaves_it_best_effort():
    """A pod without cpu or memory requests is BestEffort, the first evicted, with no memory limit:
    the service gives such trials cpu=1,memory=2Gi unless told otherwise."""
    from functions.settings import Settings

    definition = k8s_definition()
    del definition["trialTemplate"]["resources"]
    for env, expected in (({}, {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}),
                          ({"KATUNA_K8S_DEFAULT_RESOURCES": "none"}, None)):
        job = job_for(definition, {"x": 0.0, "tag": "a"}, defaults=Settings.from_env(env).cluster_defaults())
        assert job["spec"]["template"]["spec"]["containers"][0].get("resources") == expected, env


@pytest.mark.parametrize("ttl", ["599", "0", "-5"])
def test_a_job_ttl_too_short_for_katuna_to_read_the_finished_pods_is_refused_by_setting_and_by_study(ttl: str):
    from functions.core.errors import InvalidSetting
    from functions.settings import Settings

    with pytest.raises(InvalidSetting, match=f"^KATUNA_K8S_TTL_SECONDS: expected at least 600 seconds, got {ttl}: "):
        Settings.from_env({"KATUNA_K8S_TTL_SECONDS": ttl})
    definition = k8s_definition()
    definition["kubernetes"] = {"ttlSecondsAfterFinished": int(ttl)}
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    assert [str(p) for p in refused.value.problems] == [
        f"kubernetes.ttlSecondsAfterFinished: expected at least 600 (or none), got {ttl}: {TTL_WHY}"]
    definition["kubernetes"] = {"ttlSecondsAfterFinished": 600}
    assert job_for(definition, {"x": 0.0, "tag": "a"})["spec"]["ttlSecondsAfterFinished"] == 600


@pytest.mark.parametrize("field", ["ttlSecondsAfterFinished", "backoffLimit"])
def test_a_job_number_past_its_int32_is_refused_by_study_and_setting_not_by_every_trials_job(field: str):
    """The API server cannot decode such a Job: stored, the study would fail at its first trial."""
    from functions.core.errors import InvalidSetting
    from functions.settings import Settings

    definition = k8s_definition()
    definition["kubernetes"] = {field: 2**31}
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    assert [p.path for p in refused.value.problems] == [f"kubernetes.{field}"]
    assert refused.value.problems[0].message.endswith(f"{2**31 - 1}{' seconds' if 'ttl' in field else ''} (the Job's "
                                                      f"int32), got {2**31}")
    definition["kubernetes"] = {field: 2**31 - 1}
    assert job_for(definition, {"x": 0.0, "tag": "a"})["spec"][field] == 2**31 - 1
    with pytest.raises(InvalidSetting, match=r"^KATUNA_K8S_TTL_SECONDS: expected at most 2147483647 seconds"):
        Settings.from_env({"KATUNA_K8S_TTL_SECONDS": str(2**31)})


def test_a_timeout_longer_than_a_jobs_deadline_holds_sets_the_longest_it_holds():
    """Where ``KATUNA_MAX_DURATION`` allows one: the Job controller counts a deadline in a Go
    duration (int64 nanoseconds), so a larger number than it holds, which the API takes, would
    fail every trial's Job at its first sync."""
    from functions.settings import Settings

    definition = k8s_definition()
    definition["trialTemplate"]["timeout"] = 1e30
    spec = parse_study(definition, Settings.from_env({"KATUNA_MAX_DURATION": "1e300"}).limits)
    launch = trial_launch(StudyRecord(spec, definition, "/somewhere/local", "uid"), TrialRecord(spec.name, 7, {"x": 0.0}))
    assert render_job(launch)["spec"]["activeDeadlineSeconds"] == 9_223_372_036


def _trial_spec(resources: dict | None = None) -> dict:
    container = {"name": "training", "image": "python:3.12", "command": ["python", "-c", "${trialParameters.x}"]}
    if resources is not None:
        container["resources"] = resources
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"containers": [
        container, {"name": "sidecar", "image": "busybox", "command": ["sleep", "1"]}]}}}}


def spec_study(resources: dict | None = None, **overrides) -> dict:
    definition = study_definition(name="render", **overrides)
    definition["trialTemplate"] = {"trialSpec": _trial_spec(resources)}
    return definition


def test_the_shipped_configuration_gives_every_trial_pod_requests():
    from functions.settings import Settings

    config = yaml.safe_load((Path(__file__).parent.parent / "knative" / "config.yaml").read_text())
    defaults = Settings.from_env(config["data"]).cluster_defaults()
    definition = k8s_definition()
    del definition["trialTemplate"]["resources"]
    container = job_for(definition, {"x": 0.0, "tag": "a"}, defaults=defaults)["spec"]["template"]["spec"]["containers"][0]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]), "never BestEffort"
    spec_job = job_for(spec_study(), {"x": 0.0}, defaults=defaults)
    primary, sidecar = spec_job["spec"]["template"]["spec"]["containers"]
    assert primary["resources"] == {"requests": container["resources"]["requests"]} and "resources" not in sidecar


def test_a_trial_spec_gets_the_default_resources_as_requests_and_no_limit_katib_would_not_set():
    defaults = Cluster(default_resources=(("cpu", "1"), ("memory", "2Gi")))
    gpu_only = job_for(spec_study({"limits": {"nvidia.com/gpu": "1"}}), {"x": 0.0}, defaults=defaults)
    primary = gpu_only["spec"]["template"]["spec"]["containers"][0]
    assert primary["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"nvidia.com/gpu": "1"}}
    asked = spec_study()
    asked["trialTemplate"]["resources"] = {"gpu": "1"}
    primary = job_for(asked, {"x": 0.0}, defaults=defaults)["spec"]["template"]["spec"]["containers"][0]
    assert primary["resources"] == {"requests": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"},
                                    "limits": {"nvidia.com/gpu": "1"}}
    asked["trialTemplate"]["resources"] = {"memory": "8Gi"}
    primary = job_for(asked, {"x": 0.0}, defaults=defaults)["spec"]["template"]["spec"]["containers"][0]
    assert primary["resources"] == {"requests": {"memory": "8Gi"}, "limits": {"memory": "8Gi"}}, "the study's own"


def test_defaults_fill_what_a_template_leaves_unsized_and_never_override_its_own():
    defaults = Cluster(default_resources=(("cpu", "1"), ("memory", "2Gi")))
    gpu_only = k8s_definition()
    gpu_only["trialTemplate"]["resources"] = {"gpu": "1"}
    container = job_for(gpu_only, {"x": 0.0, "tag": "a"}, defaults=defaults)["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"},
                                      "limits": {"memory": "2Gi", "nvidia.com/gpu": "1"}}
    cpu_only = k8s_definition()
    cpu_only["trialTemplate"]["resources"] = {"cpu": "4"}
    container = job_for(cpu_only, {"x": 0.0, "tag": "a"}, defaults=defaults)["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "4"}}
    own = {"requests": {"memory": "8Gi"}}
    primary = job_for(spec_study(own), {"x": 0.0}, defaults=defaults)["spec"]["template"]["spec"]["containers"][0]
    assert primary["resources"] == own, "a trialSpec container's own requests count as the trial's"


def test_a_study_with_a_node_pool_needs_requests_from_itself_or_the_service():
    from functions.core.errors import InvalidStudy
    from functions.pools import check_node_pool
    from functions.settings import Settings

    gke = {"gke_project": "p", "gke_location": "l", "gke_cluster": "c"}
    pool = {"provider": "gke"}
    unsized = parse_study(study_definition(nodePool=pool))
    check_node_pool(unsized, Settings(**gke), runs_jobs=True)
    with pytest.raises(InvalidStudy) as refused:
        check_node_pool(unsized, Settings(**gke, k8s_default_resources=()), runs_jobs=True)
    problem = refused.value.problems[0]
    assert problem.path == "trialTemplate.resources"
    assert "cpu or memory" in problem.message and "KATUNA_K8S_DEFAULT_RESOURCES" in problem.message
    check_node_pool(unsized, Settings(**gke, k8s_default_resources=(("memory", "1Gi"),)), runs_jobs=True)
    sized = study_definition(nodePool=pool)
    sized["trialTemplate"]["resources"] = {"cpu": "500m"}
    check_node_pool(parse_study(sized), Settings(**gke), runs_jobs=True)
    check_node_pool(parse_study(spec_study({"limits": {"memory": "1Gi"}}, nodePool=pool)), Settings(**gke),
                    runs_jobs=True)
    with pytest.raises(InvalidStudy, match="trialTemplate.resources"):
        check_node_pool(parse_study(spec_study({"limits": {"nvidia.com/gpu": "1"}}, nodePool=pool)),
                        Settings(**gke, k8s_default_resources=()), runs_jobs=True)


def test_a_label_or_annotation_the_trial_spec_lacks_is_refused_naming_the_field_and_the_key():
    """``${trialSpec.Labels[key]}`` reads the trialSpec's own labels (katuna's are no more there
    locally than in Katib): a key it lacks would stay as written in every trial."""
    definition = katib_style()
    env = definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][1]["env"]
    env.append({"name": "TEAM", "value": "${trialSpec.Labels[tema]} of ${trialSpec.Labels[team]}"})
    env.append({"name": "STUDY", "value": "${trialSpec.Annotations[katuna.dev/study]}"})
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    where = "trialTemplate.trialSpec.spec.template.spec.containers[1].env"
    kept = ": it would stay as written in every trial; add the key there, or use ${trialSpec.Name} or a parameter instead"
    assert [(p.path, p.message) for p in caught.value.problems] == [
        (f"{where}[2].value", "${trialSpec.Labels[tema]} names label 'tema', which trialTemplate.trialSpec.metadata."
                              f"labels lacks (it has team){kept}"),
        (f"{where}[3].value", "${trialSpec.Annotations[katuna.dev/study]} names annotation 'katuna.dev/study', which "
                              f"trialTemplate.trialSpec.metadata.annotations lacks (it has owner){kept}")]


def test_a_trial_specs_labels_are_filled_in_and_one_kubernetes_would_refuse_is_refused_naming_it():
    """Labels are substituted like the rest of the template (``${trialSpec.Labels[...]}`` reads
    the filled-in value); a value the API server would refuse once filled in fails the launch
    for good, naming each label, rather than being sent to be refused with 422."""
    from functions.core.errors import InvalidStudy

    definition = katib_style()
    definition["parameters"].append({"name": "opt", "type": "categorical", "values": ["adam", "sgd momentum"]})
    spec = definition["trialTemplate"]["trialSpec"]
    spec["metadata"]["labels"].update(optimizer="${trialParameters.opt}", run="${trialSpec.Name}")
    spec["spec"]["template"]["metadata"] = {"labels": {"optimizer": "${trialParameters.opt}"}}
    spec["spec"]["template"]["spec"]["containers"][1]["env"].append(
        {"name": "OPT", "value": "${trialSpec.Labels[optimizer]}"})
    job = job_for(definition, {"x": 1.25, "tag": "t", "opt": "adam"})
    assert {k: job["metadata"]["labels"][k] for k in ("team", "optimizer", "run")} == {
        "team": "vision", "optimizer": "adam", "run": "katib-style-7"}
    assert job["spec"]["template"]["metadata"]["labels"]["optimizer"] == "adam"
    assert {"name": "OPT", "value": "adam"} in job["spec"]["template"]["spec"]["containers"][1]["env"]
    with pytest.raises(InvalidStudy) as caught:
        job_for(definition, {"x": 1.25, "tag": "t", "opt": "sgd momentum"})
    assert [p.path for p in caught.value.problems] == ["trialTemplate.trialSpec.metadata.labels.optimizer",
                                                       "trialTemplate.trialSpec.spec.template.metadata.labels.optimizer"]
    assert all("got 'sgd momentum' (its placeholders filled in)" in p.message for p in caught.value.problems)


def test_a_workloads_labels_are_filled_in_as_a_jobs_are():
    from functions.core.launch import TrialLaunch

    workload = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
                "metadata": {"labels": {"optimizer": "${trialParameters.opt}", "run": "${trialSpec.Name}"}},
                "spec": {"pytorchReplicaSpecs": {"Master": {"template": {
                    "metadata": {"labels": {"optimizer": "${trialParameters.opt}"}},
                    "spec": {"containers": [{"name": "pytorch", "image": "python:3.12", "command": ["train"]}]}}}}}}
    launch = TrialLaunch("torch", "uid", 3, 1, "torch-3", [], {}, ".", timeout=None, params={"opt": "adam"},
                         trial_spec=workload)
    rendered = render_job(launch)
    assert {k: rendered["metadata"]["labels"][k] for k in ("optimizer", "run", STUDY_LABEL)} == {
        "optimizer": "adam", "run": "torch-3", STUDY_LABEL: "torch"}
    assert rendered["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["metadata"]["labels"] == {
        "optimizer": "adam", **labels(launch)}


KATUNA_POD_LABELS = {"katuna.dev/study": "kinds", "katuna.dev/uid": "0123456789ab", "katuna.dev/trial": "2",
                     "katuna.dev/attempt": "3", "app.kubernetes.io/managed-by": "katuna"}


@pytest.mark.parametrize(("workload", "paths"), [
    ({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Master": {"template": {"spec": {"containers": [{"name": "pytorch", "image": "python:3.12"}]}}},
        "Worker": {"replicas": 2, "template": {"metadata": {"labels": {"role": "w"}},
                                              "spec": {"containers": [{"name": "pytorch", "image": "python:3.12"}]}}}}}},
     [("spec", "pytorchReplicaSpecs", "Master", "template", "metadata"),
      ("spec", "pytorchReplicaSpecs", "Worker", "template", "metadata")]),
    ({"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {"replicatedJobs": [
        {"name": "node", "template": {"spec": {"template": {"spec": {"containers": [
            {"name": "node", "image": "python:3.12"}]}}}}}]}},
     [("spec", "replicatedJobs", 0, "template", "spec", "template", "metadata")]),
    ({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "container": {"image": "python:3.12"}}]}}, [("spec", "podMetadata")]),
    ({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {"pipelineSpec": {"tasks": []}}}, [("metadata",)]),
])
def test_each_pod_a_workload_makes_carries_katunas_labels(workload: dict, paths: list[tuple]):
    """Operators make pods from the templates they are given: katuna's labels go where each kind
    takes its pods' labels (a role's template, a JobSet's Job template, a Workflow's
    ``podMetadata``, a PipelineRun's own labels), so a pod tells which study and attempt it is
    of; the template's own labels stay."""
    from functions.core.launch import TrialLaunch

    launch = TrialLaunch("kinds", "0123456789ab", 2, 3, "kinds-2-a3", [], {}, ".", timeout=None, trial_spec=workload,
                         primary_container=None)
    rendered = render_job(launch)
    for path in paths:
        found = rendered
        for key in path:
            found = found[key]
        assert found["labels"] == {**((_at(workload, path) or {}).get("labels") or {}), **KATUNA_POD_LABELS}


def _at(tree: dict, path: tuple) -> dict | None:
    for key in path:
        try:
            tree = tree[key]
        except (KeyError, IndexError, TypeError):
            return None
    return tree


TRAINING = ("spec", "template", "spec", "containers", 1)
"""Where :func:`katib_style` keeps its primary container, as keys from its trialSpec."""


@pytest.mark.parametrize(("keys", "value", "path", "message"), [
    ((*TRAINING, "command"), "python train.py --x=${trialParameters.x}", "command",
     "expected a list of strings, got a string"),
    ((*TRAINING, "command"), 3, "command", "expected a list of strings, got an integer"),
    ((*TRAINING, "args"), ["--x", 1.5], "args[1]", "expected a string, got a number"),
    ((*TRAINING, "env"), {"TAG": "x"}, "env", "expected a list of mappings, got a mapping"),
    ((*TRAINING, "env"), [{"name": "A", "value": "1"}, 1], "env[1]", "expected a mapping, got an integer"),
    ((*TRAINING, "env"), [{"name": "A", "value": "1"}, {"name": 5, "value": "x"}], "env[1].name",
     "expected a string, got an integer"),
    ((*TRAINING, "env"), [{"value": "x"}], "env[0].name", "required; expected a variable's name"),
    ((*TRAINING, "env"), [{"name": "A=B", "value": "x"}], "env[0].name",
     "expected a variable's name: a non-empty string without '=', got 'A=B'"),
    ((*TRAINING, "env"), [{"name": "A", "value": 5}], "env[0].value", "expected a string, got an integer"),
    ((*TRAINING, "resources"), "1Gi", "resources", "expected a mapping, got a string"),
    ((*TRAINING, "resources"), {"limits": ["memory"]}, "resources.limits", "expected a mapping, got a list"),
    ((*TRAINING, "image"), 3, "image", "expected a string, got an integer"),
    ((*TRAINING, "workingDir"), ["/w"], "workingDir", "expected a string, got a list"),
])
def test_a_trial_spec_containers_field_of_the_wrong_type_is_refused_by_its_path(keys, value, path, message):
    """Each field katuna reads of a container (a local trial's argv and environment) or fills in
    (resources) is refused by its path when it holds the wrong type, as the API server would
    refuse the Job: it was taken, then every trial failed with a Python error naming no field."""
    container = "trialTemplate.trialSpec.spec.template.spec.containers[1]"
    assert [(where, said) for where, said in _refused_with(keys, value) if where.startswith(container)] == \
        [(f"{container}.{path}", message)]


@pytest.mark.parametrize(("keys", "value", "path", "message"), [
    (("spec",), 3, "spec", "expected a mapping, got an integer"),
    (("metadata",), 3, "metadata", "expected a mapping, got an integer"),
    (("metadata", "labels"), "team", "metadata.labels", "expected a mapping, got a string"),
    (("metadata", "annotations", "owner"), 3, "metadata.annotations.owner", "expected a string, got an integer"),
    (("spec", "template", "metadata"), "x", "spec.template.metadata", "expected a mapping, got a string"),
    (("spec", "template", "metadata"), {"labels": ["a"]}, "spec.template.metadata.labels",
     "expected a mapping, got a list"),
])
def test_a_trial_spec_workloads_or_pod_templates_metadata_of_the_wrong_type_is_refused_by_its_path(
        keys, value, path, message):
    """The trialSpec's ``spec`` and ``metadata``, and its pod template's, are mappings katuna reads
    and adds its labels to: a study with another type there was a traceback at submission, or
    accepted and a traceback from ``katuna render`` and from every trial on a cluster."""
    assert (f"trialTemplate.trialSpec.{path}", message) in _refused_with(keys, value)


def _refused_with(keys: tuple[str, ...], value: object) -> list[tuple[str, str]]:
    """The problems of the Katib-style study whose ``trialSpec`` holds ``value`` at ``keys``."""
    definition = katib_style()
    node = definition["trialTemplate"]["trialSpec"]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    return [(p.path, p.message) for p in caught.value.problems]


def test_a_containers_resources_left_null_render_as_none_given():
    """``resources: null`` is Kubernetes' no resources: the trial gets the default ones."""
    definition = katib_style()
    definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][1]["resources"] = None
    job = job_for(definition, {"x": 1.25, "tag": HOSTILE[0]},
                  defaults=Cluster(default_resources=(("cpu", "1"),)))
    assert job["spec"]["template"]["spec"]["containers"][1]["resources"] == {"requests": {"cpu": "1"}}


def test_trial_spec_labels_kubernetes_would_refuse_whatever_the_trial_are_refused_at_submission():
    from functions.core.errors import InvalidStudy

    definition = katib_style()
    spec = definition["trialTemplate"]["trialSpec"]
    spec["metadata"]["labels"] = {"team": "vision team", "bad key": "x", "version": 2, "tag": "${trialParameters.tag}"}
    spec["spec"]["template"]["metadata"] = {"labels": {"role": "-x", "example.com/role": "trainer"}}
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    assert sorted(p.path for p in caught.value.problems) == [
        "trialTemplate.trialSpec.metadata.labels.bad key", "trialTemplate.trialSpec.metadata.labels.team",
        "trialTemplate.trialSpec.metadata.labels.version", "trialTemplate.trialSpec.spec.template.metadata.labels.role"]
    assert any(p.message.startswith("expected a Kubernetes label value") and p.message.endswith("got 'vision team'")
               for p in caught.value.problems)
    assert any(p.message.startswith("expected a Kubernetes label key") for p in caught.value.problems)


def test_trial_spec_labels_of_katunas_own_prefix_are_refused_at_submission():
    """A pod labelled ``katuna.dev/client`` would be admitted to the service's pod past Knative's
    data plane (knative/networkpolicy.yaml); katuna's own trial labels are its to set."""
    from functions.core.errors import InvalidStudy

    definition = katib_style()
    spec = definition["trialTemplate"]["trialSpec"]
    spec["metadata"]["labels"] = {"katuna.dev/study": "other", "team": "vision"}
    spec["spec"]["template"]["metadata"] = {"labels": {"katuna.dev/client": "true"}}
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    assert [p.path for p in caught.value.problems] == [
        "trialTemplate.trialSpec.metadata.labels.katuna.dev/study",
        "trialTemplate.trialSpec.spec.template.metadata.labels.katuna.dev/client"]
    assert all(p.message.startswith("expected a label of another prefix: katuna.dev/ is katuna's own")
               for p in caught.value.problems)


def test_hugepages_without_cpu_or_memory_are_refused_where_trials_run_as_jobs():
    """Kubernetes refuses a container asking for hugepages alone: katuna refuses such a study
    when it is submitted to a service running Jobs, as the API server would refuse every trial's."""
    from kube_standin.validation import job_problems

    from functions.pools import check_study
    from functions.settings import Settings

    definition = study_definition()
    definition["trialTemplate"].update(image="python:3.12", resources={"hugepages-2Mi": "1Gi"})
    spec, bare = parse_study(definition), Settings(k8s_default_resources=())
    with pytest.raises(InvalidStudy) as refused:
        check_study(spec, definition, bare, runs_jobs=True)
    [problem] = refused.value.problems
    assert problem.path == "trialTemplate.resources" and problem.message.startswith(
        "hugepages-2Mi needs cpu or memory beside it: Kubernetes refuses a container asking for hugepages alone")
    assert ("spec.template.spec.containers[0].resources", "Forbidden: HugePages require cpu or memory") in \
        job_problems(job_for(definition, {"x": 1.0})), "what the API server would refuse"
    check_study(spec, definition, Settings(), runs_jobs=True)
    assert job_problems(job_for(definition, {"x": 1.0}, defaults=Settings().cluster_defaults())) == [], \
        "the service's default cpu and memory go beside it"
    check_study(spec, definition, bare, runs_jobs=False)


@pytest.mark.parametrize(("folder", "rendered"), [(".", None), ("./", None), ("/app/runs", "/app/runs")])
def test_a_jobs_container_runs_in_an_absolute_folder_of_its_image_or_the_images_own(folder: str, rendered: str | None):
    """A container runtime runs no container in a relative folder (the OCI runtime spec's ``cwd``
    "MUST be an absolute path"): ``.``, where a study's trials run locally, is the image's own
    working directory on a cluster, and an absolute folder is taken as it is."""
    definition = k8s_definition()
    definition["trialTemplate"]["workingDir"] = folder
    container = job_for(definition, {"x": 0.0, "tag": "a"})["spec"]["template"]["spec"]["containers"][0]
    assert container.get("workingDir") == rendered


def test_a_relative_working_folder_is_refused_where_trials_run_as_jobs_and_kept_where_they_run_here():
    """``workingDir: examples`` names a folder of the study's machine: for trials run as Jobs it
    would be a relative folder of the container, which the runtime refuses, every trial's pod
    failing to start, so a service running Jobs refuses the study naming the field."""
    from functions.pools import check_study
    from functions.settings import Settings

    definition = study_definition(trialTemplate={**study_definition()["trialTemplate"], "image": "python:3.12",
                                                 "workingDir": "examples"})
    spec = parse_study(definition)
    with pytest.raises(InvalidStudy) as refused:
        check_study(spec, definition, Settings(), runs_jobs=True)
    [problem] = refused.value.problems
    assert problem.path == "trialTemplate.workingDir" and problem.message == (
        "expected an absolute folder of the image for trials run on Kubernetes (a container runs in no relative "
        "one), or '.' for the image's own working directory; got 'examples'")
    with pytest.raises(NotRenderable, match="trialTemplate.workingDir"):
        job_for(definition, {"x": 1.0})
    check_study(spec, definition, Settings(), runs_jobs=False)


def test_a_katib_trials_pods_carry_katibs_labels_each_that_a_label_value_can_hold():
    from dataclasses import replace

    from functions.core.workload_labels import labels

    spec = parse_study(study_definition(name="plain"))
    launch = trial_launch(StudyRecord(spec, study_definition(name="plain"), "/somewhere", "uid"),
                          TrialRecord("plain", 7, {"x": 1.0}))
    assert not any(key.startswith("katib.kubeflow.org/") for key in labels(launch))
    assert {k: v for k, v in labels(replace(launch, katib_experiment="mnist")).items() if k.startswith("katib")} == {
        "katib.kubeflow.org/experiment": "mnist", "katib.kubeflow.org/trial": "mnist-7"}
    long = "e" * 62
    assert {k for k in labels(replace(launch, katib_experiment=long)) if k.startswith("katib")} == {
        "katib.kubeflow.org/experiment"}, "the Trial's name would be 64 characters"


def test_a_relative_working_folder_of_a_trial_specs_container_is_refused_where_trials_run_as_jobs():
    """A trialSpec container's ``workingDir: src`` (an init container's too) is a folder of the
    study's machine where trials run here, and a relative ``cwd`` the container runtime refuses
    on a cluster, where the API server takes it and every trial's pod fails to start: a service
    running Jobs refuses the study naming each field; an absolute one, none, or one a
    placeholder begins (known per trial) passes."""
    from functions.pools import check_study
    from functions.settings import Settings

    definition = katib_style()
    pod = definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod["containers"][0]["workingDir"] = "/app"
    pod["containers"][1]["workingDir"] = "src"
    pod["initContainers"] = [{"name": "fetch", "image": "busybox", "command": ["true"], "workingDir": "."},
                             {"name": "unpack", "image": "busybox", "command": ["true"],
                              "workingDir": "${trialParameters.tag}"}]
    spec = parse_study(definition)
    with pytest.raises(InvalidStudy) as refused:
        check_study(spec, definition, Settings(), runs_jobs=True)
    found = {p.path: p.message for p in refused.value.problems}
    where = "trialTemplate.trialSpec.spec.template.spec"
    assert found == {
        f"{where}.containers[1].workingDir": (
            "expected an absolute folder of the image for trials run on Kubernetes (a container runs in no relative "
            "one), or none for the image's own working directory; got 'src'"),
        f"{where}.initContainers[0].workingDir": (
            "expected an absolute folder of the image for trials run on Kubernetes (a container runs in no relative "
            "one), or none for the image's own working directory; got '.'")}
    alone = copy.deepcopy(definition)  # a local trial runs the primary container alone: its pod holds no other
    alone_pod = alone["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    del alone_pod["initContainers"], alone_pod["containers"][0]
    check_study(parse_study(alone), alone, Settings(), runs_jobs=False)
    pod["containers"][1]["workingDir"], pod["initContainers"][0]["workingDir"] = "/app/src", ""
    check_study(parse_study(definition), definition, Settings(), runs_jobs=True)


@pytest.mark.parametrize("windows", [{"os": {"name": "windows"}}, {"nodeSelector": {"kubernetes.io/os": "windows"}}],
                         ids=["os.name", "nodeSelector"])
def test_a_windows_trial_pods_folder_of_its_drive_is_absolute(windows: dict):
    """A Windows container's absolute folder names its drive (``C:\\app``): the runtime starts
    it there, so a service running Jobs takes it, and refuses a relative one as on Linux."""
    from functions.pools import check_study
    from functions.settings import Settings

    definition = katib_style()
    pod = definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod.update(windows)
    pod["containers"][0]["workingDir"], pod["containers"][1]["workingDir"] = "C:\\app", "D:/data"
    pod["initContainers"] = [{"name": "fetch", "image": "busybox", "command": ["true"], "workingDir": "\\tools"}]
    check_study(parse_study(definition), definition, Settings(), runs_jobs=True)
    pod["containers"][1]["workingDir"] = "data"
    with pytest.raises(InvalidStudy) as refused:
        check_study(parse_study(definition), definition, Settings(), runs_jobs=True)
    assert [p.path for p in refused.value.problems] == ["trialTemplate.trialSpec.spec.template.spec.containers[1].workingDir"]
    del pod["initContainers"]
    pod.pop("os", None), pod.pop("nodeSelector", None)
    pod["containers"][1]["workingDir"] = "/app"
    with pytest.raises(InvalidStudy, match="got 'C:"):
        check_study(parse_study(definition), definition, Settings(), runs_jobs=True)


def test_the_sink_binding_label_marks_the_jobs_katuna_makes_and_nothing_else():
    """``KATUNA_TRIAL_SINK_BINDING`` labels each Job katuna makes, its own or a ``trialSpec``'s,
    on the Job only (a SinkBinding binds Jobs, not pods); another kind of workload gets none."""
    bound = Cluster(sink_binding="trial-progress")
    pytorch = study_definition(name="replicas")
    pod = {"spec": {"containers": [{"name": "pytorch", "image": "python:3.12", "command": ["train", "${trialParameters.x}"]}]}}
    pytorch["trialTemplate"] = {"primaryContainerName": "pytorch", "trialSpec": {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
            "Master": {"replicas": 1, "template": pod}}}}}
    for definition in (k8s_definition(), katib_style()):
        job = job_for(definition, {"x": 1.5, "tag": "a"}, defaults=bound)
        assert job["metadata"]["labels"][SINK_BINDING_LABEL] == "trial-progress"
        assert SINK_BINDING_LABEL not in job["spec"]["template"]["metadata"]["labels"]
        assert SINK_BINDING_LABEL not in job_for(definition, {"x": 1.5, "tag": "a"})["metadata"]["labels"]
    workload = job_for(pytorch, {"x": 1.5}, defaults=bound)
    assert workload["kind"] == "PyTorchJob" and SINK_BINDING_LABEL not in workload["metadata"]["labels"]


def test_katuna_render_takes_a_boolean_list_value_as_its_trial_receives_it(tmp_path: Path):
    """A list parameter of booleans reaches the trial as ``true``/``false``: ``--params`` takes
    that text (and Python's ``False``, as a CSV Python wrote holds it), and a refusal lists the
    values as the trial would receive them."""
    definition = k8s_definition()
    definition["parameters"].append({"name": "flag", "type": "categorical", "values": [True, False]})
    definition["trialTemplate"]["command"] += ["--flag", "${trialParameters.flag}"]
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(definition))
    for given in ("false", "False"):
        rendered = here("render", str(study), "--params", "x=1", "--params", f"tag={HOSTILE[4]}", "--params", f"flag={given}")
        command = yaml.safe_load(rendered.stdout)["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command[-2:] == ["--flag", "false"], given
    refused = here("render", str(study), "--params", "x=1", "--params", f"tag={HOSTILE[4]}", "--params", "flag=no", check=False)
    assert refused.returncode == 2
    assert "--params flag: expected one of true, false, got 'no'" in refused.stderr
