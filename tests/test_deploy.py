"""The deployment as the manifests, the image and the deploy lock describe it.

Knative's webhook refuses a Service using a pod field behind a feature flag that is off
(knative/serving pkg/apis/serving/fieldmask.go and k8s_validation.go); ``GATED`` lists those
fields, so a test can hold the Service to the flags ``knative/knative-serving/`` ships.
The rules are those of every release katuna supports (docs/knative.md: Serving 1.15 or newer):
what a newer release takes but 1.15 refuses (:data:`NEWER_FLAGS`, a ``privileged`` field, a
probe's ``terminationGracePeriodSeconds``) is refused.
:func:`serving_webhook_problems` adds what the webhook refuses whatever the flags say: the
environment variables, ports, mount paths and container name Serving reserves for itself, and
(:mod:`knative_emulator.admission`) its rules for ports, probes, volumes and the template's annotations,
and (:mod:`knative_emulator.pod_masks`) the field masks of volumes, mounts, env and resources.
"""

from __future__ import annotations

import copy
import importlib
import posixpath
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import yaml
from doc_blocks import block
from knative_emulator.admission import pod_problems, service_problems, template_problems
from knative_emulator.pod_masks import mask_problems
from kube_versions import validate_strictly

from functions import reporter
from functions.adapters.web.worker import Worker
from functions.settings import Settings

ROOT = Path(__file__).parent.parent
KNATIVE = ROOT / "knative"
FEATURES = KNATIVE / "knative-serving" / "config-features.yaml"


def documents(name: str) -> list[dict]:
    return [doc for doc in yaml.load_all((KNATIVE / name).read_text(), Loader=yaml.CSafeLoader) if doc]


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
    "kubernetes.podspec-securitycontext": lambda spec: bool(spec.get("securityContext")),
    "kubernetes.podspec-persistent-volume-claim": lambda spec: bool(_volumes(spec, "persistentVolumeClaim")),
    "kubernetes.podspec-persistent-volume-write": lambda spec: any(
        not v["persistentVolumeClaim"].get("readOnly") for v in _volumes(spec, "persistentVolumeClaim")),
    **{f"kubernetes.podspec-volumes-{kind.lower()}": (lambda k: lambda spec: bool(_volumes(spec, k)))(kind)
       for kind in ("emptyDir", "hostPath", "csi", "ephemeral", "image")},
    "kubernetes.podspec-volumes-mount-propagation": lambda spec: any(
        "mountPropagation" in mount for c in _containers(spec) for mount in c.get("volumeMounts", [])),
    "kubernetes.podspec-fieldref": lambda spec: any(
        {"fieldRef", "resourceFieldRef"} & set(env.get("valueFrom", {})) for c in _containers(spec)
        for env in c.get("env", [])),
    "kubernetes.containerspec-addcapabilities": lambda spec: any(
        c.get("securityContext", {}).get("capabilities", {}).get("add") for c in _containers(spec)),
}
"""Knative Serving's feature flag for each pod field it gates: whether a pod spec uses it."""

_GATED_FIELDS = frozenset({"affinity", "topologySpreadConstraints", "hostAliases", "nodeSelector", "runtimeClassName",
                           "tolerations", "shareProcessNamespace", "priorityClassName", "schedulerName", "dnsPolicy",
                           "dnsConfig", "hostIPC", "hostPID", "hostNetwork", "initContainers", "securityContext"})
"""The pod fields :data:`GATED` lets through with their flags."""

POD_FIELDS = frozenset({"serviceAccountName", "containers", "volumes", "imagePullSecrets", "enableServiceLinks",
                        "automountServiceAccountToken", "containerConcurrency", "timeoutSeconds",
                        "responseStartTimeoutSeconds", "idleTimeoutSeconds"})
"""A revision's fields Serving takes whatever the flags say: ``PodSpecMask``'s (fieldmask.go;
``automountServiceAccountToken`` only false) and the RevisionSpec's own. A gated field of
:data:`GATED` needs its flag; any other pod field (``terminationGracePeriodSeconds``,
``restartPolicy``, ``hostname``, ``os``, ...) is refused."""

CONTAINER_FIELDS = frozenset({"name", "args", "command", "env", "workingDir", "envFrom", "image", "imagePullPolicy",
                              "livenessProbe", "ports", "readinessProbe", "resources", "securityContext",
                              "startupProbe", "terminationMessagePath", "terminationMessagePolicy", "volumeMounts"})
"""A container's fields Serving takes (``ContainerMask``): ``lifecycle``, ``stdin``, ``tty``,
``volumeDevices``, ``restartPolicy`` and the rest are refused."""

CONTAINER_SECURITY = frozenset({"capabilities", "readOnlyRootFilesystem", "runAsUser", "runAsGroup", "runAsNonRoot",
                                "allowPrivilegeEscalation", "seccompProfile"})
