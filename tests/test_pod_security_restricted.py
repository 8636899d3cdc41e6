"""Trials in namespaces that enforce Kubernetes' *restricted* Pod Security Standard: with
``KATUNA_TRIAL_POD_SECURITY=restricted`` the Job katuna renders for a study of an image sets
``runAsNonRoot: true`` (and the study's ``kubernetes.runAsUser``, for an image whose own user is
root or a name), and a study whose ``trialSpec`` falls short of restricted is refused at
submission on every path (``POST /studies``, ``katuna render``), naming the field, with nothing
stored; the user's own ``securityContext`` is never rewritten. A parameter that makes a pod
fall short fails that trial's launch."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import study_definition, unlined
from http_helpers import Service
from test_cli import here

from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy, RefusedWorkload
from functions.core.formats import load_definition
from functions.core.job import render_job
from functions.core.launch import TrialLaunch
from functions.core.trial_identity import study_problems
from functions.settings import Settings

POD = "trialTemplate.trialSpec.spec.template.spec"
RESTRICTED = Cluster(pod_security="restricted")
MAIN = {"name": "main", "image": "python:3.12", "command": ["train", "${trialParameters.x}"]}
HARDENED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _job(main: dict | None = None, **pod: object) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{**MAIN, **(main or {})}], **pod}}}}


def _study(name: str, trial_spec: dict | None = None, kubernetes: dict | None = None, **template: object) -> dict:
    native = study_definition(name=name, maxTrials=1, parallelism=1)
    if trial_spec is not None:
        native["trialTemplate"] = {"trialSpec": trial_spec, **template}
    else:
        native["trialTemplate"].update(image="python:3.12", **template)
    if kubernetes is not None:
        native["kubernetes"] = kubernetes
    return native


def _found(definition: dict, service: Cluster = RESTRICTED) -> dict[str, str]:
    spec, _ = load_definition(definition)
    return {p.path: p.message for p in study_problems(spec, service)}


def test_the_service_takes_the_restricted_level():
    assert Settings.from_env({"KATUNA_TRIAL_POD_SECURITY": "restricted"}).cluster_defaults().pod_security == \
        "restricted"


def test_a_katib_template_without_a_security_context_is_refused_naming_what_each_container_lacks():
    """A Katib example's Job sets no ``securityContext``: its pod gets katuna's (``runAsNonRoot``,
    the runtime's seccomp profile), and its containers must say the rest themselves."""
    found = _found(_study("katib", _job()))
    assert sorted(found) == [f"{POD}.containers[0].securityContext.allowPrivilegeEscalation",
                             f"{POD}.containers[0].securityContext.capabilities.drop"]
    assert found[f"{POD}.containers[0].securityContext.allowPrivilegeEscalation"].startswith("expected false, got nothing")
    assert "KATUNA_TRIAL_POD_SECURITY=restricted" in found[f"{POD}.containers[0].securityContext.capabilities.drop"]
    assert _found(_study("katib", _job()), Cluster()) == {}, "the baseline asks for none of it"
    assert _found(_study("katib", _job({"securityContext": HARDENED}))) == {}


def test_the_users_own_pod_context_is_kept_and_must_meet_restricted_itself():
    own = _job({"securityContext": HARDENED}, securityContext={"fsGroup": 100})
    found = _found(_study("own", own))
    assert sorted(found) == [f"{POD}.securityContext.runAsNonRoot", f"{POD}.securityContext.seccompProfile"]
    assert found[f"{POD}.securityContext.runAsNonRoot"].startswith(
        "expected true (here, or in every container's securityContext), got nothing")
    root = _job({"securityContext": {**HARDENED, "runAsUser": 0}},
                securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}})
    assert list(_found(_study("root", root))) == [f"{POD}.containers[0].securityContext.runAsUser"]
    launch = TrialLaunch("own", "u1", 0, 1, "own-0", [], {}, ".", None, trial_spec=own, primary_container="main",
                         params={"x": 1.0})
    assert render_job(launch, Cluster(pod_security="privileged"))["spec"]["template"]["spec"]["securityContext"] == \
        {"fsGroup": 100}, "katuna rewrites none of it"


def test_a_volume_or_capability_restricted_forbids_is_named_once():
    spec = _job({"securityContext": {**HARDENED, "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}},
                volumes=[{"name": "h", "hostPath": {"path": "/data"}}, {"name": "n", "nfs": {"server": "s", "path": "/"}}])
    found = _found(_study("volumes", spec))
    assert sorted(found) == [f"{POD}.containers[0].securityContext.capabilities.add", f"{POD}.volumes[0]",
                             f"{POD}.volumes[1]"]
    assert found[f"{POD}.volumes[1]"].startswith("expected a volume of a kind restricted allows (configMap, csi, "
                                                 "downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, "
                                                 "projected, secret), got nfs")


def test_kinds_whose_pods_katuna_cannot_see_are_left_to_the_namespace():
    """An Argo Workflow's pods get containers from its controller, which katuna never sees: only
    the baseline's forbidden fields are refused in it."""
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "container": MAIN}]}}
    assert _found(_study("argo", workflow)) == {}
    pytorch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {"Master": {
        "replicas": 1, "template": {"spec": {"containers": [{**MAIN, "securityContext": HARDENED}]}}}}}}
    assert list(_found(_study("torch", pytorch))) == [
        "trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Master.template.spec.securityContext.runAsNonRoot",
        "trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Master.template.spec.securityContext.seccompProfile"], \
        "katuna lays its pod context on a Job's pod only"


