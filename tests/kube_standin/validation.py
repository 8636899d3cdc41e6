"""What the API server does to a Job before storing it: decoding (a malformed quantity cannot
be read: 400; a number is a quantity as a string is), validation of what katuna could send wrong (422, field by field; the pod
template's scheduling fields and resources in :mod:`kube_standin.pod_validation`, its failure and
completion policies in :mod:`kube_standin.job_policies`), and
defaulting; and the label validation every object's metadata gets (``ValidateLabels``)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from kube_standin.field_types import job_undecodable
from kube_standin.job_policies import completion_problems, failure_policy_problems, managed_by_problems
from kube_standin.names import metadata_problems
from kube_standin.objects import DNS_LABEL, DNS_SUBDOMAIN, QUANTITY, quantity
from kube_standin.pod_spec_checks import MAX_INT32, pod_spec_problems
from kube_standin.pod_validation import pod_problems, resource_problems
from kube_standin.selectors import matches, selector_text


def nested_metadata_problems(obj: object, path: str = "") -> list[tuple[str, str]]:
    """Label and annotation problems of every ``metadata`` in a custom resource: its own, which
    the API server refuses (422), and its pod and Job templates', which the kind's admission
    webhook or controller refuses when it makes the pods (the stand-in refuses the object at
    once, so a test sees what a cluster would never run)."""
    if isinstance(obj, list):
        return [p for i, item in enumerate(obj) for p in nested_metadata_problems(item, f"{path}[{i}]")]
    if not isinstance(obj, dict):
        return []
    metadata = obj.get("metadata")
    problems = metadata_problems(metadata, f"{path}.metadata" if path else "metadata")
    for key, value in obj.items():
        if key != "metadata":
            problems += nested_metadata_problems(value, f"{path}.{key}" if path else key)
    return problems

DECODE_QUANTITY = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("SCTP", "TCP", "UDP")
NON_NEGATIVE = ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished")


def undecodable(job: dict) -> str | None:
    """Why the body cannot be decoded as a Job: a field of the wrong type, a resource quantity
    that is no quantity."""
    wrong = job_undecodable(job)
    if wrong is not None:
        return wrong
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    if any(value is not None and not QUANTITY.match(str(value)) for value in pod_quantities(pod)):
        return DECODE_QUANTITY
    return None


def pod_quantities(pod: dict) -> Iterator[object]:
    """Every value of a pod spec that decodes as a ``resource.Quantity``: a JSON string or a
    number alike, since ``Quantity.UnmarshalJSON`` parses the number's text
    (k8s.io/apimachinery/pkg/api/resource/quantity.go): containers' and init containers'
    requests and limits, the pod's own, its ``overhead``, an ``emptyDir``'s ``sizeLimit``."""
    resources = [c.get("resources") or {} for key in ("initContainers", "containers") for c in pod.get(key) or []]
    for requirements in [*resources, pod.get("resources") or {}]:
        for kind in ("requests", "limits"):
            yield from (requirements.get(kind) or {}).values()
    yield from (pod.get("overhead") or {}).values()
    for volume in pod.get("volumes") or []:
        if "sizeLimit" in (volume.get("emptyDir") or {}):
            yield volume["emptyDir"]["sizeLimit"]


def defaulted(job: dict, uid: str) -> dict:
    """The Job as the API server stores it: defaults filled in, and unless ``manualSelector``
    (whose selector and template stay as given: ``generateSelectorIfNeeded``,
    pkg/registry/batch/job/strategy.go) a selector on its uid and the labels that select its
    pods on the template, each where the Job gives none (one it gives is kept, and judged by
    :func:`generated_selector_problems`)."""
    spec = job["spec"]
    backoff = 6 if spec.get("backoffLimitPerIndex") is None else MAX_INT32  # with one per index, none Job-wide
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1  # a work queue's parallelism alone leaves completions unset
    for key, value in (("parallelism", 1), ("backoffLimit", backoff), ("suspend", False),
                       ("completionMode", "NonIndexed"), ("manualSelector", False),
                       ("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") is not None
                        else "TerminatingOrFailed")):
        if spec.get(key) is None:
            spec[key] = value
    job["metadata"]["uid"] = uid
    job["status"] = {}
    if spec["manualSelector"] is True:
        return job
    template = spec["template"].setdefault("metadata", {})
    given = template.get("labels") or {}
    template["labels"] = {**given, **{key: value for key, value in _selecting(job).items() if key not in given}}
    selector = spec.get("selector") or {}
    chosen = selector.get("matchLabels") or {}
    spec["selector"] = {**selector, "matchLabels": {**chosen, CONTROLLER_UID: chosen.get(CONTROLLER_UID, uid)}}
    return job


CONTROLLER_UID = "batch.kubernetes.io/controller-uid"


def _selecting(job: dict) -> dict[str, str]:
    """The labels that select a Job's pods, in the order the API server checks them."""
    uid, name = job["metadata"]["uid"], job["metadata"]["name"]
    return {CONTROLLER_UID: uid, "batch.kubernetes.io/job-name": name, "controller-uid": uid, "job-name": name}