"""A container securityContext's fields Serving takes (``SecurityContextMask``):
``seLinuxOptions``, ``windowsOptions``, ``procMount`` and ``appArmorProfile`` are refused, and
so is ``privileged``, which Serving takes (false only) from 1.17 on, and 1.15 not at all."""

POD_SECURITY = frozenset({"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups", "seccompProfile"})
"""A pod securityContext's fields Serving takes with ``kubernetes.podspec-securitycontext``
(``PodSecurityContextMask``); any other (``sysctls``, ``fsGroupChangePolicy``,
``seLinuxOptions``, ``appArmorProfile``, ...) whatever the flags say."""


OLDEST_SERVING = "1.15"
"""The oldest Knative Serving katuna supports (docs/knative.md, Prerequisites)."""

NEWER_FLAGS = {
    **dict.fromkeys(("kubernetes.podspec-hostipc", "kubernetes.podspec-hostpid", "kubernetes.podspec-hostnetwork"),
                    "1.16"),
    "kubernetes.podspec-volumes-hostpath": "1.17", "kubernetes.podspec-volumes-csi": "1.18",
    "kubernetes.podspec-volumes-mount-propagation": "1.18", "kubernetes.podspec-volumes-image": "1.19",
    "kubernetes.podspec-volumes-ephemeral": "1.23"}
"""The gating flags :data:`OLDEST_SERVING` does not have, with the release that brought each
(config/features.go): there its field masks drop the field (fieldmask.go ``PodSpecMask``,
``VolumeSourceMask``, ``VolumeMountMask``) and the webhook refuses it whatever the flags say."""

DEFAULT_ON = frozenset({"kubernetes.podspec-volumes-emptydir"})
"""The gating flags Serving enables when its ConfigMap does not set them (config/features.go)."""

RESERVED_ENV = frozenset({"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"})
"""Serving's ``reservedEnvVars`` (k8s_validation.go): set by Knative in the serving container;
an init or sidecar container may set ``PORT`` (``reservedSidecarEnvVars``)."""

RESERVED_PORTS = frozenset({8012, 8013, 8022, 9090, 9091, 8008})
"""Serving's ``reservedPorts``: queue-proxy's HTTP and HTTP/2 backend ports, its admin port, its
two metrics ports (networking/constants.go) and the profiling port (knative/pkg
observability/runtime ``ProfilingDefaultPort``)."""

RESERVED_PATHS = frozenset({"/", "/dev", "/dev/log"})
"""Serving's ``reservedPaths``, compared after Go's ``path.Clean``."""

RESERVED_CONTAINER_NAMES = frozenset({"queue-proxy"})

WRITABLE_VOLUMES = ("emptyDir", "persistentVolumeClaim", "ephemeral")
"""The volume kinds an init container may mount without ``readOnly`` (validateVolumeMounts);
Serving's defaulting makes a container's mount of any other kind read-only (``applyDefault``)."""


ENABLED_ONLY = frozenset({
    "kubernetes.podspec-init-containers", "kubernetes.podspec-persistent-volume-claim",
    "kubernetes.podspec-persistent-volume-write", "kubernetes.podspec-volumes-mount-propagation",
    "kubernetes.containerspec-addcapabilities",
    *(f"kubernetes.podspec-volumes-{kind}" for kind in ("emptydir", "hostpath", "csi", "ephemeral", "image"))})
"""Flags whose fields Serving checks against ``Enabled`` itself (validateVolume,
validateInitContainers, validateVolumeMounts, CapabilitiesMask); the field masks of the other
flags let ``Allowed`` through too."""


def flag_on(flags: Mapping[str, str], flag: str) -> bool:
    """Whether Serving lets a gated field through: ``Enabled``, in any case, or ``Allowed`` where
    the flag's field mask decides (not :data:`ENABLED_ONLY`'s). A value that is none of
    Enabled, Allowed and Disabled leaves the flag at its default (config/features.go ``asFlag``)."""
    value = (flags.get(flag) or "").lower()
    if value not in ("enabled", "allowed", "disabled"):
        return flag in DEFAULT_ON
    return value == "enabled" or value == "allowed" and flag not in ENABLED_ONLY


def _masked(spec: dict) -> list[str]:
    """The fields of the pod ``spec`` Serving's field masks refuse whatever the flags say."""
    problems = [f"{field} is not allowed" for field in sorted(set(spec) - POD_FIELDS - _GATED_FIELDS)]
    if spec.get("automountServiceAccountToken") is True:
        problems.append("automountServiceAccountToken is not allowed (only false)")
    problems += [f"securityContext.{field} is never allowed"
                 for field in sorted(set(spec.get("securityContext") or {}) - POD_SECURITY)]
    for kind in ("containers", "initContainers"):
        for index, container in enumerate(spec.get(kind, [])):
            context = container.get("securityContext") or {}
            problems += [f"{kind}[{index}].{field} is not allowed" for field in sorted(set(container) - CONTAINER_FIELDS)]
            problems += [f"{kind}[{index}].securityContext.{field} is not allowed"
                         for field in sorted(set(context) - CONTAINER_SECURITY)]
    return problems


