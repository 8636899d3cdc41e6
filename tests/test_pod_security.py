"""Trial pods never get the node: a study whose ``trialSpec`` (of any kind, an Argo ``podSpecPatch``
in it included) asks for what Kubernetes' baseline Pod Security Standard forbids (a privileged
container, the node's files, network, process or IPC namespace, host ports, added capabilities,
unsafe sysctls, unconfined profiles, probe hosts) is refused at submission, naming the field, on every path
(``POST /studies`` of a real ``katuna serve``, ``katuna run``, ``katuna render``), and nothing is
stored; a parameter that makes a pod ask for one fails the launch; an operator can lift the check
with ``KATUNA_TRIAL_POD_SECURITY=privileged``."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import study_definition, unlined
from http_helpers import Service, run_on_cluster
from knative_emulator import KnativeCluster
from knative_emulator.broker import MAX_TTL, attributes_of
from kube_stub import KubeStub
from test_cli import here

from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy, RefusedWorkload
from functions.core.formats import load_definition
from functions.core.job import render_job
from functions.core.launch import TrialLaunch
from functions.core.trial_identity import check_launch, study_problems
from functions.settings import Settings

POD = "trialTemplate.trialSpec.spec.template.spec"
MAIN = {"name": "main", "image": "python:3.12", "command": ["t", "${trialParameters.x}"]}


def _job(main: dict | None = None, **pod: object) -> dict:
    """A trialSpec Job whose pod spec has ``pod`` besides its container ``main`` (with ``main``'s
    fields), its own copy: a test that changes its command changes no other test's."""
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{**copy.deepcopy(MAIN), **(main or {})}], **pod}}}}


def _study(name: str, trial_spec: dict, **template: object) -> dict:
    native = study_definition(name=name, maxTrials=1, parallelism=1)
    native["trialTemplate"] = {"trialSpec": trial_spec, **template}
    return native


BASELINE = Cluster()


def _found(definition: dict, service: Cluster = BASELINE) -> list[str]:
    spec, _ = load_definition(definition)
    return [p.path for p in study_problems(spec, service)]


ROOT_ON_THE_NODE = _job(main={"securityContext": {"privileged": True}}, hostPID=True,
                        volumes=[{"name": "host", "hostPath": {"path": "/"}}])