def generated_selector_problems(job: dict) -> list[tuple[str, str]]:
    """What ``validateGeneratedSelector`` refuses in a Job :func:`defaulted` (which keeps labels
    and a selector the Job gives, to be judged here): a template label that selects its pods set
    to another value, or a selector of its own that the generated labels do not meet."""
    spec = job["spec"]
    if spec["manualSelector"] is True:
        return []
    labels = spec["template"]["metadata"]["labels"]
    problems = [(f"spec.template.metadata.labels[{key}]", f"Invalid value: {json.dumps(labels[key])}: must be '{value}'")
                for key, value in _selecting(job).items() if labels[key] != value]
    if not matches({CONTROLLER_UID: job["metadata"]["uid"]}, selector_text(spec["selector"])):
        shown = json.dumps(spec["selector"], separators=(",", ":"), sort_keys=True)
        problems.append(("spec.selector", f"Invalid value: {shown}: `selector` not auto-generated"))
    return problems


def job_problems(job: dict) -> list[tuple[str, str]]:
    """What the API server's Job validation refuses, of what katuna could send wrong."""
    problems = []
    name = job.get("metadata", {}).get("name", "")
    if not DNS_SUBDOMAIN.match(name or ""):
        problems.append(("metadata.name", f"Invalid value: {json.dumps(name)}: a lowercase RFC 1123 subdomain must "
                                          "consist of lower case alphanumeric characters, '-' or '.'"))
    problems += metadata_problems(job.get("metadata"), "metadata")
    template = job.get("spec", {}).get("template") or {}
    problems += metadata_problems(template.get("metadata"), "spec.template")
    problems += _name_label_problems(job)
    pod = template.get("spec") or {}
    problems += _restart_problems(job.get("spec") or {}, pod.get("restartPolicy"))
    problems += _replacement_problems(job.get("spec", {}))
    for field in NON_NEGATIVE:
        value = job.get("spec", {}).get(field)
        if value is not None and value < 0:
            problems.append((f"spec.{field}", f"Invalid value: {value}: must be greater than or equal to 0"))
    if not pod.get("containers"):
        problems.append(("spec.template.spec.containers", "Required value"))
    problems += containers_problems("spec.template.spec", pod)
    problems += pod_problems("spec.template.spec", pod)
    problems += pod_spec_problems("spec.template.spec", pod)
    problems += _selector_problems(job.get("spec") or {})
    problems += failure_policy_problems(job.get("spec") or {}) + completion_problems(job.get("spec") or {})
    problems += managed_by_problems(job.get("spec") or {})
    problems += _indexed_problems(job)
    problems += _volume_problems(pod)
    if job.get("metadata", {}).get("resourceVersion"):
        problems.append(("metadata.resourceVersion", "resourceVersion should not be set on objects to be created"))
    return problems


def _name_label_problems(job: dict) -> list[tuple[str, str]]:
    """A name that no label value could hold (over 63 characters, as a DNS subdomain may be) in
    a Job whose selector is generated: ``generateSelector`` puts it in the pod template's
    ``job-name`` labels before validation, which refuses them there, at ``spec.template.labels``
    (``ValidatePodTemplateSpec``); one the template gives itself is judged as given."""
    spec, name = job.get("spec") or {}, (job.get("metadata") or {}).get("name") or ""
    if spec.get("manualSelector") is True or len(name) <= 63:
        return []
    given = (((spec.get("template") or {}).get("metadata") or {}).get("labels")) or {}
    return [("spec.template.labels", f"Invalid value: {json.dumps(name)}: must be no more than 63 characters")
            for key in JOB_NAME_LABELS if key not in given]


JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
"""The pod template labels the API server sets to a Job's name where the Job gives none."""