def _seccomp_by_secure_defaults(spec: dict, flags: Mapping[str, str]) -> bool:
    """Serving's PodSecurityContextMask keeps a pod-level ``seccompProfile`` (its ``type`` alone,
    RuntimeDefault or Unconfined) without ``kubernetes.podspec-securitycontext`` only while
    ``secure-pod-defaults`` is Enabled; its default is Disabled. AllowRootBounded keeps it from
    Serving 1.20 on, but :data:`OLDEST_SERVING` knows no such value and leaves the default."""
    context = spec.get("securityContext", {})
    profile = context.get("seccompProfile", {})
    return (flags.get("secure-pod-defaults", "disabled").lower() == "enabled"
            and set(context) == {"seccompProfile"} and set(profile) == {"type"}
            and profile["type"] in ("RuntimeDefault", "Unconfined"))


def flags_needed(spec: dict, flags: Mapping[str, str] | None = None) -> set[str]:
    """The gating flags the pod spec needs on, under Serving's other ``flags`` (its defaults if none)."""
    needed = {flag for flag, used in GATED.items() if used(spec)}
    if _seccomp_by_secure_defaults(spec, flags or {}):
        needed.discard("kubernetes.podspec-securitycontext")
    return needed


def _clean(mount_path: str) -> str:
    """Go's ``path.Clean`` (unlike :func:`posixpath.normpath`, it keeps no leading ``//``)."""
    cleaned = posixpath.normpath(mount_path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("/") else cleaned


def serving_webhook_problems(spec: dict, flags: Mapping[str, str]) -> list[str]:
    """What Serving's webhook refuses in a Service's pod ``spec`` under the feature ``flags`` (the
    ``config-features`` data): a gated field whose flag is off, a field Serving's masks never
    take (fieldmask.go; :func:`knative_emulator.pod_masks.mask_problems` for volumes, mounts, env
    and resources), and the names, ports and paths Serving reserves (pkg/apis/serving/k8s_validation.go)."""
    needed = flags_needed(spec, flags)
    problems = [f"{flag} is off" for flag in sorted(needed - NEWER_FLAGS.keys()) if not flag_on(flags, flag)]
    problems += [f"{flag}: Knative Serving {OLDEST_SERVING} has no such flag and refuses the field it gates (the flag "
                 f"came in {NEWER_FLAGS[flag]})" for flag in sorted(needed & NEWER_FLAGS.keys())]
    problems += _masked(spec) + mask_problems(spec)
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    containers = spec.get("containers", [])
    for kind in ("containers", "initContainers"):
        for index, container in enumerate(spec.get(kind, [])):
            at = f"{kind}[{index}]"
            serving = kind == "containers" and (len(containers) == 1 or bool(container.get("ports")))
            if container.get("name") in RESERVED_CONTAINER_NAMES:
                problems.append(f"{at}.name: {container['name']!r} is a reserved container name")
            reserved = RESERVED_ENV if serving else RESERVED_ENV - {"PORT"}
            problems += [f"{at}.env: {env['name']!r} is a reserved environment variable"
                         for env in container.get("env", []) if env["name"] in reserved]
            ports = container.get("ports", [])[:1] if kind == "containers" else container.get("ports", [])
            problems += [f"{at}.ports: {port['containerPort']} is a reserved port"
                         for port in ports if port["containerPort"] in RESERVED_PORTS]
            for mount in container.get("volumeMounts", []):
                if _clean(mount["mountPath"]) in RESERVED_PATHS:
                    problems.append(f"{at}.volumeMounts: mountPath {_clean(mount['mountPath'])!r} is a reserved path")
                volume = volumes.get(mount["name"], {})
                if kind == "initContainers" and not mount.get("readOnly") and not any(
                        kind_ in volume for kind_ in WRITABLE_VOLUMES):
                    problems.append(f"{at}.volumeMounts: {mount['name']!r} should be readOnly for this type of volume")
    return problems + pod_problems(spec)


def test_every_flag_gated_field_the_service_uses_is_enabled_by_the_shipped_flags():
    shipped = yaml.safe_load(FEATURES.read_text())["data"]
    needed = flags_needed(pod_spec(), shipped)
    assert {flag: shipped.get(flag) for flag in needed} == dict.fromkeys(needed, "enabled")
    assert serving_webhook_problems(pod_spec(), shipped) == []


def bound_by_the_sink_binding(spec: dict) -> dict:
    """The pod spec as Eventing's SinkBinding leaves it (sinkbinding_lifecycle.go Do): K_SINK,
    K_CA_CERTS and K_CE_OVERRIDES in every container, the namespace's trust-bundle ConfigMaps
    projected read-only at /knative-custom-certs (eventingtls AddTrustBundleVolumes), and with
    OIDC the token's projected Secret mounted read-only at /oidc."""
    spec = copy.deepcopy(spec)
    spec["volumes"].append({"name": "oidc-token", "projected": {"sources": [{"secret": {"name": "katuna-sink-oidc-token"}}]}})
    spec["volumes"].append({"name": "kne-bundle-volume",
                            "projected": {"sources": [{"configMap": {"name": "kn-combined-kne-bundle"}}]}})
    for container in _containers(spec):
        container.setdefault("env", []).extend([{"name": "K_SINK", "value": "http://broker-ingress/katuna/katuna"},
                                                {"name": "K_CA_CERTS", "value": "-----BEGIN CERTIFICATE-----"},
                                                {"name": "K_CE_OVERRIDES", "value": ""}])
        container.setdefault("volumeMounts", []).extend([
            {"name": "oidc-token", "mountPath": "/oidc", "readOnly": True},
            {"name": "kne-bundle-volume", "mountPath": reporter.TRUST_BUNDLES, "readOnly": True}])
    return spec


def test_the_service_with_every_component_and_its_sink_binding_passes_the_serving_webhook():
    from test_deploy_kustomize import COMPONENTS, render

    shipped = yaml.safe_load(FEATURES.read_text())["data"]
    [service] = [doc for doc in render(KNATIVE, components=COMPONENTS)
                 if doc["kind"] == "Service" and doc["apiVersion"].startswith("serving.knative.dev")]
    spec = service["spec"]["template"]["spec"]
    assert serving_webhook_problems(spec, shipped) == []
    assert serving_webhook_problems(bound_by_the_sink_binding(spec), shipped) == []


def test_the_flag_check_sees_the_fields_that_need_a_flag():
    assert {"kubernetes.podspec-securitycontext", "kubernetes.podspec-affinity",
            "kubernetes.podspec-persistent-volume-claim", "kubernetes.podspec-persistent-volume-write"} \
        <= flags_needed(pod_spec())
    read_only = {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "c", "readOnly": True}}]}
    assert flags_needed(read_only) == {"kubernetes.podspec-persistent-volume-claim"}


