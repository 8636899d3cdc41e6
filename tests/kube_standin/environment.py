"""A container's environment as the kubelet makes it before it creates the container
(``makeEnvironmentVariables``, pkg/kubelet/kubelet_pods.go).

Each ``envFrom`` first: every key of its ConfigMap or Secret, behind its ``prefix``. Then each
``env`` in order: a ``value`` with ``$(VAR)`` expanded from the variables before it (:func:`expand`), else a
``configMapKeyRef``'s or ``secretKeyRef``'s key, or the pod's field a ``fieldRef`` names (the
downward API: :func:`pod_field`); a ``resourceFieldRef`` is not modelled and reads as empty. An object or key that is missing
and not ``optional: true`` stops it with the kubelet's error: the ConfigMap and Secret
managers' NotFound (``configmap "NAME" not found``, ``secret "NAME" not found``: the API's
wording for ``corev1.Resource("configmap")`` and ``corev1.Resource("secret")``), or ``couldn't
find key KEY in ConfigMap NAMESPACE/NAME`` (``in Secret``) for a key. The kubelet shows that
error as the container's ``CreateContainerConfigError`` (``startContainer``,
kuberuntime_container.go) and makes the environment again at its next sync. A missing optional
object or key is skipped: its variables are not set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from kube_standin import secrets

KINDS = {"configMap": "ConfigMap", "secret": "Secret"}
"""How a reference's key starts (``configMapKeyRef``, ``secretRef``), to the kind it names."""


class Unresolved(Exception):
    """What the container reads is missing: the kubelet's message."""


def environment(cluster, pod: dict, container: dict) -> dict[str, str]:
    """The variables of the ``pod``'s ``container``, from the objects of its namespace and its own
    fields; :class:`Unresolved` when one it reads is missing."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        kind = next((kind for kind in KINDS if source.get(f"{kind}Ref")), None)
        if kind is None:
            continue
        ref = source[f"{kind}Ref"]
        data = _data(cluster, kind, namespace, ref["name"])
        if data is None and not ref.get("optional"):
            raise Unresolved(f'{kind.lower()} "{ref["name"]}" not found')
        env.update({source.get("prefix", "") + key: value for key, value in (data or {}).items()})
    for variable in container.get("env") or []:
        field = (variable.get("valueFrom") or {}).get("fieldRef")
        value = pod_field(pod, field["fieldPath"]) if field else _value(cluster, namespace, variable)
        if value is not None:
            env[variable["name"]] = expand(value, env) if variable.get("value") else value
    return env


def _value(cluster, namespace: str, variable: dict) -> str | None:
    """One ``env`` entry's value; None for an optional one whose object or key is missing."""
    source = variable.get("valueFrom") or {}
    kind = next((kind for kind in KINDS if source.get(f"{kind}KeyRef")), None)
    if variable.get("value") or kind is None:
        return variable.get("value", "")
    ref = source[f"{kind}KeyRef"]
    data = _data(cluster, kind, namespace, ref["name"])
    if data is not None and ref["key"] in data:
        return data[ref["key"]]
    if ref.get("optional"):
        return None
    if data is None:
        raise Unresolved(f'{kind.lower()} "{ref["name"]}" not found')
    raise Unresolved(f"couldn't find key {ref['key']} in {KINDS[kind]} {namespace}/{ref['name']}")


SUBSCRIPTED = re.compile(r"metadata\.(labels|annotations)\['(.*)'\]")


def pod_field(pod: dict, path: str) -> str:
    """The pod's field at ``path`` as the kubelet reads a ``fieldRef`` (``podFieldSelectorRuntimeValue``,
    kubelet_pods.go, and ``fieldpath.ExtractFieldPathAsString``): its name, namespace or uid, one
    label or annotation (empty where it has none), its node or service account. The API server
    refuses any other path (:mod:`kube_standin.pod_spec_checks`); a status field (an IP) is not
    modelled and reads as empty."""
    metadata, spec = pod["metadata"], pod.get("spec") or {}
    subscripted = SUBSCRIPTED.fullmatch(path)
    if subscripted:
        return str((metadata.get(subscripted.group(1)) or {}).get(subscripted.group(2), ""))
    fields = {"metadata.name": metadata.get("name"), "metadata.namespace": metadata.get("namespace"),
              "metadata.uid": metadata.get("uid"), "spec.nodeName": spec.get("nodeName"),
              "spec.serviceAccountName": spec.get("serviceAccountName")}
    return str(fields.get(path) or "")


def _data(cluster, kind: str, namespace: str, name: str) -> dict[str, str] | None:
    """The data of the ConfigMap or Secret (decoded) ``name``; None when there is none."""
    if kind == "secret":
        return secrets.data_of(cluster, namespace, name)
    found = cluster.configmaps.get((namespace, name))
    return None if found is None else dict(found.get("data") or {})


def expand(text: str, variables: Mapping[str, str]) -> str:
    """``text`` (a container's ``command`` or ``args`` item, or an ``env`` value) as the kubelet
    expands it: ``$(NAME)`` is the value of the container's variable NAME (an ``env`` value sees
    the variables defined before it), or stays as written when there is none; ``$$`` is one
    ``$``; any other ``$`` stays. Kubernetes' ``third_party/forked/golang/expansion/expand.go``
    (``Expand``), applied by ``ExpandContainerCommandAndArgs`` (``pkg/kubelet/container/helpers.go``)
    and to env values in ``pkg/kubelet/kubelet_pods.go``."""
    out: list[str] = []
    cursor = 0
    while (dollar := text.find("$", cursor, len(text) - 1)) >= 0:
        out.append(text[cursor:dollar])
        following = text[dollar + 1]
        closer = text.find(")", dollar + 2) if following == "(" else -1
        if following == "$":
            out.append("$")
            cursor = dollar + 2
        elif closer >= 0:
            name = text[dollar + 2:closer]
            out.append(variables.get(name, f"$({name})"))
            cursor = closer + 1
        else:
            out.append(text[dollar:dollar + 2])
            cursor = dollar + 2
    return "".join(out) + text[cursor:]