def _restart_problems(spec: dict, restart: str | None) -> list[tuple[str, str]]:
    """The pod template's ``restartPolicy`` as ``validateJobSpec`` judges it, after the pod's
    defaulting (none given is ``Always``): ``Never`` or ``OnFailure``, and only ``Never`` with a
    ``podFailurePolicy`` (one given, even with no rules)."""
    path = "spec.template.spec.restartPolicy"
    if restart in (None, "", "Always"):
        return [(path, 'Required value: valid values: "OnFailure", "Never"')]
    if restart not in ("Never", "OnFailure"):
        return [(path, f'Unsupported value: {json.dumps(restart)}: supported values: "OnFailure", "Never"')]
    if spec.get("podFailurePolicy") is not None and restart != "Never":
        return [(path, f'Invalid value: {json.dumps(restart)}: only "Never" is supported when podFailurePolicy is '
                       "specified")]
    return []


def _replacement_problems(spec: dict) -> list[tuple[str, str]]:
    """``podReplacementPolicy``: with a ``podFailurePolicy`` only ``Failed``, a pod is replaced
    once it has failed."""
    replacement = spec.get("podReplacementPolicy")
    allowed = ("Failed",) if spec.get("podFailurePolicy") is not None else ("TerminatingOrFailed", "Failed")
    if replacement is None or replacement in allowed:
        return []
    return [("spec.podReplacementPolicy", f"Unsupported value: {json.dumps(replacement)}: supported values: "
                                          + ", ".join(json.dumps(a) for a in allowed))]


