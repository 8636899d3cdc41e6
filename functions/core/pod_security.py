"""What a trial's pods may not ask of their node: the fields Kubernetes' *baseline* Pod Security
Standard forbids, as Pod Security Admission checks them at version ``latest`` (Kubernetes 1.37).

katuna creates trial workloads with its own permissions, so whoever can submit a study (a Study
resource in a namespace katuna watches, a ``POST /studies``) would otherwise get what katuna's
account may create, whatever the submitter may create themselves: a privileged container, the
node's filesystem through a ``hostPath`` volume, or its network, process or IPC namespace, which
is root on the node and every Secret of every pod on it. A study runs code in a container; it
does not get the node. So a ``trialSpec`` of any kind (and an Argo ``podSpecPatch`` in it, read
as Argo reads it: :mod:`functions.core.pod_spec_patch`) asking for any of these is refused at
submission, naming the field: ``privileged``, ``hostNetwork``, ``hostPID``, ``hostIPC``,
``hostPath``, a ``hostPort``, a capability added beyond the baseline's (named exactly as it names
them), a sysctl outside the safe set, a ``procMount`` other than ``Default`` (any is allowed in a
pod with ``hostUsers: false``), an ``Unconfined`` seccomp or AppArmor profile, an AppArmor
annotation (``container.apparmor.security.beta.kubernetes.io/<container>``) other than
``runtime/default`` or ``localhost/<profile>``, a probe's or lifecycle handler's ``host``, SELinux
options beyond a container type, and a Windows ``hostProcess``. The fields are found by name
wherever they sit (containers, init and ephemeral containers, pod templates of any workload,
Argo's templates, Tekton's steps), matched whatever the case, as Argo reads a patch. Where a
patch sets ``hostUsers`` to anything but false, no ``hostUsers: false`` of the workload is
trusted: the patch may undo it in the pods Argo makes.

An operator whose trials run where Pod Security Admission enforces *restricted* sets that level
(:data:`RESTRICTED`): its checks are added (:mod:`functions.core.pod_security_restricted`), and
the pods katuna renders itself meet them (:func:`pod_context`).

A value a placeholder fills in is known at launch (:func:`launch_problems`): a field the filled-in
workload asks for that its template did not fails the launch for good. A study stored before
these checks ran is not refused again; its template's own fields are left as accepted.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from functions.core import pod_security_restricted, pod_spec_patch, template
from functions.core.errors import Problem
from functions.core.pod_security_restricted import RESTRICTED
from functions.core.trial_spec import PATH

BASELINE = "baseline"
PRIVILEGED = "privileged"
LEVELS = (BASELINE, RESTRICTED, PRIVILEGED)
"""``KATUNA_TRIAL_POD_SECURITY``: the baseline kept (the default), restricted added for trials
whose namespaces enforce it, or the baseline lifted by the operator."""
RUNTIME_SECCOMP: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}

HOST_NAMESPACES = frozenset({"hostnetwork", "hostpid", "hostipc"})
BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
"""The capabilities a container may add under the baseline standard (a container runtime's defaults)."""
SAFE_SYSCTLS = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                          "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                          "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                          "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
                          "net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"})
"""The sysctls the baseline standard allows: namespaced ones that no pod can use against another
(Kubernetes 1.27, 1.29, 1.32 and 1.37 each allowed some more)."""
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
"""The prefix of the annotation that gave a container its AppArmor profile before ``appArmorProfile``."""
HANDLERS = frozenset({"httpget", "tcpsocket"})
"""The probe and lifecycle handlers that connect to a ``host`` (the pod's own IP where unset)."""
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
LIFT = "KATUNA_TRIAL_POD_SECURITY=privileged lifts this for a cluster that trusts every study's author"


def pod_context(level: str, run_as_user: int | None = None) -> dict[str, Any]:
    """The ``securityContext`` katuna gives the pod of a trial Job it renders, and of a
    ``trialSpec`` Job whose pod sets none: the container runtime's seccomp profile; at
    :data:`RESTRICTED` ``runAsNonRoot: true`` too (the kubelet then starts no container whose image
    would run as root); and the study's ``kubernetes.runAsUser`` (never given with a
    ``trialSpec``), the user an image whose own is root, or a name, runs as."""
    context: dict[str, Any] = copy.deepcopy(RUNTIME_SECCOMP)
    if level == RESTRICTED:
        context["runAsNonRoot"] = True
    if run_as_user is not None:
        context["runAsUser"] = run_as_user
    return context


def study_problems(trial_spec: Mapping[str, Any] | None, level: str = BASELINE) -> list[Problem]:
    """Where a study's ``trialSpec`` (placeholders not filled in) asks for more than the
    ``level`` allows (the baseline, or restricted), or lacks what restricted requires."""
    return _at_level(trial_spec, level, filled=False)


def launch_problems(trial_spec: Mapping[str, Any] | None, workload: Mapping[str, Any],
                    level: str = BASELINE) -> list[Problem]:
    """Where the rendered ``workload`` of a trial falls short of the ``level`` and its template
    ``trial_spec`` did not: what a parameter's value made it ask for."""
    accepted = {problem.path for problem in study_problems(trial_spec, level)}
    return [problem for problem in _at_level(workload, level, filled=True) if problem.path not in accepted]