MINIMAL = {"containers": [{"name": "katuna", "image": "katuna:1", "ports": [{"containerPort": 8080}]}]}


@pytest.mark.parametrize(("secure_pod_defaults", "profile", "refused"), [
    (None, {"type": "RuntimeDefault"}, True),
    ("disabled", {"type": "RuntimeDefault"}, True),
    ("enabled", {"type": "RuntimeDefault"}, False),
    ("Enabled", {"type": "Unconfined"}, False),
    ("AllowRootBounded", {"type": "RuntimeDefault"}, True),
    ("enabled", {"type": "Localhost", "localhostProfile": "p.json"}, True),
])
def test_a_pod_seccomp_profile_alone_needs_the_security_context_flag_unless_secure_pod_defaults_keep_it(
        secure_pod_defaults, profile, refused):
    spec = {**MINIMAL, "securityContext": {"seccompProfile": profile}}
    flags = {} if secure_pod_defaults is None else {"secure-pod-defaults": secure_pod_defaults}
    assert serving_webhook_problems(spec, flags) == (["kubernetes.podspec-securitycontext is off"] if refused else [])
    assert serving_webhook_problems(spec, {**flags, "kubernetes.podspec-securitycontext": "enabled"}) == []


def _changed(change: Callable[[dict], None]) -> dict:
    spec = copy.deepcopy(pod_spec())
    change(spec)
    return spec


def _add(field: str, value: dict, container: int = 0) -> Callable[[dict], None]:
    return lambda spec: spec["containers"][container].setdefault(field, []).append(value)


def _port(port: int) -> Callable[[dict], None]:
    return lambda spec: spec["containers"][0].update(ports=[{"containerPort": port}])


def _volume_at(volume: dict, path: str) -> Callable[[dict], None]:
    def change(spec: dict) -> None:
        spec["volumes"].append(volume)
        spec["containers"][0]["volumeMounts"].append({"name": volume["name"], "mountPath": path, "readOnly": True})
    return change


def _emptydir_at(path: str) -> Callable[[dict], None]:
    def change(spec: dict) -> None:
        spec["volumes"].append({"name": "scratch", "emptyDir": {}})
        spec["containers"][0]["volumeMounts"].append({"name": "scratch", "mountPath": path})
    return change


