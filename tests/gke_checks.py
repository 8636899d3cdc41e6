"""What GKE validates in the node-pool requests the stand-in (:mod:`gke_stub`) is sent, and how it
refuses them: a pool name, machine type, accelerators, labels, disk (too small or too large),
taints, service account, workload metadata mode and autoscaling limits GKE would not take get
its 400s, in GKE's JSON error (:func:`error`)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS",
          429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
POOL_NAME = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
SERIES = "a2|a3|a4|a4x|c2|c2d|c3|c3d|c4|c4a|c4d|e2|g2|g4|h3|h4d|m1|m2|m3|m4|n1|n2|n2d|n4|n4a|n4d|t2a|t2d|x4|z3"
MACHINE_TYPE = re.compile(rf"f1-micro|g1-small|(?:(?:e2|n1|n2|n2d|n4|n4d)-)?custom-\d+-\d+(?:-ext)?"
                          rf"|(?:{SERIES})-(?:micro|small|medium)"
                          rf"|(?:{SERIES})-(?:standard|highmem|highcpu|highgpu|megagpu|ultragpu|edgegpu|megamem|ultramem|"
                          rf"hypermem)-\d+g?(?:-lssd|-highlssd|-standardlssd|-metal)?")
"""Compute Engine's machine types: predefined ones of its series (GPU types counting GPUs,
``a3-highgpu-8g``; Local SSD and bare-metal variants), shared-core ones (``e2-medium``,
``f1-micro``), and custom ones (``e2-custom-4-8192``, ``n2-custom-8-16384-ext``;
``custom-2-7680`` is N1's). A predefined type of a family in :data:`SIZES` must be one of its sizes."""
SIZES = {family: frozenset(sizes.split()) for family, sizes in {
    "e2-standard": "2 4 8 16 32", "e2-highmem": "2 4 8 16", "e2-highcpu": "2 4 8 16 32",
    "n1-standard": "1 2 4 8 16 32 64 96", "n1-highmem": "2 4 8 16 32 64 96", "n1-highcpu": "2 4 8 16 32 64 96",
    "n2-standard": "2 4 8 16 32 48 64 80 96 128", "n2-highmem": "2 4 8 16 32 48 64 80 96 128",
    "n2-highcpu": "2 4 8 16 32 48 64 80 96", "n2d-standard": "2 4 8 16 32 48 64 80 96 128 224",
    "n2d-highmem": "2 4 8 16 32 48 64 80 96", "n2d-highcpu": "2 4 8 16 32 48 64 80 96 128 224",
    "c2-standard": "4 8 16 30 60", "t2d-standard": "1 2 4 8 16 32 48 60", "g2-standard": "4 8 12 16 24 32 48 96",
    "a2-highgpu": "1g 2g 4g 8g", "a2-megagpu": "16g", "a2-ultragpu": "1g 2g 4g 8g",
    "a3-highgpu": "1g 2g 4g 8g", "a3-megagpu": "8g", "a3-edgegpu": "8g", "a3-ultragpu": "8g", "a4-highgpu": "8g",
    "n4-standard": "2 4 8 16 32 48 64 80", "n4-highmem": "2 4 8 16 32 48 64 80", "n4-highcpu": "2 4 8 16 32 48 64 80",
    "c2d-standard": "2 4 8 16 32 56 112", "c2d-highmem": "2 4 8 16 32 56 112", "c2d-highcpu": "2 4 8 16 32 56 112",
    "t2a-standard": "1 2 4 8 16 32 48", "m1-ultramem": "40 80 160", "m1-megamem": "96", "m3-ultramem": "32 64 128",
    "m3-megamem": "64 128",
}.items()}
"""The predefined sizes (vCPUs, or GPUs) of the families whose lists are Compute Engine's
documented ones (its machine-family pages); ``e2-standard-3`` is no machine type. Families not
listed are held to the shape of a name only."""
PREDEFINED = re.compile(r"([a-z0-9]+-[a-z]+)-(\d+g?)(-[a-z]+)?")
RESERVED_LABELS = re.compile(r"(^|\.)(kubernetes\.io|k8s\.io)$")
GKE_LABELS = re.compile(r"(^|\.)cloud\.google\.com$")
"""Node-label prefixes GKE refuses: Kubernetes' own namespaces and its own."""
K8S_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
K8S_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_CHARACTERS = 1024
"""``NodeConfig.labels``: "supports up to 1,024 total characters in a single request"."""
NODES_PER_ZONE = 1000
"""GKE's documented limit of nodes per node pool zone (its quotas and limits page), which no quota raises."""
MIN_DISK_GB = 10
"""``NodeConfig.disk_size_gb``: "The smallest allowed disk size is 10GB"."""
MAX_DISK_GB = 65536
"""The largest disk Compute Engine makes of the types GKE boots nodes from (balanced, SSD and
standard Persistent Disk, Hyperdisk Balanced: 64 TiB); the refusal's wording is the stand-in's."""
GCE_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
GCE_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
GCE_LABELS_MOST = 64
"""Compute Engine's bound on a resource's labels ("each resource can have up to 64 labels"),
which a node pool's ``resource_labels`` are, on each of its VMs (the refusal's wording is the
stand-in's)."""
N1_GPUS = {"nvidia-tesla-t4", "nvidia-tesla-v100", "nvidia-tesla-p100", "nvidia-tesla-p4"}
GPU_FAMILIES = {"g2-standard": "nvidia-l4", "a2-highgpu": "nvidia-tesla-a100", "a2-megagpu": "nvidia-tesla-a100",
                "a2-ultragpu": "nvidia-a100-80gb", "a3-highgpu": "nvidia-h100-80gb", "a3-edgegpu": "nvidia-h100-80gb",
                "a3-megagpu": "nvidia-h100-mega-80gb", "a3-ultragpu": "nvidia-h200-141gb", "a4-highgpu": "nvidia-b200"}
N1_GPU_COUNTS = {"nvidia-tesla-t4": {1, 2, 4}, "nvidia-tesla-v100": {1, 2, 4, 8}, "nvidia-tesla-p100": {1, 2, 4},
                 "nvidia-tesla-p4": {1, 2, 4}}
"""How many of each model an N1 machine type takes (Compute Engine's GPU machine types page)."""
N1_GPU_VCPUS = {"nvidia-tesla-t4": {1: 48, 2: 48, 4: 96}, "nvidia-tesla-p4": {1: 24, 2: 48, 4: 96},
                "nvidia-tesla-p100": {1: 16, 2: 32, 4: 96}, "nvidia-tesla-v100": {1: 12, 2: 24, 4: 48, 8: 96}}
"""The most vCPUs an N1 machine type may have beside each count of each model (the same page; four
P100s take 64 in some zones, 96 in others: 96 here)."""
N1_MACHINE = re.compile(r"n1-(?:standard|highmem|highcpu)-(\d+)|(?:n1-)?custom-(\d+)-\d+(?:-ext)?")
"""An N1 machine type that takes GPUs, predefined or custom (``custom-24-92160``: N1's), and its vCPUs."""
G2_GPU_COUNTS = {4: 1, 8: 1, 12: 1, 16: 1, 24: 2, 32: 1, 48: 4, 96: 8}
"""L4 GPUs by G2 machine type's vCPUs; an A-series type's count ends its name (``a3-highgpu-8g``)."""
SERVICE_ACCOUNT = re.compile(r"default|[a-z0-9][a-z0-9-]{0,62}@[a-z0-9][a-z0-9.:-]*\.gserviceaccount\.com")
"""A node pool's ``service_account``: ``default`` or a service account's email."""
METADATA_MODES = {"MODE_UNSPECIFIED": 0, "GCE_METADATA": 1, "GKE_METADATA": 2, 0: 0, 1: 1, 2: 2}
"""``WorkloadMetadataConfig.Mode`` by name, and by number (the REST client sends enums as numbers)."""
TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "PREFER_NO_SCHEDULE": "PreferNoSchedule", "NO_EXECUTE": "NoExecute",
                 1: "NoSchedule", 2: "PreferNoSchedule", 3: "NoExecute"}


