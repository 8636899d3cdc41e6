"""What a trial's pods lack, or ask for, that Kubernetes' *restricted* Pod Security Standard
refuses, as Pod Security Admission checks it at version ``latest`` (Kubernetes 1.37): the checks
an operator's ``KATUNA_TRIAL_POD_SECURITY=restricted`` adds to the baseline's
(:mod:`functions.core.pod_security`), for trials run in namespaces that enforce restricted.

Where the baseline forbids fields wherever they sit, restricted also requires some: every
container must set ``allowPrivilegeEscalation: false`` and drop ``ALL`` capabilities (adding
none but ``NET_BIND_SERVICE``), the pod or every container ``runAsNonRoot: true`` and a
``RuntimeDefault`` or ``Localhost`` seccomp profile; no ``runAsUser: 0``, no ``procMount`` but
``Default`` (user namespaces included), and volumes only of the kinds that hold no node's
storage (:data:`ALLOWED_VOLUMES`). A Windows pod (``os.name: windows``) is spared the privilege
escalation, capability and seccomp rules, a pod with ``hostUsers: false`` the user ones, as Pod
Security spares them. So only pod templates are checked, those a ``trialSpec`` holds in full
(a Job's, a Training Operator job's replicas', a JobSet's): an Argo Workflow, a Tekton
PipelineRun or a TrainJob describes its pods in shapes of its own, and its controller adds
containers katuna never sees; the namespace's admission judges those pods.

katuna's own fields count: a ``trialSpec`` Job's pod without a ``securityContext`` gets
katuna's (:func:`functions.core.pod_security.pod_context`), which meets the pod's part. The user's own
``securityContext`` is left as written, and a field it lacks or sets otherwise is refused at
submission, naming it. A value a placeholder fills in is judged at launch
(:func:`functions.core.pod_security.launch_problems`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from functions.core import template, trial_kinds, workload_pods
from functions.core.errors import Problem
from functions.core.trial_spec import PATH

RESTRICTED = "restricted"
ALLOWED_VOLUMES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim",
                   "projected", "secret")
"""The volume kinds restricted allows."""
ALLOWED_CAPABILITY = "NET_BIND_SERVICE"
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
WHY = "trial pods must meet Kubernetes' restricted Pod Security Standard here (KATUNA_TRIAL_POD_SECURITY=restricted)"
Unknown = object()
"""A value a placeholder fills in only at launch."""


def problems(workload: Mapping[str, Any], pod_context: Mapping[str, Any], filled: bool) -> Iterator[Problem]:
    """Where the pod templates of ``workload`` (a ``trialSpec``, placeholders ``filled`` in or
    not) fall short of restricted; ``pod_context`` is the ``securityContext`` katuna gives a Job's
    pod that sets none."""
    lays = trial_kinds.kind_of(workload) is not None and workload.get("kind") == "Job"
    for path, _, spec in workload_pods.pod_specs(workload):
        where = f"{PATH}.{path}.spec"
        own = spec.get("securityContext") if "securityContext" in spec or not lays else pod_context
        yield from _pod(spec, _mapping(own), where, filled)


def _pod(spec: Mapping[str, Any], pod: Mapping[str, Any], where: str, filled: bool) -> Iterator[Problem]:
    windows = _mapping(spec.get("os")).get("name") == "windows"
    user_namespace = spec.get("hostUsers") is False
    containers = [(f"{where}.{key}[{i}]", _mapping(_mapping(item).get("securityContext")))
                  for key in CONTAINER_LISTS for i, item in enumerate(_list(spec.get(key)))]
    for path, context in containers:
        yield from _container(context, f"{path}.securityContext", windows, user_namespace, filled)
    if not user_namespace:
        yield from _non_root(pod, containers, f"{where}.securityContext", filled)
        yield from _root_user(pod, f"{where}.securityContext", filled)
    if not windows:
        yield from _required(pod, containers, "seccompProfile", f"{where}.securityContext",
                             'a profile of type "RuntimeDefault" or "Localhost"')
    for i, volume in enumerate(_list(spec.get("volumes"))):
        yield from _volume(_mapping(volume), f"{where}.volumes[{i}]")


def _container(context: Mapping[str, Any], where: str, windows: bool, user_namespace: bool,
               filled: bool) -> Iterator[Problem]:
    if not windows:
        escalation = _value(context.get("allowPrivilegeEscalation"), filled)
        if escalation is not Unknown and escalation is not False:
            yield _problem(f"{where}.allowPrivilegeEscalation", f"expected false, got {_said(escalation)} (otherwise "
                                                                 "a process may gain privileges its parent lacks)")
        yield from _capabilities(_mapping(context.get("capabilities")), f"{where}.capabilities", filled)
    if not user_namespace:
        yield from _root_user(context, where, filled)
    mount = _value(context.get("procMount"), filled)
    if user_namespace and mount not in (None, "Default", Unknown):
        yield _problem(f"{where}.procMount", f"expected Default, got {mount!r} (in a user namespace too)")


def _capabilities(capabilities: Mapping[str, Any], where: str, filled: bool) -> Iterator[Problem]:
    drop = _value(capabilities.get("drop"), filled)
    if drop is not Unknown and not (isinstance(drop, list) and "ALL" in drop):
        yield _problem(f"{where}.drop", f'expected "ALL" among the capabilities dropped, got {_said(drop)}')
    add = _value(capabilities.get("add"), filled)
    extra = [c for c in _list(add) if c != ALLOWED_CAPABILITY and _value(c, filled) is not Unknown]
    if extra:
        yield _problem(f"{where}.add", f"expected at most {ALLOWED_CAPABILITY}, got {', '.join(map(str, extra))}")


def _non_root(pod: Mapping[str, Any], containers: list[tuple[str, Mapping[str, Any]]], where: str,
              filled: bool) -> Iterator[Problem]:
    """``runAsNonRoot``: true in the pod or in every container, false in none."""
    own = _value(pod.get("runAsNonRoot"), filled)
    if own is False:
        yield _problem(f"{where}.runAsNonRoot", "expected true, got false")
    for path, context in containers:
        if _value(context.get("runAsNonRoot"), filled) is False:
            yield _problem(f"{path}.securityContext.runAsNonRoot", "expected true or nothing, got false")
    if own is not False:
        yield from _required(pod, containers, "runAsNonRoot", where, "true")


def _root_user(context: Mapping[str, Any], where: str, filled: bool) -> Iterator[Problem]:
    if _value(context.get("runAsUser"), filled) == 0:
        yield _problem(f"{where}.runAsUser", "expected a user other than root (0), or none (the image's own)")


def _required(pod: Mapping[str, Any], containers: list[tuple[str, Mapping[str, Any]]], field: str,
              where: str, expected: str) -> Iterator[Problem]:
    """A ``field`` the pod's context must set to what is ``expected``, or else every container's:
    unset in the pod, the containers that set none each lack it (the pod lacks it where none sets
    it). A value set otherwise is the baseline's or :func:`_non_root`'s to refuse."""
    if pod.get(field) is not None:
        return
    lacking = [path for path, context in containers if context.get(field) is None]
    if lacking and len(lacking) == len(containers):
        yield _problem(f"{where}.{field}", f"expected {expected} (here, or in every container's securityContext), "
                                           "got nothing")
        return
    for path in lacking:
        yield _problem(f"{path}.securityContext.{field}", f"expected {expected} (here, or in the pod's "
                                                          "securityContext), got nothing")


def _volume(volume: Mapping[str, Any], where: str) -> Iterator[Problem]:
    kinds = [key for key, source in volume.items() if key != "name" and source is not None]
    if kinds and not set(kinds) & set(ALLOWED_VOLUMES):
        yield _problem(where, f"expected a volume of a kind restricted allows ({', '.join(ALLOWED_VOLUMES)}), got "
                              f"{', '.join(kinds)}")


def _problem(path: str, message: str) -> Problem:
    return Problem(path, f"{message}: {WHY}")


def _value(value: Any, filled: bool) -> Any:
    """``value``, or :data:`Unknown` for a string a placeholder fills in at launch."""
    return Unknown if not filled and isinstance(value, str) and template.OWN.search(value) else value


def _said(value: Any) -> str:
    return "nothing" if value is None else repr(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