def test_a_parameter_that_lets_a_container_escalate_fails_the_launch():
    spec = _job({"securityContext": {**HARDENED, "allowPrivilegeEscalation": "${trialParameters.esc}"}})
    definition = _study("esc", spec, typedFields=[["spec", "template", "spec", "containers", 0, "securityContext",
                                                    "allowPrivilegeEscalation"]])
    definition["parameters"].append({"name": "esc", "type": "categorical", "values": ["false", "true"]})
    study, _ = load_definition(definition)
    assert study_problems(study, RESTRICTED) == [], "the value is known only at launch"
    launch = TrialLaunch("esc", "u1", 0, 1, "esc-0", [], {}, ".", None, trial_spec=study.trial_template.trial_spec,
                         typed_fields=frozenset(study.trial_template.typed_fields), primary_container="main",
                         params={"x": 1.0, "esc": "false"})
    assert render_job(launch, RESTRICTED)["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    with pytest.raises(RefusedWorkload) as refused:
        render_job(replace(launch, params={"x": 1.0, "esc": "true"}), RESTRICTED)
    assert [p.path for p in refused.value.problems] == [f"{POD}.containers[0].securityContext.allowPrivilegeEscalation"]


def test_run_as_user_is_a_non_root_id_for_katunas_own_job_only():
    def refused(kubernetes: dict, trial_spec: dict | None = None) -> list[str]:
        with pytest.raises(InvalidStudy) as error:
            load_definition(_study("user", trial_spec, kubernetes))
        return [str(p) for p in error.value.problems]

    assert refused({"runAsUser": 0}) == [
        "kubernetes.runAsUser: expected a user id from 1 to 2147483647, not root (0), got 0: it stands for the "
        "image's own user where that is root or a name"]
    assert refused({"runAsUser": 2**31})[0].startswith("kubernetes.runAsUser: expected a user id from 1 to 2147483647")
    assert refused({"runAsUser": "1000"})[0].startswith("kubernetes.runAsUser: expected an integer")
    assert refused({"runAsUser": 1000}, _job()) == [
        "kubernetes.runAsUser: expected none with a trialSpec: give runAsUser in the securityContext of its pod "
        "template, which katuna leaves as written"]
    study, _ = load_definition(_study("user", kubernetes={"runAsUser": 10001}))
    assert study.kubernetes.to_dict()["runAsUser"] == 10001


def _cli(tmp_path: Path, definition: dict, **env: str) -> subprocess.CompletedProcess:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(definition))
    return here("render", str(path), cwd=tmp_path, check=False, env={"KATUNA_TRIAL_POD_SECURITY": "restricted", **env})


def test_katuna_render_at_restricted_runs_an_image_as_non_root_and_refuses_a_template_short_of_it(tmp_path: Path):
    done = _cli(tmp_path, _study("image", kubernetes={"runAsUser": 10001}))
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["spec"]["template"]["spec"]["securityContext"] == {
        "seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": True, "runAsUser": 10001}
    short = _cli(tmp_path, _study("short", _job()))
    assert short.returncode == 2, short.stdout + short.stderr
    assert f"{POD}.containers[0].securityContext.allowPrivilegeEscalation: expected false" in unlined(short.stderr)
    baseline = _cli(tmp_path, _study("image"), KATUNA_TRIAL_POD_SECURITY="baseline")
    assert yaml.safe_load(baseline.stdout)["spec"]["template"]["spec"]["securityContext"] == {
        "seccompProfile": {"type": "RuntimeDefault"}}, "the image's own user, as before"


@pytest.mark.slow
def test_posting_a_study_short_of_restricted_is_refused_and_stores_nothing(tmp_path: Path):
    service = Service(tmp_path, workers=1, KATUNA_TRIAL_POD_SECURITY="restricted")
    try:
        status, body = service.json("POST", "/studies", body=json.dumps(_study("short", _job())),
                                    headers={"Content-Type": "application/json"})
        assert status == 422, body
        assert sorted(p["path"] for p in body["problems"]) == [
            f"{POD}.containers[0].securityContext.allowPrivilegeEscalation",
            f"{POD}.containers[0].securityContext.capabilities.drop"]
        assert service.json("GET", "/studies/short")[0] == 404
    finally:
        service.close()