BEYOND = {
    "privileged": (_job(main={"securityContext": {"privileged": True}}), "containers[0].securityContext.privileged"),
    "hostNetwork": (_job(hostNetwork=True), "hostNetwork"),
    "hostPID": (_job(hostPID=True), "hostPID"),
    "hostIPC": (_job(hostIPC=True), "hostIPC"),
    "hostPath": (_job(volumes=[{"name": "h", "hostPath": {"path": "/var/run"}}]), "volumes[0].hostPath"),
    "hostPort": (_job(main={"ports": [{"containerPort": 80, "hostPort": 80}]}), "containers[0].ports[0].hostPort"),
    "capability": (_job(main={"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}),
                   "containers[0].securityContext.capabilities.add"),
    "capability spelt otherwise": (_job(main={"securityContext": {"capabilities": {"add": ["CHOWN", "cap_chown"]}}}),
                                   "containers[0].securityContext.capabilities.add"),
    "sysctl": (_job(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}),
               "securityContext.sysctls"),
    "procMount": (_job(main={"securityContext": {"procMount": "Unmasked"}}), "containers[0].securityContext.procMount"),
    "procMount with the node's users": (_job(main={"securityContext": {"procMount": "Unmasked"}}, hostUsers=True),
                                        "containers[0].securityContext.procMount"),
    "seccomp": (_job(securityContext={"seccompProfile": {"type": "Unconfined"}}), "securityContext.seccompProfile"),
    "appArmor": (_job(main={"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
                 "containers[0].securityContext.appArmorProfile"),
    "seLinux": (_job(securityContext={"seLinuxOptions": {"type": "spc_t"}}), "securityContext.seLinuxOptions"),
    "probe host": (_job(main={"livenessProbe": {"httpGet": {"host": "127.0.0.1", "port": 80}}}),
                   "containers[0].livenessProbe.httpGet.host"),
    "lifecycle host": (_job(main={"lifecycle": {"preStop": {"tcpSocket": {"host": "10.0.0.1", "port": 80}}}}),
                       "containers[0].lifecycle.preStop.tcpSocket.host"),
    "hostProcess": (_job(securityContext={"windowsOptions": {"hostProcess": True}}),
                    "securityContext.windowsOptions.hostProcess"),
    "initContainer": (_job(initContainers=[{"name": "i", "image": "p", "securityContext": {"privileged": True}}]),
                      "initContainers[0].securityContext.privileged"),
    "ephemeralContainer": (_job(ephemeralContainers=[{"name": "e", "image": "p",
                                                      "securityContext": {"privileged": True}}]),
                           "ephemeralContainers[0].securityContext.privileged"),
}


@pytest.mark.parametrize("trial_spec,field", BEYOND.values(), ids=BEYOND.keys())
def test_each_field_beyond_the_baseline_is_refused_at_its_path(trial_spec: dict, field: str):
    assert _found(_study("beyond", trial_spec)) == [f"{POD}.{field}"]
    assert _found(_study("beyond", trial_spec), Cluster(pod_security="privileged")) == []


WITHIN = {
    "katuna's own hardening": _job(main={"securityContext": {"privileged": False, "allowPrivilegeEscalation": False,
                                                             "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}},
                                   hostNetwork=False, securityContext={"seccompProfile": {"type": "RuntimeDefault"}}),
    "safe sysctl": _job(securityContext={"sysctls": [{"name": "net.ipv4.tcp_keepalive_time", "value": "60"}]}),
    "sysctls Kubernetes 1.32 and 1.37 allow": _job(securityContext={"sysctls": [{"name": n, "value": "1"} for n in (
        "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat")]}),
    "procMount in a user namespace": _job(main={"securityContext": {"procMount": "Unmasked"}}, hostUsers=False),
    "volumes of the pod's own": _job(volumes=[{"name": "scratch", "emptyDir": {"medium": "Memory"}},
                                              {"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}}]),
    "a container port": _job(main={"ports": [{"containerPort": 8080}]}),
}


@pytest.mark.parametrize("trial_spec", WITHIN.values(), ids=WITHIN.keys())
def test_what_the_baseline_allows_is_taken(trial_spec: dict):
    assert _found(_study("within", trial_spec)) == []


def test_an_apparmor_annotation_other_than_runtime_default_or_localhost_is_refused_at_its_key():
    trial_spec = _job()
    trial_spec["spec"]["template"]["metadata"] = {"annotations": {
        "container.apparmor.security.beta.kubernetes.io/main": "unconfined",
        "container.apparmor.security.beta.kubernetes.io/side": "localhost/trials"}}
    spec, _ = load_definition(_study("apparmor", trial_spec))
    [problem] = study_problems(spec, BASELINE)
    assert problem.path == ('trialTemplate.trialSpec.spec.template.metadata.annotations'
                            '["container.apparmor.security.beta.kubernetes.io/main"]')
    assert problem.message.startswith("expected runtime/default or localhost/<profile>, got 'unconfined'")


def test_a_probe_host_is_refused_saying_baseline_expects_none():
    spec, _ = load_definition(_study("host", BEYOND["probe host"][0]))
    [problem] = study_problems(spec, BASELINE)
    assert problem.message.startswith("expected no host (the probe or handler then reaches the pod's own IP")
    assert "got '127.0.0.1'" in problem.message


def _patched(workflow_patch: str, *template_patch: str) -> dict:
    """An Argo Workflow whose ``spec`` has ``workflow_patch``, its template ``main`` any ``template_patch``."""
    main = {"name": "main", "container": MAIN, **({"podSpecPatch": template_patch[0]} if template_patch else {})}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "spec": {"entrypoint": "main", "podSpecPatch": workflow_patch, "templates": [main]}}


def test_procmount_in_a_user_namespace_is_taken_unless_a_patch_may_give_the_pod_the_nodes_users():
    """Argo merges the Workflow's patch, then the template's, into each pod: the template's
    ``hostUsers: true`` undoes the Workflow's ``hostUsers: false``, and baseline refuses the pod."""
    unmasked = '{"hostUsers": false, "containers": [{"name": "main", "securityContext": {"procMount": "Unmasked"}}]}'
    assert _found(_study("userns", _patched(unmasked))) == []
    assert _found(_study("userns", _patched(unmasked, '{"HostUsers": true}'))) == [
        "trialTemplate.trialSpec.spec.podSpecPatch.containers[0].securityContext.procMount"]


KINDS = {
    "PyTorchJob": ({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
        "Master": {"template": {"spec": {"containers": [MAIN]}}},
        "Worker": {"template": {"spec": {"hostNetwork": True, "containers": [MAIN]}}}}}},
                   "spec.pytorchReplicaSpecs.Worker.template.spec.hostNetwork"),
    "Workflow": ({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "container": {**MAIN, "securityContext": {"privileged": True}}}]}},
                 "spec.templates[0].container.securityContext.privileged"),
    "podSpecPatch": ({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "container": MAIN, "podSpecPatch": '{"HostPID": true}'}]}},
                     "spec.templates[0].podSpecPatch.HostPID"),
    "PipelineRun": ({"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {"pipelineSpec": {"tasks": [
        {"name": "train", "taskSpec": {"steps": [{**MAIN, "securityContext": {"privileged": True}}],
                                       "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}}]}}},
                    "spec.pipelineSpec.tasks[0].taskSpec.steps[0].securityContext.privileged"),
}


@pytest.mark.parametrize("trial_spec,field", KINDS.values(), ids=KINDS.keys())
def test_every_workload_kind_is_held_to_the_baseline(trial_spec: dict, field: str):
    assert f"trialTemplate.trialSpec.{field}" in _found(_study("kinds", trial_spec))


@pytest.mark.slow
def test_posting_a_study_whose_trials_would_get_the_node_is_refused_and_stores_nothing(tmp_path: Path):
    service = Service(tmp_path, workers=1)
    try:
        status, body = service.json("POST", "/studies", body=json.dumps(_study("root", ROOT_ON_THE_NODE)),
                                    headers={"Content-Type": "application/json"})
        assert status == 422, body
        assert sorted(p["path"] for p in body["problems"]) == [
            f"{POD}.containers[0].securityContext.privileged", f"{POD}.hostPID", f"{POD}.volumes[0].hostPath"]
        assert "KATUNA_TRIAL_POD_SECURITY=privileged" in body["problems"][0]["message"]
        assert service.json("GET", "/studies/root")[0] == 404
    finally:
        service.close()


def _cli(tmp_path: Path, definition: dict, *command: str, **env: str) -> subprocess.CompletedProcess:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(definition))
    return here(command[0], str(path), *command[1:], cwd=tmp_path, check=False, env=env)


def test_katuna_run_and_render_refuse_a_study_whose_trials_would_get_the_node(tmp_path: Path):
    for command in (["run", "--db", str(tmp_path / "k.db")], ["render"]):
        done = _cli(tmp_path, _study("cli-root", ROOT_ON_THE_NODE), *command)
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"{POD}.volumes[0].hostPath: expected no hostPath volume" in unlined(done.stderr)
    lifted = _cli(tmp_path, _study("cli-root", ROOT_ON_THE_NODE), "render", KATUNA_TRIAL_POD_SECURITY="privileged")
    assert lifted.returncode == 0, lifted.stderr
    assert yaml.safe_load(lifted.stdout)["spec"]["template"]["spec"]["hostPID"] is True


def _chosen(name: str) -> dict:
    """A study whose trial pods share the node's network when a categorical parameter says so."""
    native = _study(name, _job(hostNetwork="${trialParameters.net}"), typedFields=[["spec", "template", "spec",
                                                                                  "hostNetwork"]])
    native["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"].append(
        "${trialParameters.net}")
    native["parameters"].append({"name": "net", "type": "categorical", "values": ["false", "true"]})
    return native


def test_a_parameter_that_gives_a_trial_the_node_fails_the_launch():
    spec, _ = load_definition(_chosen("chosen"))
    assert study_problems(spec, Cluster()) == [], "the value is known only at launch"
    launch = TrialLaunch("chosen", "u1", 0, 1, "chosen-0", [], {}, ".", None, trial_spec=spec.trial_template.trial_spec,
                         typed_fields=frozenset(spec.trial_template.typed_fields), primary_container="main",
                         params={"x": 1.0, "net": "false"})
    assert render_job(launch)["spec"]["template"]["spec"]["hostNetwork"] is False
    with pytest.raises(InvalidStudy) as refused:
        render_job(replace(launch, params={"x": 1.0, "net": "true"}))
    assert [p.path for p in refused.value.problems] == [f"{POD}.hostNetwork"]
    assert render_job(replace(launch, params={"x": 1.0, "net": "true"}),
                      Cluster(pod_security="privileged"))["spec"]["template"]["spec"]["hostNetwork"] is True


def test_only_a_refusal_the_parameters_made_is_the_trials_alone():
    """A literal account that the operator reserved after the study was stored would refuse every
    trial: that refusal is the study's (it fails), not one trial's after another."""
    template = _job(serviceAccountName="${trialParameters.sa}")
    reserved = Cluster(reserved_accounts=("katuna",))
    with pytest.raises(RefusedWorkload):
        check_launch(reserved, _job(serviceAccountName="katuna"), template)
    literal = _job(serviceAccountName="katuna")
    with pytest.raises(InvalidStudy) as refused:
        check_launch(reserved, literal, literal)
    assert not isinstance(refused.value, RefusedWorkload)
    assert [p.path for p in refused.value.problems] == [f"{POD}.serviceAccountName"]


NAMESPACE = "chosen"
KUBE_NAMESPACES = (NAMESPACE,)


@pytest.mark.slow
def test_in_the_service_a_trial_whose_parameters_give_it_the_node_fails_and_the_study_goes_on(kube: KubeStub,
                                                                                             tmp_path: Path):
    """The refusal is the trial's, not the study's: no workload is made for it, the sampler
    is told it failed, and the next trial runs."""
    definition = _chosen("chosen-net")
    definition.update(maxTrials=3, maxFailedTrials=3, algorithm={"name": "grid"})
    definition["parameters"] = [{"name": "net", "type": "categorical", "values": ["false", "true"]}]
    pod = definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    pod["containers"][0].update(image="python:3.12", command=[sys.executable, "-c", "print('loss=0.5')",
                                                              "${trialParameters.net}"])
    study, trials = run_on_cluster(kube.url, tmp_path, NAMESPACE, definition)
    by_net = {t["params"]["net"]: t for t in trials}
    assert (by_net["false"]["state"], by_net["true"]["state"]) == ("COMPLETE", "FAIL"), trials
    assert by_net["true"]["reason"].startswith(
        f"katuna refused the workload its parameters make: {POD}.hostNetwork: "), by_net["true"]
    assert set(kube.created_jobs) == {f"chosen-net-{by_net['false']['number']}"}, "no Job for the refused trial"
    assert study["status"] == "completed" and "failed" not in (study.get("reason") or ""), study


@pytest.mark.slow
def test_behind_knative_a_study_whose_launches_are_all_refused_runs_on_past_the_brokers_reply_limit(tmp_path: Path):
    """Each refused launch is followed by the next trial's ``trial.suggested``: were it the reply,
    300 refusals in one slot would be one chain of replies, which the broker refuses at its 255th
    (``knativebrokerttl``), dead-lettering the event answered. Sent to ``K_SINK``, each starts
    afresh, and the study runs to its ``maxTrials``."""
    definition = _chosen("all-refused")
    definition.update(maxTrials=MAX_TTL + 45, parallelism=1)
    [net] = [p for p in definition["parameters"] if p["name"] == "net"]
    net["values"] = ["true"]
    kube = KubeStub()
    cluster = KnativeCluster(tmp_path, kube.url, ping_interval=30, time_scale=0.01)
    try:
        status, body = cluster.api("POST", "/studies", definition)
        assert status == 201, body
        study = cluster.wait_for("all-refused", timeout=300)
        assert (study["status"], study["counts"]["failed"]) == ("failed", MAX_TTL + 45), study
        assert study["reason"].startswith(f"max trials reached ({MAX_TTL + 45})"), study["reason"]
        assert not cluster.broker.dead_letters, [attributes_of(e) for e in cluster.broker.dead_letters]
        assert not [n for n in kube.created if n.startswith("all-refused-")], "no workload for a refused trial"
    finally:
        cluster.close()
        kube.close()


def test_the_service_refuses_to_start_with_an_unknown_pod_security_level():
    with pytest.raises(ValueError, match="KATUNA_TRIAL_POD_SECURITY: expected baseline, restricted or privileged, "
                                         "got 'strict'"):
        Settings.from_env({"KATUNA_TRIAL_POD_SECURITY": "strict"})
    assert Settings.from_env({}).cluster_defaults().pod_security == "baseline"