def _at_level(workload: Mapping[str, Any] | None, level: str, filled: bool) -> list[Problem]:
    """The baseline's problems of ``workload``, and at :data:`RESTRICTED` restricted's, which
    stand for a baseline one at the same field or around it (a ``hostPath`` volume, a capability
    added)."""
    found = list(_problems(workload, filled))
    if level != RESTRICTED or not workload:
        return found
    stricter = list(pod_security_restricted.problems(workload, pod_context(RESTRICTED), filled))
    return [p for p in found if not any(_within(p.path, s.path) for s in stricter)] + stricter


def _within(path: str, outer: str) -> bool:
    return path == outer or path.startswith((f"{outer}.", f"{outer}["))


def _problems(workload: Mapping[str, Any] | None, filled: bool) -> Iterator[Problem]:
    if not workload:
        return
    patches = pod_spec_patch.patches(template.strings(workload, PATH), filled)
    trusted = all(_host_users(patch) is None or _host_users(patch) is False for _, patch in patches)
    yield from _walk(workload, PATH, "", user_namespace=False, trusted=trusted)
    for path, patch in patches:
        yield from _walk(patch, path, "", user_namespace=False, trusted=trusted)


def _walk(value: Any, path: str, parent: str, user_namespace: bool, trusted: bool) -> Iterator[Problem]:
    """The problems of ``value`` at ``path``, the field ``parent`` (lower-cased) holding it; in a
    user namespace where an enclosing pod spec says ``hostUsers: false`` and no patch may undo it
    (``trusted``)."""
    if isinstance(value, Mapping):
        user_namespace = user_namespace or (trusted and _host_users(value) is False)
        for key, child in value.items():
            name, where = str(key).lower(), _key_path(path, str(key))
            found = _field(name, child, parent, user_namespace)
            if found is not None:
                yield Problem(where, f"{found}: katuna creates trial pods with its own permissions, and this would "
                                     f"give trial code the node ({LIFT})")
            yield from _walk(child, where, name, user_namespace, trusted)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, f"{path}[{index}]", parent, user_namespace, trusted)


def _key_path(path: str, key: str) -> str:
    """``path.key``, or ``path["key"]`` for a key such as an annotation's, with dots or slashes."""
    return f"{path}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def _host_users(value: Mapping[str, Any]) -> Any:
    """The ``hostUsers`` a pod spec (or a patch of one) sets, its name in any case, or None."""
    return next((child for key, child in value.items() if str(key).lower() == "hostusers"), None)


def _field(key: str, value: Any, parent: str, user_namespace: bool) -> str | None:
    """What the field ``key`` (of the field ``parent``) holding ``value`` asks for beyond the
    baseline, or None."""
    if key in HOST_NAMESPACES or key in ("privileged", "hostprocess"):
        return "expected false or nothing, got true" if value is True else None
    if key == "hostpath":
        return "expected no hostPath volume (the node's own files)" if value is not None else None
    if key == "hostport":
        return f"expected no hostPort (the node's own port), got {value!r}" if value not in (None, 0) else None
    if key == "add" and parent == "capabilities":
        extra = [c for c in (value if isinstance(value, list) else [value])
                 if not (isinstance(c, str) and c in BASELINE_CAPABILITIES)]
        return f"expected only capabilities of the baseline, named as it names them " \
               f"({', '.join(sorted(BASELINE_CAPABILITIES))}), got {', '.join(map(str, extra))}" if extra else None
    if key == "host" and parent in HANDLERS:
        return f"expected no host (the probe or handler then reaches the pod's own IP; any other is reached from " \
               f"the node), got {value!r}" if value not in (None, "") else None
    if key.startswith(APPARMOR_ANNOTATION):
        return None if value is None or _allowed_apparmor(str(value)) else \
            f"expected runtime/default or localhost/<profile>, got {value!r}"
    return _context_field(key, value, user_namespace)


def _context_field(key: str, value: Any, user_namespace: bool) -> str | None:
    """What a ``securityContext``'s field ``key`` holding ``value`` asks for beyond the baseline, or None."""
    if key == "sysctls":
        unsafe = [s.get("name") if isinstance(s, Mapping) else s for s in (value if isinstance(value, list) else [value])
                  if not (isinstance(s, Mapping) and s.get("name") in SAFE_SYSCTLS)]
        return f"expected only safe sysctls ({', '.join(sorted(SAFE_SYSCTLS))}), got {unsafe}" if unsafe else None
    if key == "procmount" and not user_namespace:
        return f"expected Default (any other only in a pod with hostUsers: false), got {value!r}" \
            if value not in (None, "Default") else None
    if key in ("seccompprofile", "apparmorprofile"):
        kind = value.get("type") if isinstance(value, Mapping) else None
        return f"expected a profile other than Unconfined, got {kind!r}" if kind == "Unconfined" else None
    if key == "selinuxoptions" and isinstance(value, Mapping):
        confined = (value.get("type") or "") in SELINUX_TYPES and not value.get("user") and not value.get("role")
        return None if confined else f"expected at most a container type ({', '.join(sorted(SELINUX_TYPES - {''}))}) " \
                                     f"and no user or role, got {dict(value)!r}"
    return None


def _allowed_apparmor(profile: str) -> bool:
    return profile in ("", "runtime/default") or profile.startswith("localhost/")