REGIONS = frozenset({"africa-south1", "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2",
    "asia-northeast3", "asia-south1", "asia-south2", "asia-southeast1", "asia-southeast2", "australia-southeast1",
    "australia-southeast2", "europe-central2", "europe-north1", "europe-north2", "europe-southwest1", "europe-west1",
    "europe-west2", "europe-west3", "europe-west4", "europe-west6", "europe-west8", "europe-west9", "europe-west10",
    "europe-west12", "me-central1", "me-central2", "me-west1", "northamerica-northeast1", "northamerica-northeast2",
    "northamerica-south1", "southamerica-east1", "southamerica-west1", "us-central1", "us-east1", "us-east4",
    "us-east5", "us-south1", "us-west1", "us-west2", "us-west3", "us-west4"})
"""Google Cloud's regions (its regions-and-zones page)."""
ZONE = re.compile(r"([a-z]+-[a-z]+\d+)-[a-f]")
"""A zone: its region and a letter (the letters each region has are not held exactly)."""


def location_exists(location: str) -> bool:
    """Whether Google Cloud has the region or zone."""
    zone = ZONE.fullmatch(location)
    return (zone[1] if zone else location) in REGIONS


def check_location(location: str, held: set[str]) -> None:
    """GKE's 400 for a location Google Cloud does not have (``Location "europe-west99" does not
    exist.``, as terraform-google-modules/terraform-google-kubernetes-engine#444 quotes it from
    ``gcloud``), where it answers 404 for a cluster missing from a location it has. The
    locations of the clusters a test added (``held``) exist whatever their names."""
    if location not in held and not location_exists(location):
        raise Refused(400, f'Location "{location}" does not exist.')