def _selector_problems(spec: dict) -> list[tuple[str, str]]:
    """A Job's ``manualSelector``: its selector, given, must select the pods its template makes."""
    if not spec.get("manualSelector"):
        return []
    selector = spec.get("selector")
    if selector is None:
        return [("spec.selector", "Required value")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if matches(labels, selector_text(selector)):
        return []
    shown = json.dumps(labels, separators=(",", ":"), sort_keys=True)
    return [("spec.template.metadata.labels", f"Invalid value: {shown}: `selector` does not match template `labels`")]


def _indexed_problems(job: dict) -> list[tuple[str, str]]:
    """An Indexed Job's pods are named ``<job>-<index>``, the hostname of its last one a DNS-1123
    label too (the API refuses the Job rather than fail at that pod)."""
    spec, name = job.get("spec") or {}, (job.get("metadata") or {}).get("name") or ""
    completions = spec.get("completions", 1 if spec.get("parallelism") is None else None)
    if spec.get("completionMode") != "Indexed" or not completions or completions <= 0:
        return []
    last = f"{name}-{completions - 1}"
    if DNS_LABEL.match(last) and len(last) <= 63:
        return []
    return [("metadata.name", f"Invalid value: {json.dumps(name)}: will not able to create pod with invalid DNS "
                              f"label: {last}")]


def containers_problems(path: str, pod: dict) -> list[tuple[str, str]]:
    """The containers and init containers of the pod spec at ``path``, each named once among both."""
    problems, names = [], set()
    for key in ("containers", "initContainers"):
        for index, container in enumerate(pod.get(key) or []):
            where = f"{path}.{key}[{index}]"
            problems += _container_problems(where, container)
            if container.get("name") in names:
                problems.append((f"{where}.name", f"Duplicate value: {json.dumps(container['name'])}"))
            names.add(container.get("name"))
    return problems


def _container_problems(path: str, container: dict) -> list[tuple[str, str]]:
    """A container's name, image, pull policy, resources, ports, and environment variables' names
    and sources (a literal ``value`` or ``valueFrom``, not both)."""
    problems = []
    if not DNS_LABEL.match(container.get("name") or ""):
        problems.append((f"{path}.name", f"Invalid value: {json.dumps(container.get('name'))}: a lowercase RFC 1123 "
                                         "label must consist of lower case alphanumeric characters or '-'"))
    elif len(container["name"]) > 63:
        problems.append((f"{path}.name", f"Invalid value: {json.dumps(container['name'])}: must be no more than 63 "
                                         "characters"))
    if not container.get("image"):
        problems.append((f"{path}.image", "Required value"))
    policy = container.get("imagePullPolicy")
    if policy and policy not in PULL_POLICIES:
        problems.append((f"{path}.imagePullPolicy", f"Unsupported value: {json.dumps(policy)}: supported values: "
                                                    + ", ".join(json.dumps(p) for p in PULL_POLICIES)))
    problems += resource_problems(f"{path}.resources", container.get("resources") or {})
    for index, port in enumerate(container.get("ports") or []):
        problems += _port_problems(f"{path}.ports[{index}]", port)
    for index, variable in enumerate(container.get("env") or []):
        problems += _env_problems(f"{path}.env[{index}].name", variable.get("name") or "")
        if variable.get("value") and variable.get("valueFrom") is not None:
            problems.append((f"{path}.env[{index}].valueFrom", "Invalid value: \"\": may not be specified when "
                                                               "`value` is not empty"))
    return problems


def _port_problems(path: str, port: dict) -> list[tuple[str, str]]:
    """A container port and host port within 1-65535, and a supported protocol (TCP by default)."""
    problems = []
    if not port.get("containerPort"):
        problems.append((f"{path}.containerPort", "Required value"))
    for field in ("containerPort", "hostPort"):
        number = port.get(field)
        if number and not 1 <= number <= 65535:
            problems.append((f"{path}.{field}", f"Invalid value: {number}: must be between 1 and 65535, inclusive"))
    protocol = port.get("protocol", "TCP")
    if protocol not in PROTOCOLS:
        problems.append((f"{path}.protocol", f"Unsupported value: {json.dumps(protocol)}: supported values: "
                                             + ", ".join(json.dumps(p) for p in PROTOCOLS)))
    return problems


def _env_problems(path: str, name: str) -> list[tuple[str, str]]:
    """An environment variable's name: given, and printable ASCII but ``=`` (the relaxed rule,
    the only one since Kubernetes 1.34)."""
    if not name:
        return [(path, "Required value")]
    if all(" " <= c <= "~" and c != "=" for c in name):
        return []
    return [(path, f"Invalid value: {json.dumps(name)}: a valid environment variable name must consist only of "
                   "printable ASCII characters other than '='")]


def _volume_problems(pod: dict) -> list[tuple[str, str]]:
    """Volumes named once each with one source, and mounts of named volumes at distinct paths."""
    problems = []
    names = [v.get("name") for v in pod.get("volumes") or []]
    for index, volume in enumerate(pod.get("volumes") or []):
        path = f"spec.template.spec.volumes[{index}]"
        if not DNS_LABEL.match(volume.get("name") or ""):
            problems.append((f"{path}.name", f"Invalid value: {json.dumps(volume.get('name'))}: a lowercase RFC 1123 "
                                             "label must consist of lower case alphanumeric characters or '-'"))
        elif names.count(volume["name"]) > 1:
            problems.append((f"{path}.name", f"Duplicate value: {json.dumps(volume['name'])}"))
        if len([k for k in volume if k != "name"]) != 1:
            problems.append((path, "Required value: must specify exactly 1 volume type"))
        size = (volume.get("emptyDir") or {}).get("sizeLimit")
        if size is not None and quantity(size) < 0:
            # validateVolumeSource (pkg/apis/core/validation/validation.go) forbids a negative sizeLimit.
            problems.append((f"{path}.emptyDir.sizeLimit", "Forbidden: SizeLimit field must be a valid resource "
                                                           "quantity"))
        claim = volume.get("persistentVolumeClaim")
        if isinstance(claim, dict) and not claim.get("claimName"):
            problems.append((f"{path}.persistentVolumeClaim.claimName", "Required value"))
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(kind) or []):
            problems += _mount_problems(f"spec.template.spec.{kind}[{index}]", container, names)
    return problems


def _mount_problems(at: str, container: dict, names: list) -> list[tuple[str, str]]:
    """A container's mounts (``ValidateVolumeMounts``): of a named volume, at distinct paths, a
    ``subPath`` relative and without ``..`` (``validateLocalDescendingPath``)."""
    problems = []
    seen: set[str] = set()
    for number, mount in enumerate(container.get("volumeMounts") or []):
        path = f"{at}.volumeMounts[{number}]"
        if mount.get("name") not in names:
            problems.append((f"{path}.name", f"Not found: {json.dumps(mount.get('name'))}"))
        if not mount.get("mountPath"):
            problems.append((f"{path}.mountPath", "Required value"))
        elif mount["mountPath"] in seen:
            problems.append((f"{path}.mountPath", f"Invalid value: {json.dumps(mount['mountPath'])}: must be unique"))
        seen.add(mount.get("mountPath") or "")
        sub = mount.get("subPath") or ""
        if sub.startswith("/"):
            problems.append((f"{path}.subPath", f"Invalid value: {json.dumps(sub)}: must be a relative path"))
        if ".." in sub.replace("\\", "/").split("/"):
            problems.append((f"{path}.subPath", f"Invalid value: {json.dumps(sub)}: must not contain '..'"))
    return problems
