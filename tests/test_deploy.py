"""The deployment as the manifests, the image and the deploy lock describe it.

Knative's webhook refuses a Service using a pod field behind a feature flag that is off
(knative/serving pkg/apis/serving/fieldmask.go and k8s_validation.go); ``GATED`` lists those
fields, so a test can hold the Service to the flags ``knative/knative-serving/`` ships.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import yaml
from doc_blocks import block

from functions.settings import Settings

ROOT = Path(__file__).parent.parent
KNATIVE = ROOT / "knative"
FEATURES = KNATIVE / "knative-serving" / "config-features.yaml"


def documents(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((KNATIVE / name).read_text()) if doc]


def pod_spec() -> dict:
    [service] = documents("service.yaml")
    return service["spec"]["template"]["spec"]


def template_annotations() -> dict:
    [service] = documents("service.yaml")
    return service["spec"]["template"]["metadata"]["annotations"]


def _containers(spec: dict) -> list[dict]:
    return spec.get("containers", []) + spec.get("initContainers", [])


def _volumes(spec: dict, kind: str) -> list[dict]:
    return [volume for volume in spec.get("volumes", []) if kind in volume]


GATED: dict[str, Callable[[dict], bool]] = {
    **{f"kubernetes.podspec-{name.lower()}": (lambda field: lambda spec: field in spec)(name) for name in (
        "affinity", "topologySpreadConstraints", "hostAliases", "nodeSelector", "runtimeClassName", "tolerations",
        "shareProcessNamespace", "priorityClassName", "schedulerName", "dnsPolicy", "dnsConfig", "hostIPC",
        "hostPID", "hostNetwork")},
    "kubernetes.podspec-init-containers": lambda spec: "initContainers" in spec,
    "kubernetes.podspec-securitycontext": lambda spec: bool(set(spec.get("securityContext", {})) - {"seccompProfile"}),
    "kubernetes.podspec-persistent-volume-claim": lambda spec: bool(_volumes(spec, "persistentVolumeClaim")),
    "kubernetes.podspec-persistent-volume-write": lambda spec: any(
        not v["persistentVolumeClaim"].get("readOnly") for v in _volumes(spec, "persistentVolumeClaim")),
    **{f"kubernetes.podspec-volumes-{kind.lower()}": (lambda k: lambda spec: bool(_volumes(spec, k)))(kind)
       for kind in ("emptyDir", "hostPath", "csi", "ephemeral", "image")},
    "kubernetes.podspec-volumes-mount-propagation": lambda spec: any(
        "mountPropagation" in mount for c in _containers(spec) for mount in c.get("volumeMounts", [])),
    "kubernetes.podspec-fieldref": lambda spec: any(
        "fieldRef" in env.get("valueFrom", {}) for c in _containers(spec) for env in c.get("env", [])),
    "kubernetes.containerspec-addcapabilities": lambda spec: any(
        c.get("securityContext", {}).get("capabilities", {}).get("add") for c in _containers(spec)),
}
"""Knative Serving's feature flag for each pod field it gates: whether a pod spec uses it."""

NEVER_ALLOWED = {"fsGroupChangePolicy", "sysctls", "seLinuxOptions", "windowsOptions"}
"""Pod securityContext fields Knative refuses whatever the flags say."""


def flags_needed(spec: dict) -> set[str]:
    return {flag for flag, used in GATED.items() if used(spec)}


def test_every_flag_gated_field_the_service_uses_is_enabled_by_the_shipped_flags():
    shipped = yaml.safe_load(FEATURES.read_text())["data"]
    needed = flags_needed(pod_spec())
    assert {flag: shipped.get(flag) for flag in needed} == dict.fromkeys(needed, "enabled")
    assert not NEVER_ALLOWED & set(pod_spec()["securityContext"])


def test_the_flag_check_sees_the_fields_that_need_a_flag():
    assert {"kubernetes.podspec-securitycontext", "kubernetes.podspec-affinity",
            "kubernetes.podspec-persistent-volume-claim", "kubernetes.podspec-persistent-volume-write"} \
        <= flags_needed(pod_spec())
    assert flags_needed({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}) == set()
    read_only = {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "c", "readOnly": True}}]}
    assert flags_needed(read_only) == {"kubernetes.podspec-persistent-volume-claim"}