class Refused(Exception):
    """A request GKE answers with an error."""

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.answer = error(code, message, status)


def error(code: int, message: str, status: str | None = None, reason: str | None = None,
          details: Sequence[dict[str, Any]] = ()) -> tuple[int, dict]:
    """GKE's JSON error: code, message, canonical status, the ``ErrorInfo`` reason if any, and
    other ``google.rpc`` details as their JSON forms (``QuotaFailure``, ``PreconditionFailure``,
    ``RetryInfo``: each with its ``@type``, its fields in lowerCamelCase, as Google's REST errors
    carry them)."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status or STATUS.get(code, "UNKNOWN")}
    found = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com",
              "metadata": {"service": "container.googleapis.com"}}] if reason is not None else []
    if found or details:
        error["details"] = [*found, *details]
    return code, {"error": error}


def invalid(field: str, value: Any, expected: str) -> Refused:
    return Refused(400, f"Invalid value for field \"{field}\": {json.dumps(value)}. {expected}")


def machine_exists(machine: str) -> bool:
    """Whether Compute Engine has the machine type (:data:`MACHINE_TYPE`, :data:`SIZES`)."""
    predefined = PREDEFINED.fullmatch(machine)
    if predefined and predefined[1] in SIZES:
        return predefined[2] in SIZES[predefined[1]] and not predefined[3]
    return MACHINE_TYPE.fullmatch(machine) is not None


def check_pool(pool: dict, workload_identity: bool = True, zone: str = "us-central1-a", zones: int = 1) -> None:
    """What GKE validates in a node pool it is asked to create in ``zone`` (the first of its
    ``zones``, its cluster's): a machine type Compute Engine does not have is refused in GKE's words (as
    keras-team/kinetic#305 quotes them: ``Invalid machine type "e2-standard-4" in zone
    "us-central2-b": GCE_NOT_FOUND``)."""
    name = pool.get("name", "")
    if not POOL_NAME.fullmatch(name):
        raise invalid("node_pool.name", name, "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?)' "
                      "(only lowercase alphanumerics and '-' allowed, must start with a letter and end with an "
                      "alphanumeric, and must be no longer than 40 characters).")
    config = pool.get("config", {})
    machine = config.get("machineType", "e2-medium")
    if not machine_exists(machine):
        raise Refused(400, f'Invalid machine type "{machine}" in zone "{zone}": GCE_NOT_FOUND')
    check_accelerators(machine, config.get("accelerators") or [], "machineType" in config)
    if config.get("spot") and config.get("preemptible"):
        raise Refused(400, "Spot VMs and preemptible VMs cannot both be enabled on a node pool.")
    resource_labels = config.get("resourceLabels", {})
    if len(resource_labels) > GCE_LABELS_MOST:
        raise invalid("node_pool.config.resource_labels", len(resource_labels),
                      f"A resource may have at most {GCE_LABELS_MOST} labels.")
    for key, value in resource_labels.items():
        if not GCE_LABEL_KEY.fullmatch(key) or not GCE_LABEL_VALUE.fullmatch(value):
            raise invalid(f"node_pool.config.resource_labels[{key}]", value,
                          "Label keys and values may hold lowercase letters, digits, '_' and '-' (at most 63).")
    check_labels(config.get("labels") or {})
    disk = int(config.get("diskSizeGb") or 0)
    if disk and disk < MIN_DISK_GB:
        raise invalid("node_pool.config.disk_size_gb", disk, f"The smallest allowed disk size is {MIN_DISK_GB}GB.")
    if disk > MAX_DISK_GB:
        raise invalid("node_pool.config.disk_size_gb", disk, f"The largest allowed disk size is {MAX_DISK_GB}GB.")
    for taint in config.get("taints", []):
        if taint.get("effect") not in TAINT_EFFECTS or not taint.get("key"):
            raise invalid("node_pool.config.taints", taint, "A taint needs a key and an effect.")
    check_identity(config, workload_identity)
    scaling = pool.get("autoscaling", {})
    check_autoscaling(scaling, "node_pool.autoscaling", zones)
    initial = int(pool.get("initialNodeCount", 0))
    if initial < 0:
        raise invalid("node_pool.initial_node_count", initial, "Must be >= 0.")
    if scaling.get("enabled") and initial > int(scaling.get("maxNodeCount") or scaling.get("totalMaxNodeCount", 0)):
        raise invalid("node_pool.initial_node_count", initial, "Must not exceed the autoscaling maximum.")


def check_labels(labels: dict[str, str]) -> None:
    """Node labels in Kubernetes' own namespaces or in GKE's, in GKE's wordings (seen in
    hashicorp/terraform-provider-google#6003 and GoogleCloudPlatform/magic-modules#11878); keys
    and values outside Kubernetes' syntax, and more than 1,024 characters of them in all, as
    ``NodeConfig.labels`` says (those refusals' texts are this stand-in's own)."""
    if sum(len(key) + len(value) for key, value in labels.items()) > LABEL_CHARACTERS:
        raise invalid("node_pool.config.labels", labels, f"Labels may hold up to {LABEL_CHARACTERS} characters in all.")
    for key, value in labels.items():
        namespace, _, name = key.rpartition("/")
        if not (K8S_LABEL_NAME.fullmatch(name) and (not namespace or (
                len(namespace) <= 253 and K8S_LABEL_PREFIX.fullmatch(namespace)))):
            raise invalid(f"node_pool.config.labels[{key}]", key, "Label keys must follow Kubernetes' syntax.")
        if value and not K8S_LABEL_NAME.fullmatch(value):
            raise invalid(f"node_pool.config.labels[{key}]", value, "Label values must follow Kubernetes' syntax.")
        if RESERVED_LABELS.search(namespace):
            raise Refused(400, f"Applying kubernetes label is not allowed: {key}")
        if GKE_LABELS.search(namespace):
            raise Refused(400, f'Node labels with key "{key}" are managed by GKE or Kubernetes and must not be '
                               "manually specified")


def check_identity(config: dict, workload_identity: bool) -> None:
    """The nodes' service account and what the metadata server shows pods. The ``GKE_METADATA``
    refusal follows the API reference ("can only be enabled if Workload Identity is enabled at
    the cluster level"); its exact text is this stand-in's own, with GKE's code and status."""
    account = config.get("serviceAccount")
    if account is not None and not SERVICE_ACCOUNT.fullmatch(account):
        raise invalid("node_pool.config.service_account", account,
                      "Expected 'default' or a service account's email (NAME@PROJECT_ID.iam.gserviceaccount.com).")
    mode = (config.get("workloadMetadataConfig") or {}).get("mode", 0)
    if mode not in METADATA_MODES:
        raise invalid("node_pool.config.workload_metadata_config.mode", mode,
                      "Expected one of MODE_UNSPECIFIED, GCE_METADATA, GKE_METADATA.")
    if METADATA_MODES[mode] == METADATA_MODES["GKE_METADATA"] and not workload_identity:
        raise Refused(400, "Workload Identity must be enabled on the cluster (a workload pool) to run the GKE "
                           "metadata server (GKE_METADATA) on a node pool.")


def check_accelerators(machine: str, accelerators: list[dict], chosen: bool) -> None:
    """GPUs only on machines that carry them: N1 types (predefined or custom) take the attachable
    models (1, 2, 4 or 8 of them, with at most :data:`N1_GPU_VCPUS` vCPUs beside them), the
    accelerator-optimized families (g2, a2, a3) only the model they come with, as many as they
    come with, other series none.

    The refusal of GPUs on the default machine type is GKE's own wording (seen in
    hashicorp/terraform-provider-google#8387), that of too many vCPUs Compute Engine's (as
    google/deepvariant#70 quotes it; whether GKE gives it at the create or its nodes fail to come
    with it is not verified: the stand-in refuses the create); for the other cases the exact text
    GKE answers is not verified, so the message is this stand-in's own, with GKE's code and status."""
    for accelerator in accelerators:
        kind = accelerator.get("acceleratorType", "")
        if not chosen:
            raise Refused(400, f"Cannot use default machine type ({machine}) with GPUs; choose a different machine type.")
        family = "-".join(machine.split("-")[:2])
        n1 = N1_MACHINE.fullmatch(machine)
        allowed = N1_GPUS if n1 or machine.startswith("n1-") else \
            {GPU_FAMILIES[family]} if family in GPU_FAMILIES else set()
        if kind not in allowed:
            raise invalid("node_pool.config.accelerators", kind,
                          f"Accelerator type {kind} is not supported with machine type {machine}.")
        count = int(accelerator.get("acceleratorCount") or 0)
        if count not in _counts(machine, kind):
            raise invalid("node_pool.config.accelerators", count,
                          f"Accelerator count {count} of {kind} is not supported with machine type {machine}.")
        most = N1_GPU_VCPUS[kind].get(count) if n1 else None
        if n1 and most is not None and int(n1[1] or n1[2]) > most:
            raise Refused(400, f"Invalid value for field 'resource.guestAccelerators[0].acceleratorCount': '{count}'. "
                               f"At most {most} vCPUs can be used along with {count} accelerator cards in an instance.")


def _counts(machine: str, kind: str) -> set[int]:
    """How many GPUs of ``kind`` (a model ``machine`` takes) a node of it may have."""
    if machine.startswith("n1-") or N1_MACHINE.fullmatch(machine):
        return N1_GPU_COUNTS[kind]
    if machine.startswith("g2-standard-"):
        return {G2_GPU_COUNTS[int(machine.rsplit("-", 1)[1])]}
    return {int(machine.rsplit("-", 1)[1].removesuffix("g"))}


def node_gpus(machine: str, accelerators: list[dict]) -> tuple[str, int] | None:
    """The GPU model and count a node of the pool carries: its ``accelerators``, else those an
    accelerator-optimized machine type comes with (GKE attaches them unasked); None without any."""
    if accelerators:
        return accelerators[0].get("acceleratorType", ""), sum(int(a.get("acceleratorCount") or 0) for a in accelerators)
    family = "-".join(machine.split("-")[:2])
    if family not in GPU_FAMILIES:
        return None
    built_in = _counts(machine, GPU_FAMILIES[family])
    return GPU_FAMILIES[family], min(built_in)


LOCATION_POLICIES = ("LOCATION_POLICY_UNSPECIFIED", "BALANCED", "ANY")
"""``NodePoolAutoscaling.LocationPolicy``'s names: a REST request naming another is refused by
GKE's JSON transcoding before GKE reads it, in its ``Invalid value at`` wording (a number, as
the client sends an enum with ``enum-encoding=int``, is the proto's own to judge: not checked)."""


def check_autoscaling(scaling: dict, field: str, zones: int = 1) -> None:
    """Autoscaling limits: per-zone or pool-wide, never both; minimum at most maximum; a maximum,
    within GKE's :data:`NODES_PER_ZONE` in each of the pool's ``zones`` (the refusal's wording is
    the stand-in's)."""
    policy = scaling.get("locationPolicy")
    if isinstance(policy, str) and policy not in LOCATION_POLICIES:
        raise Refused(400, f"Invalid value at '{field}.location_policy' "
                           f"(type.googleapis.com/google.container.v1.NodePoolAutoscaling.LocationPolicy), "
                           f"{json.dumps(policy)}")
    if not scaling.get("enabled"):
        return
    zone = int(scaling.get("minNodeCount", 0)), int(scaling.get("maxNodeCount", 0))
    total = int(scaling.get("totalMinNodeCount", 0)), int(scaling.get("totalMaxNodeCount", 0))
    if any(zone) and any(total):
        raise Refused(400, f"{field}: per-zone limits (min_node_count, max_node_count) and total limits "
                           "(total_min_node_count, total_max_node_count) cannot be used together.")
    if not zone[1] and not total[1]:
        raise Refused(400, f"{field}.max_node_count and {field}.total_max_node_count cannot be both set to zero.")
    if zone[1] > NODES_PER_ZONE or total[1] > NODES_PER_ZONE * zones:
        raise invalid(f"{field}.{'max_node_count' if zone[1] else 'total_max_node_count'}", zone[1] or total[1],
                      f"A node pool may have at most {NODES_PER_ZONE} nodes per zone ({zones} zone(s) here).")
    for low, high, names in ((*zone, "min_node_count"), (*total, "total_min_node_count")):
        if low < 0 or (high and low > high):
            raise invalid(f"{field}.{names}", low, "Must be >= 0 and <= the maximum node count.")
