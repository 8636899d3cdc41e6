"""The field masks Knative Serving's webhook holds a revision's volumes, mounts, environment
and resources to (pkg/apis/serving/fieldmask.go, checked by k8s_validation.go ``validateVolume``,
``validateVolumeMounts``, ``validateEnv``, ``validateEnvFrom`` and ``validateResources``),
whatever the feature flags say. The fields a flag lets through (a volume kind such as
``persistentVolumeClaim``, ``mountPropagation``, ``fieldRef``) are taken here and judged by
``test_deploy.GATED``; everything else the masks drop is refused, as the webhook refuses it:

- a volume of a kind no mask takes (``nfs``, ``downwardAPI``, ``gitRepo``, ...), of more than
  one kind or none, a name that is no DNS-1123 label, an ``emptyDir`` medium other than
  ``Memory``; a projected source other than a Secret, a ConfigMap, a service-account token or
  the downward API (``clusterTrustBundle``), or of more than one of them or none;
- a mount's ``subPathExpr`` or ``recursiveReadOnly``;
- an environment variable's source other than a ConfigMap's or Secret's key (or, flagged, a
  ``fieldRef`` or ``resourceFieldRef``): ``fileKeyRef``; an ``envFrom`` with both or neither of
  ``configMapRef`` and ``secretRef``;
- a container's ``resources.claims``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

VOLUME_KINDS = frozenset({"secret", "configMap", "projected", "emptyDir", "persistentVolumeClaim", "hostPath", "csi",
                          "ephemeral", "image"})
"""The volume kinds ``VolumeSourceMask`` takes (the last six behind their flags)."""
PROJECTIONS = frozenset({"secret", "configMap", "serviceAccountToken", "downwardAPI"})
"""A projected volume's source kinds ``VolumeProjectionMask`` takes."""
MOUNT_FIELDS = frozenset({"name", "readOnly", "mountPath", "subPath", "mountPropagation"})
ENV_FIELDS = frozenset({"name", "value", "valueFrom"})
ENV_SOURCES = frozenset({"configMapKeyRef", "secretKeyRef", "fieldRef", "resourceFieldRef"})
"""An env var's sources ``EnvVarSourceMask`` takes (the last two with ``kubernetes.podspec-fieldref``)."""
ENV_FROM_FIELDS = frozenset({"prefix", "configMapRef", "secretRef"})
RESOURCE_FIELDS = frozenset({"limits", "requests"})
DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def mask_problems(spec: Mapping[str, Any]) -> list[str]:
    """What Serving's field masks refuse in a pod ``spec``'s volumes and its containers' mounts,
    environment and resources, whatever the flags."""
    problems = [problem for index, volume in enumerate(spec.get("volumes") or [])
                for problem in _volume_problems(volume, f"volumes[{index}]")]
    for kind in ("containers", "initContainers"):
        for index, container in enumerate(spec.get(kind) or []):
            problems += _container_problems(container, f"{kind}[{index}]")
    return problems


def _one_of(entry: Mapping[str, Any], kinds: frozenset[str], what: str, where: str) -> list[str]:
    """Fields of ``entry`` outside ``kinds`` (besides ``name``) refused, and exactly one of ``kinds``
    (each a ``what``) asked for: Serving says both of a kind its mask drops, which leaves none."""
    problems = [f"{where}.{field} is not allowed" for field in sorted(set(entry) - kinds - {"name"})]
    found = sorted(set(entry) & kinds)
    if len(found) != 1:
        problems.append(f"{where}: expected exactly one {what} Serving takes, got {found}")
    return problems


def _volume_problems(volume: Mapping[str, Any], where: str) -> list[str]:
    problems = _one_of(volume, VOLUME_KINDS, "volume kind", where)
    if not DNS_1123_LABEL.fullmatch(str(volume.get("name", ""))):
        problems.append(f"{where}.name: {volume.get('name')!r} is no DNS-1123 label")
    if (volume.get("emptyDir") or {}).get("medium", "") not in ("", "Memory"):
        problems.append(f"{where}.emptyDir.medium: expected Memory or none, got {volume['emptyDir']['medium']!r}")
    for index, source in enumerate((volume.get("projected") or {}).get("sources") or []):
        problems += _one_of(source, PROJECTIONS, "projection", f"{where}.projected.sources[{index}]")
    return problems


def _container_problems(container: Mapping[str, Any], at: str) -> list[str]:
    problems = [f"{at}.volumeMounts[{index}].{field} is not allowed"
                for index, mount in enumerate(container.get("volumeMounts") or [])
                for field in sorted(set(mount) - MOUNT_FIELDS)]
    for index, env in enumerate(container.get("env") or []):
        problems += [f"{at}.env[{index}].{field} is not allowed" for field in sorted(set(env) - ENV_FIELDS)]
        problems += [f"{at}.env[{index}].valueFrom.{field} is not allowed"
                     for field in sorted(set(env.get("valueFrom") or {}) - ENV_SOURCES)]
    for index, source in enumerate(container.get("envFrom") or []):
        problems += [f"{at}.envFrom[{index}].{field} is not allowed" for field in sorted(set(source) - ENV_FROM_FIELDS)]
        if ("configMapRef" in source) == ("secretRef" in source):
            problems.append(f"{at}.envFrom[{index}]: expected exactly one of configMapRef, secretRef")
    return problems + [f"{at}.resources.{field} is not allowed"
                       for field in sorted(set(container.get("resources") or {}) - RESOURCE_FIELDS)]