def test_the_shipped_flags_are_a_valid_configmap():
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.33.0", str(FEATURES)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_fresh_volume_is_made_writable_by_the_pods_group_the_images_user_belongs_to():
    spec = pod_spec()
    user = spec["containers"][0]["securityContext"]["runAsUser"]
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"] == user == 10001
    image_user = re.search(r"^USER (\d+):(\d+)$", (KNATIVE / "Dockerfile").read_text(), re.MULTILINE).groups()
    assert image_user == (str(user), str(spec["securityContext"]["runAsGroup"]))


def test_a_rollout_keeps_one_writer_host_for_the_read_write_once_volume():
    """min-scale 1 keeps the store's writer up; max-scale 1 keeps one pod per revision; the new
    revision's pod must land beside any running katuna pod (where the volume is attached). Its
    term must match the labels Knative gives every revision's pods, its own included: the
    scheduler lets the first pod of a group match itself."""
    annotations = template_annotations()
    assert (annotations["autoscaling.knative.dev/min-scale"], annotations["autoscaling.knative.dev/max-scale"]) == ("1", "1")
    [term] = pod_spec()["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    for revision in ("katuna-00001", "katuna-00002"):
        labels = {"serving.knative.dev/service": "katuna", "serving.knative.dev/configuration": "katuna",
                  "serving.knative.dev/revision": revision}
        assert selects(term["labelSelector"], labels)
    assert not selects(term["labelSelector"], {"katuna.dev/study": "s", "app.kubernetes.io/part-of": "katuna"})
    [claim] = documents("storage.yaml")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_tmp_is_a_writable_empty_dir_on_the_read_only_root():
    spec = pod_spec()
    container = spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert {v["name"] for v in _volumes(spec, "emptyDir")} == {mounts["/tmp"]}
    assert not any(mount.get("readOnly") for mount in container["volumeMounts"])


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions In/NotIn/Exists) against labels."""
    operators = {"In": lambda key, values: labels.get(key) in values,
                 "NotIn": lambda key, values: labels.get(key) not in values,
                 "Exists": lambda key, values: key in labels}
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items()) and \
        all(operators[e["operator"]](e["key"], e.get("values", [])) for e in selector.get("matchExpressions", []))


def admitted(namespace: str, labels: dict[str, str]) -> bool:
    """Whether the NetworkPolicy lets a pod in ``namespace`` with ``labels`` reach the katuna pods."""
    [policy] = documents("networkpolicy.yaml")
    namespace_labels = {"kubernetes.io/metadata.name": namespace}
    own_namespace = {"matchLabels": {"kubernetes.io/metadata.name": "katuna"}}
    return any(selects(peer.get("namespaceSelector", own_namespace), namespace_labels)
               and selects(peer.get("podSelector", {}), labels)
               for rule in policy["spec"]["ingress"] for peer in rule["from"])


def test_the_network_policy_admits_knatives_data_plane_the_broker_and_labelled_clients_only():
    [policy] = documents("networkpolicy.yaml")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert selects(policy["spec"]["podSelector"], {"serving.knative.dev/service": "katuna",
                                                   "serving.knative.dev/revision": "katuna-00003"})
    assert not selects(policy["spec"]["podSelector"], {"katuna.dev/study": "digits"})
    assert all(admitted(*caller) for caller in [
        ("knative-serving", {"app": "activator", "role": "activator"}),
        ("knative-serving", {"app": "autoscaler"}),
        ("kourier-system", {"app": "3scale-kourier-gateway"}),
        ("knative-eventing", {"eventing.knative.dev/brokerRole": "filter"}),
        ("knative-eventing", {"eventing.knative.dev/brokerRole": "ingress"}),
        ("knative-eventing", {"messaging.knative.dev/channel": "in-memory-channel", "messaging.knative.dev/role": "dispatcher"}),
        ("research", {"katuna.dev/client": "true"}),
    ])
    assert not any(admitted(*caller) for caller in [
        ("katuna", {"katuna.dev/study": "digits", "katuna.dev/trial": "3"}),
        ("knative-serving", {"app": "controller"}),
        ("knative-eventing", {"app": "mt-broker-controller"}),
        ("default", {"app": "3scale-kourier-gateway"}),
        ("research", {"katuna.dev/client": "false"}),
    ])


def test_k_sink_comes_from_a_sink_binding_on_the_service_naming_the_broker():
    [binding] = documents("sinkbinding.yaml")
    [service] = documents("service.yaml")
    [broker] = documents("broker.yaml")
    subject = binding["spec"]["subject"]
    assert (subject["apiVersion"], subject["kind"], subject["name"]) == (
        service["apiVersion"], service["kind"], service["metadata"]["name"])
    assert binding["spec"]["sink"]["ref"] == {"apiVersion": broker["apiVersion"], "kind": "Broker",
                                              "name": broker["metadata"]["name"]}
    [config] = documents("config.yaml")
    assert not {"K_SINK", "KATUNA_REPORT_URL"} & set(config["data"])


def test_the_report_url_defaults_to_k_sink():
    sink = "http://broker-ingress.knative-eventing.svc.cluster.local/katuna/katuna"
    assert Settings.from_env({"K_SINK": sink}).report_url == sink
    assert Settings.from_env({"K_SINK": sink, "KATUNA_REPORT_URL": "http://elsewhere/"}).report_url == "http://elsewhere/"
    assert Settings.from_env({}).report_url is None


def pins(lock: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / lock).read_text(), re.MULTILINE))


def test_the_deploy_lock_holds_the_service_and_cloud_clients_without_test_or_bench_packages():
    deploy, full = pins("requirements-deploy.lock"), pins("requirements.lock")
    assert not {"pytest", "moto", "playwright", "matplotlib", "hypothesis", "mypy", "ruff",
                "coco-experiment", "optuna-dashboard", "kubernetes-validate"} & set(deploy)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = project["dependencies"] + project["optional-dependencies"]["gke"] + project["optional-dependencies"]["eks"]
    names = {re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-") for requirement in needed}
    assert names <= {name.lower().replace("_", "-") for name in deploy}, "every runtime dependency is pinned"
    assert {name: version for name, version in deploy.items() if full.get(name) != version} == {}


def test_the_image_installs_the_deploy_lock_compiles_byte_code_and_runs_without_a_control_socket():
    dockerfile = (KNATIVE / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:[\w.-]+@sha256:[0-9a-f]{64}$", dockerfile, re.MULTILINE)
    assert "FROM ${BASE_IMAGE}" in dockerfile
    assert "-r requirements-deploy.lock" in dockerfile and "requirements.lock" not in dockerfile
    assert "python -m compileall" in dockerfile and "PYTHONDONTWRITEBYTECODE" not in dockerfile
    command = yaml.safe_load(re.search(r"^CMD (\[.*?\])$", dockerfile, re.MULTILINE | re.DOTALL).group(1)
                             .replace("\\\n", ""))
    assert "--no-control-socket" in command and command[command.index("--worker-tmp-dir") + 1] == "/dev/shm"
    help_text = subprocess.run([str(Path(sys.executable).with_name("gunicorn")), "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert all(option in help_text for option in command if option.startswith("--"))


def test_the_build_context_holds_what_the_image_copies_and_no_virtualenv():
    lines = (KNATIVE / "Dockerfile.dockerignore").read_text().splitlines()
    entries = [line for line in lines if line.strip() and not line.startswith("#")]
    copied = {source for line in (KNATIVE / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")
              for source in line.split()[1:-1]}
    assert entries[0] == "*"
    assert {entry[1:] for entry in entries if entry.startswith("!")} == copied


def test_the_docs_merge_the_shipped_flags_into_knatives_configmap_and_explain_each():
    command = block("docs/knative.md", "Deploy on Knative", "sh")
    assert "kubectl patch configmap config-features -n knative-serving --type merge" in command
    path = re.search(r"--patch-file (\S+)", command).group(1)
    assert (ROOT / path).resolve() == FEATURES.resolve()
    page = (ROOT / "docs" / "knative.md").read_text()
    assert all(f"`{flag}`" in page for flag in yaml.safe_load(FEATURES.read_text())["data"])


def test_the_docs_name_the_base_image_digest_the_dockerfile_pins():
    pinned = re.search(r"^ARG BASE_IMAGE=(\S+)$", (KNATIVE / "Dockerfile").read_text(), re.MULTILINE).group(1)
    assert f"`{pinned}`" in (ROOT / "docs" / "knative.md").read_text()
    assert pinned.split("@")[0] in block("docs/knative.md", "The image", "sh")
