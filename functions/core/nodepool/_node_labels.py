"""The node labels a study gives its pool's nodes, refused as each cloud would refuse them: a
Kubernetes label key and value, outside Kubernetes', the cloud's and katuna's own namespaces,
and within the number (EKS) or characters (GKE) the cloud takes for a pool. Apart from
:mod:`functions.core.nodepool._parse`, which reads the rest of ``nodePool``: these checks need
only the label, the provider and the pool's machines, and hold the clouds' and kubelet's
label rules in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import eks_gpus
from functions.core.labels import valid_key, valid_value
from functions.core.nodepool._pool import EKS, GKE, POOL_LABEL
from functions.core.reader import Reader, join

GKE_LABEL_CHARACTERS = 1024
"""GKE's bound on a pool's node labels, keys and values together: "up to 1,024 total characters
in a single request" (``NodeConfig.labels`` in the v1 API), katuna's own ``katuna.dev/pool``
among them."""
EKS_NODE_LABELS = 40
"""The most node labels an EKS study gives its pool. katuna writes each node label as a
cluster-autoscaler node-template tag on the node group's Auto Scaling group, which holds at
most 50 tags ("the maximum number of tags per resource is 50", the Amazon EC2 Auto Scaling User
Guide): EKS gives the group 5 of its own (its cluster's and node group's names, the cluster
autoscaler's discovery tags), and katuna 5 more (the pool's, node group's and capacity type's
labels, the trial taint, the scale-down option); a group of NVIDIA GPUs counts katuna's GPU
labels among the 40 (:mod:`functions.core.eks_gpus`)."""
_KUBERNETES_LABELS = ("kubernetes.io", "k8s.io")
_KUBELET_LABELS = ("kubelet.kubernetes.io", "node.kubernetes.io")
_CLOUD_LABELS = {GKE: ("cloud.google.com", "GKE"), EKS: ("eks.amazonaws.com", "EKS")}
"""Each cloud's own node-label namespace, and the cloud."""


def read_labels(r: Reader, item: Mapping[str, Any], path: str, provider: str | None,
                pool: str, machines: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The nodes' labels, as Kubernetes takes them; EKS takes only keys of at most 63
    characters, prefix included, and no empty value, and at most :data:`EKS_NODE_LABELS` with
    the GPU labels katuna adds to a group of NVIDIA GPUs (:mod:`functions.core.eks_gpus`); GKE
    at most :data:`GKE_LABEL_CHARACTERS` in all, with the pool's own label."""
    raw = r.get(item, "labels", path, "mapping") or {}
    out = []
    for key, value in raw.items():
        where = f"{path}.labels.{key}"
        if not valid_key(key):
            r.fail(where, "expected a Kubernetes label key (an optional DNS prefix of at most 253 characters "
                          "and '/', then a name)")
        elif not valid_value(value):
            r.fail(where, "expected a label value: a string of at most 63 letters, digits, '-', '_' or '.'")
        elif provider == EKS and (len(key) > 63 or not value):
            r.fail(where, "EKS takes node labels whose key (prefix included) and value are each 1 to 63 characters")
        elif (reserved := _reserved_label(key, provider)) is not None:
            r.fail(where, reserved)
        else:
            out.append((key, value))
    added = set(eks_gpus.node_labels(machines)) - set(raw) if provider == EKS else set()
    if provider == EKS and len(raw) + len(added) > EKS_NODE_LABELS:
        gpus = f" with katuna's {', '.join(sorted(added))} for NVIDIA GPUs" if added else ""
        r.fail(join(path, "labels"), f"EKS takes at most {EKS_NODE_LABELS} node labels here: each is a "
                                     "cluster-autoscaler node-template tag of the node group's Auto Scaling group, "
                                     "which holds 50 tags, 10 of them EKS's and katuna's own; these are "
                                     f"{len(raw) + len(added)}{gpus}")
    total = sum(len(key) + len(value) for key, value in [*out, (POOL_LABEL, pool)])
    if provider == GKE and total > GKE_LABEL_CHARACTERS:
        r.fail(join(path, "labels"), f"GKE takes node labels of at most {GKE_LABEL_CHARACTERS} characters in all, "
                                     f"keys and values with katuna's {POOL_LABEL}: these hold {total}")
    return tuple(sorted(out))


def _reserved_label(key: str, provider: str | None) -> str | None:
    """Why a node label is not the study's to set, or None. Kubernetes' own namespaces
    (``kubernetes.io``, ``k8s.io`` and their subdomains) are refused by GKE (400 "Applying
    kubernetes label is not allowed") and, on EKS, by kubelet, which then never starts, so the
    nodes never join: it takes only its own ``kubelet.kubernetes.io`` and ``node.kubernetes.io``.
    The cloud's own namespace holds the labels it sets on its nodes (the pool's name trials
    select on among them), which GKE refuses to have set and EKS's would be overridden.
    katuna's own :data:`POOL_LABEL` is the pool's name on every pool katuna creates: a value
    given for it would be overridden, and the pool then found without it, refused to the next
    study (or the next run of the provisioning script) asking for the same pool."""
    if key == POOL_LABEL:
        return f"expected a label other than {POOL_LABEL}: katuna gives each node the pool's name there"
    namespace = key.rpartition("/")[0]
    domain, cloud = _CLOUD_LABELS.get(provider or "", ("", ""))
    if domain and _under(namespace, domain):
        return f"expected a label outside {domain}: {cloud} sets the labels of that namespace itself"
    if not any(_under(namespace, reserved) for reserved in _KUBERNETES_LABELS):
        return None
    if provider == EKS and any(_under(namespace, kubelet) for kubelet in _KUBELET_LABELS):
        return None
    if provider == EKS:
        return ("expected a label outside Kubernetes' own namespaces (kubernetes.io, k8s.io) but kubelet.kubernetes.io "
                "and node.kubernetes.io: kubelet refuses the others, and the nodes would never join the cluster")
    return "expected a label outside Kubernetes' own namespaces (kubernetes.io, k8s.io): GKE refuses them"


def _under(namespace: str, domain: str) -> bool:
    """Whether a label's prefix is ``domain`` or one of its subdomains."""
    return namespace == domain or namespace.endswith("." + domain)