@pytest.mark.parametrize(("change", "problem"), [
    *((_add("env", {"name": name, "value": "1"}), f"containers[0].env: {name!r} is a reserved environment variable")
      for name in ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")),
    *((_port(port), f"containers[0].ports: {port} is a reserved port")
      for port in (8012, 8013, 8022, 9090, 9091, 8008)),
    *((_emptydir_at(path), f"containers[0].volumeMounts: mountPath {cleaned!r} is a reserved path")
      for path, cleaned in (("/", "/"), ("/dev", "/dev"), ("/dev/log", "/dev/log"), ("/dev/", "/dev"),
                            ("//dev/./log", "/dev/log"), ("/tmp/..", "/"))),
    (lambda spec: spec["containers"][0].update(name="queue-proxy"),
     "containers[0].name: 'queue-proxy' is a reserved container name"),
    (lambda spec: spec["securityContext"].update(sysctls=[{"name": "net.core.somaxconn", "value": "1024"}]),
     "securityContext.sysctls is never allowed"),
    (lambda spec: spec["securityContext"].update(appArmorProfile={"type": "RuntimeDefault"}),
     "securityContext.appArmorProfile is never allowed"),
    (lambda spec: spec.update(terminationGracePeriodSeconds=30), "terminationGracePeriodSeconds is not allowed"),
    (lambda spec: spec.update(automountServiceAccountToken=True),
     "automountServiceAccountToken is not allowed (only false)"),
    (lambda spec: spec["containers"][0].update(lifecycle={"preStop": {"sleep": {"seconds": 5}}}),
     "containers[0].lifecycle is not allowed"),
    (lambda spec: spec["containers"][0]["securityContext"].update(appArmorProfile={"type": "RuntimeDefault"}),
     "containers[0].securityContext.appArmorProfile is not allowed"),
    *((lambda spec, value=value: spec["containers"][0]["securityContext"].update(privileged=value),
       "containers[0].securityContext.privileged is not allowed") for value in (True, False)),
    *((_volume_at({"name": "shared", kind: source}, "/shared"),
       [f"volumes[2].{kind} is not allowed", "volumes[2]: expected exactly one volume kind Serving takes, got []"])
      for kind, source in (("nfs", {"server": "nfs.example.org", "path": "/exports"}),
                           ("downwardAPI", {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}),
                           ("gitRepo", {"repository": "https://example.org/repo.git"}))),
    (_volume_at({"name": "twice", "emptyDir": {}, "secret": {"secretName": "s"}}, "/twice"),
     "volumes[2]: expected exactly one volume kind Serving takes, got ['emptyDir', 'secret']"),
    (_volume_at({"name": "Scratch", "emptyDir": {}}, "/scratch"), "volumes[2].name: 'Scratch' is no DNS-1123 label"),
    (_volume_at({"name": "scratch", "emptyDir": {"medium": "HugePages"}}, "/scratch"),
     "volumes[2].emptyDir.medium: expected Memory or none, got 'HugePages'"),
    (_volume_at({"name": "bundle", "projected": {"sources": [{"clusterTrustBundle": {"signerName": "x/y",
                                                                                      "path": "ca.pem"}}]}}, "/bundle"),
     ["volumes[2].projected.sources[0].clusterTrustBundle is not allowed",
      "volumes[2].projected.sources[0]: expected exactly one projection Serving takes, got []"]),
    (lambda spec: spec["containers"][0]["volumeMounts"][0].update(subPathExpr="$(POD_NAME)"),
     "containers[0].volumeMounts[0].subPathExpr is not allowed"),
    (lambda spec: spec["containers"][0]["volumeMounts"][1].update(readOnly=True, recursiveReadOnly="Enabled"),
     "containers[0].volumeMounts[1].recursiveReadOnly is not allowed"),
    (_add("env", {"name": "SEED", "valueFrom": {"fileKeyRef": {"volumeName": "tmp", "path": "seed.env",
                                                               "key": "SEED"}}}),
     "containers[0].env[2].valueFrom.fileKeyRef is not allowed"),
    (_add("envFrom", {"prefix": "X_"}), "containers[0].envFrom[1]: expected exactly one of configMapRef, secretRef"),
    (lambda spec: spec["containers"][0]["resources"].update(claims=[{"name": "gpu"}]),
     "containers[0].resources.claims is not allowed"),
    (_add("env", {"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}),
     "kubernetes.podspec-fieldref is off"),
])
def test_the_webhook_check_refuses_what_servings_webhook_refuses(change, problem):
    shipped = yaml.safe_load(FEATURES.read_text())["data"]
    assert serving_webhook_problems(_changed(change), shipped) == (problem if isinstance(problem, list) else [problem])


def test_a_containers_mount_of_a_kind_serving_does_not_write_is_made_read_only_and_an_init_containers_refused():
    """Serving's defaulting marks a container's mount of a secret read-only before the webhook
    checks it; an init container's mount is not defaulted, and is refused."""
    shipped = {**yaml.safe_load(FEATURES.read_text())["data"], "kubernetes.podspec-init-containers": "enabled"}
    secret = {"name": "s", "secret": {"secretName": "s"}}
    mount = {"name": "s", "mountPath": "/etc/s"}
    assert serving_webhook_problems(_changed(lambda spec: (
        spec["volumes"].append(secret), spec["containers"][0]["volumeMounts"].append(mount))), shipped) == []
    init = {"name": "init", "image": "init:1", "volumeMounts": [mount]}
    assert serving_webhook_problems(_changed(lambda spec: (spec["volumes"].append(secret), spec.update(
        initContainers=[init]))), shipped) == ["initContainers[0].volumeMounts: 's' should be readOnly for this type of volume"]


def _annotated(**annotations: str) -> dict:
    [service] = documents("service.yaml")
    template = copy.deepcopy(service["spec"]["template"])
    template["metadata"]["annotations"].update(annotations)
    return template


SCALE = "autoscaling.knative.dev/"
HPA_CLASS = "hpa.autoscaling.knative.dev"


def test_the_services_template_with_every_component_passes_servings_annotation_port_probe_and_volume_rules():
    from test_deploy_kustomize import COMPONENTS, render

    [service] = [doc for doc in render(KNATIVE, components=COMPONENTS)
                 if doc["kind"] == "Service" and doc["apiVersion"].startswith("serving.knative.dev")]
    assert template_problems(service["spec"]["template"]) == []
    assert template_problems(_annotated()) == []
    assert service_problems(service) == []


@pytest.mark.parametrize(("annotations", "problem"), [
    ({f"{SCALE}min-scale": "1"}, f"metadata.annotations.{SCALE}min-scale: autoscaling annotations must be put under "
                                 "spec.template.metadata.annotations to work"),
    ({"serving.knative.dev/rollout-duration": "90"}, "metadata.annotations.serving.knative.dev/rollout-duration: "
     "expected a Go duration of whole seconds, not negative, such as 300s, got '90'"),
    ({"serving.knative.dev/rollout-duration": "-5m"}, "metadata.annotations.serving.knative.dev/rollout-duration: "
     "expected a Go duration of whole seconds, not negative, such as 300s, got '-5m'"),
])
def test_the_service_check_refuses_the_services_own_annotations_servings_webhook_refuses(annotations, problem):
    [service] = documents("service.yaml")
    service["metadata"].setdefault("annotations", {}).update(annotations)
    assert service_problems(service) == [problem]
    service["metadata"]["annotations"] = {"serving.knative.dev/rollout-duration": "5m"}
    assert service_problems(service) == []


@pytest.mark.parametrize(("annotations", "problem"), [
    ({f"{SCALE}min-scale": "2"}, "max-scale=1 is less than min-scale=2"),
    ({f"{SCALE}max-scale": "-1"}, f"{SCALE}max-scale: expected an integer from 0 to 2147483647, got '-1'"),
    ({f"{SCALE}min-scale": "one"}, f"{SCALE}min-scale: expected an integer from 0 to 2147483647, got 'one'"),
    ({f"{SCALE}initial-scale": "0"}, f"{SCALE}initial-scale: expected an integer above 0 (0 only with "
                                     "allow-zero-initial-scale), got '0'"),
    ({f"{SCALE}class": "xpa.autoscaling.knative.dev"},
     f"{SCALE}class: expected kpa.autoscaling.knative.dev or hpa.autoscaling.knative.dev, "
     "got 'xpa.autoscaling.knative.dev'"),
    ({f"{SCALE}metric": "cpu"}, f"{SCALE}metric: 'cpu' is no metric of the class kpa.autoscaling.knative.dev"),
    ({f"{SCALE}minScale": "1"}, f"{SCALE}minScale: not checked here"),
    ({f"{SCALE}target-burst-capacity": "-2"}, f"{SCALE}target-burst-capacity: expected a number not below 0, "
                                              "or -1 for no limit, got '-2'"),
    ({f"{SCALE}target-burst-capacity": "lots"}, f"{SCALE}target-burst-capacity: expected a number not below 0, "
                                                "or -1 for no limit, got 'lots'"),
    ({"serving.knative.dev/progress-deadline": "900"}, "serving.knative.dev/progress-deadline: expected a Go "
     "duration of whole seconds, not negative, such as 900s, got '900'"),
    ({"serving.knative.dev/progress-deadline": "1.5s"}, "serving.knative.dev/progress-deadline: expected a Go "
     "duration of whole seconds, not negative, such as 900s, got '1.5s'"),
])
def test_the_template_check_refuses_the_annotations_servings_webhook_refuses(annotations, problem):
    assert template_problems(_annotated(**annotations)) == [problem]


@pytest.mark.parametrize("annotations", [
    {f"{SCALE}max-scale": "0", f"{SCALE}min-scale": "3"},
    {f"{SCALE}class": HPA_CLASS, f"{SCALE}metric": "cpu"},
    {f"{SCALE}class": "custom.example.com", f"{SCALE}metric": "queue-depth"},
    {f"{SCALE}initial-scale": "2"},
    {"serving.knative.dev/progress-deadline": "15m"},
    {f"{SCALE}target-burst-capacity": "0"},
    {f"{SCALE}target-burst-capacity": "211.5"},
])
def test_the_template_check_takes_what_servings_webhook_takes(annotations):
    assert template_problems(_annotated(**annotations)) == []


def _probe(probe: str, value: dict) -> Callable[[dict], None]:
    return lambda spec: spec["containers"][0].update({probe: value})


@pytest.mark.parametrize(("change", "problem"), [
    (lambda spec: spec["containers"][0]["ports"][0].update(name="http"),
     "ports: Port name http is not allowed (empty, or one of: 'h2c', 'http1')"),
    (lambda spec: spec["containers"][0]["ports"][0].update(protocol="UDP"), "ports.protocol: expected TCP, got 'UDP'"),
    (lambda spec: spec["containers"][0]["ports"][0].update(hostPort=8080), "ports: hostPort is not allowed"),
    (_probe("readinessProbe", {"httpGet": {"path": "/readyz"}, "timeoutSeconds": 3}),
     "containers[0].readinessProbe.timeoutSeconds is disallowed when periodSeconds is zero"),
    (_probe("readinessProbe", {"httpGet": {"path": "/readyz", "port": "web"}, "periodSeconds": 5}),
     "containers[0].readinessProbe.httpGet.port: 'web': Probe port must match container port"),
    (_probe("livenessProbe", {"periodSeconds": 5}),
     "containers[0].livenessProbe: expected exactly one of httpGet, tcpSocket, exec, grpc, got []"),
    (_probe("startupProbe", {"httpGet": {"path": "/healthz", "port": 8080}, "tcpSocket": {"port": 8080}}),
     "containers[0].startupProbe: expected exactly one of httpGet, tcpSocket, exec, grpc, got ['httpGet', 'tcpSocket']"),
    (lambda spec: spec["volumes"].append({"name": "spare", "emptyDir": {}}),
     "volumes: volume with name 'spare' not mounted"),
    (lambda spec: spec["containers"][0]["volumeMounts"].append({"name": "data", "mountPath": "/data/"}),
     "containers[0].volumeMounts: mountPath '/data' must be unique"),
])
def test_the_webhook_check_refuses_servings_port_probe_and_volume_rules(change, problem):
    shipped = yaml.safe_load(FEATURES.read_text())["data"]
    assert serving_webhook_problems(_changed(change), shipped) == [problem]


def test_allowed_lets_through_only_the_fields_a_field_mask_gates_and_an_unknown_value_is_the_default():
    """``Allowed`` passes the field masks (affinity, fieldRef, ...) but not the checks that want
    ``Enabled`` (volumes, init containers, added capabilities); ``true`` is no flag value."""
    shipped = yaml.safe_load(FEATURES.read_text())["data"]
    allowed = {**shipped, "kubernetes.podspec-persistent-volume-claim": "Allowed",
               "kubernetes.podspec-affinity": "Allowed"}
    assert serving_webhook_problems(pod_spec(), allowed) == ["kubernetes.podspec-persistent-volume-claim is off"]
    assert serving_webhook_problems(pod_spec(), {**shipped, "kubernetes.podspec-volumes-emptydir": "true"}) == []
    assert serving_webhook_problems(pod_spec(), {**shipped, "kubernetes.podspec-volumes-emptydir": "disabled"}) == [
        "kubernetes.podspec-volumes-emptydir is off"]
    assert serving_webhook_problems(_changed(lambda spec: spec.update(automountServiceAccountToken=False)),
                                    shipped) == []


def _newer(flag: str, change: Callable[[dict], None]) -> tuple[Callable[[dict], None], str]:
    return change, (f"{flag}: Knative Serving 1.15 has no such flag and refuses the field it gates (the flag came "
                    f"in {NEWER_FLAGS[flag]})")


@pytest.mark.parametrize(("change", "problem"), [
    _newer("kubernetes.podspec-volumes-hostpath", _volume_at({"name": "host", "hostPath": {"path": "/var/log"}}, "/h")),
    _newer("kubernetes.podspec-volumes-csi", _volume_at({"name": "c", "csi": {"driver": "secrets-store.csi.k8s.io"}},
                                                        "/c")),
    _newer("kubernetes.podspec-volumes-image", _volume_at({"name": "i", "image": {"reference": "data:1"}}, "/i")),
    _newer("kubernetes.podspec-volumes-ephemeral", _volume_at({"name": "e", "ephemeral": {"volumeClaimTemplate": {
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}, "/e")),
    _newer("kubernetes.podspec-volumes-mount-propagation",
           lambda spec: spec["containers"][0]["volumeMounts"][0].update(mountPropagation="HostToContainer")),
    *(_newer(f"kubernetes.podspec-{field.lower()}", lambda spec, field=field: spec.update({field: True}))
      for field in ("hostIPC", "hostPID", "hostNetwork")),
    (_probe("livenessProbe", {"httpGet": {"path": "/healthz"}, "terminationGracePeriodSeconds": 5}),
     "containers[0].livenessProbe.terminationGracePeriodSeconds is not allowed"),
])
def test_what_a_later_serving_takes_but_the_oldest_supported_refuses_is_refused_whatever_the_flags(change, problem):
    """Serving 1.15 (docs/knative.md: the oldest supported) has none of these flags, and its masks
    drop the fields they gate: a Service using one is refused there, even with the flag on."""
    flags = {**yaml.safe_load(FEATURES.read_text())["data"], **dict.fromkeys(NEWER_FLAGS, "enabled")}
    assert serving_webhook_problems(_changed(change), flags) == [problem]


def test_the_oldest_serving_the_check_holds_to_is_the_one_the_pages_name():
    text = " ".join((ROOT / "docs" / "knative.md").read_text().split())
    assert f"a cluster with Knative Serving and Eventing {OLDEST_SERVING} or newer" in text


def test_the_reserved_names_are_the_serving_containers_own():
    """An env var PORT in a sidecar, a port of one's own, a mount path below /dev: all taken, as
    Serving takes them; K_REVISION in a sidecar and a reserved port in an init container are not;
    one port in all, on the serving container."""
    shipped = yaml.safe_load(FEATURES.read_text())["data"]
    sidecar = {"name": "sidecar", "image": "side:1", "env": [{"name": "PORT", "value": "9000"}]}
    assert serving_webhook_problems(_changed(lambda spec: spec["containers"].append(sidecar)), shipped) == []
    assert serving_webhook_problems(_changed(lambda spec: spec["containers"].append(
        {**sidecar, "env": [{"name": "K_REVISION", "value": "r"}]})), shipped) == \
        ["containers[1].env: 'K_REVISION' is a reserved environment variable"]
    init = {"initContainers": [{**sidecar, "ports": [{"containerPort": 8012}]}]}
    assert serving_webhook_problems(_changed(lambda spec: spec.update(init)), {**shipped, **dict.fromkeys(
        ["kubernetes.podspec-init-containers"], "enabled")}) == ["initContainers[0].ports: 8012 is a reserved port"]
    assert serving_webhook_problems(_changed(_port(8081)), shipped) == []
    assert serving_webhook_problems(_changed(_add("ports", {"containerPort": 8081})), shipped) == \
        ["ports: more than one container port is set"]
    assert serving_webhook_problems(_changed(lambda spec: spec["containers"].append(
        {"name": "second", "image": "side:1", "ports": [{"containerPort": 9000}]})), shipped) == \
        ["ports: more than one container port is set"]
    assert serving_webhook_problems(_changed(_emptydir_at("/dev/shm")), shipped) == []


def test_the_shipped_flags_are_a_valid_configmap():
    validate_strictly([str(FEATURES)])


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


def test_prometheus_pods_labelled_as_the_docs_say_may_scrape_the_service_pod():
    """The PodMonitor scrapes the pod directly, past the activator: the shipped NetworkPolicy
    refuses Prometheus's pods unless they wear the label the metrics section names."""
    section = (ROOT / "docs/knative.md").read_text().split("## Operations: metrics")[1].split("\n## ")[0]
    key, value = re.search(r'label `([\w./-]+): "(\w+)"`', section).groups()
    prometheus = {"app.kubernetes.io/name": "prometheus", "prometheus": "k8s"}
    assert not admitted("monitoring", prometheus)
    assert admitted("monitoring", {**prometheus, key: value})


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
    module, _, name = command[command.index("--worker-class") + 1].rpartition(".")
    assert getattr(importlib.import_module(module), name) is Worker, "katuna's bounded worker, as katuna serve runs"
    help_text = subprocess.run([str(Path(sys.executable).with_name("gunicorn")), "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert all(option in help_text for option in command if option.startswith("--"))


def test_the_image_listens_on_the_port_knative_gives_it_and_runs_as_the_pods_user():
    """Knative sets ``PORT`` to the container's port and queue-proxy forwards to it; the image's
    gunicorn binds that port (and the startup probe, which Knative passes on as it is, names it),
    and runs as the uid and gid the pod's securityContext and fsGroup give the database volume."""
    dockerfile = (KNATIVE / "Dockerfile").read_text()
    command = yaml.safe_load(re.search(r"^CMD (\[.*?\])$", dockerfile, re.MULTILINE | re.DOTALL).group(1)
                             .replace("\\\n", ""))
    spec = pod_spec()
    [container] = spec["containers"]
    [port] = container["ports"]
    assert command[command.index("--bind") + 1] == f"0.0.0.0:{port['containerPort']}"
    assert container["startupProbe"]["httpGet"]["port"] == port["containerPort"]
    user, group = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE).groups()
    pod = spec["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"], container["securityContext"]["runAsUser"]) == \
        (int(user), int(group), int(group), int(user))


def test_the_build_backend_the_project_requires_reads_its_license():
    """The image installs katuna from pyproject.toml with setuptools: a ``project.license`` given as
    an SPDX string (PEP 639) is refused as invalid configuration by every setuptools before 77.0.0,
    so the build-system requirement admits none of them."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [backend] = [Requirement(text) for text in pyproject["build-system"]["requires"]]
    assert backend.name == "setuptools" and pyproject["build-system"]["build-backend"] == "setuptools.build_meta"
    if isinstance(pyproject["project"].get("license"), str):
        assert not [version for version in ("69.0.0", "75.8.0", "76.1.0") if Version(version) in backend.specifier]
        assert Version("77.0.0") in backend.specifier


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
