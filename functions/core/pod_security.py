"""What a trial's pods may not ask of their node: the fields Kubernetes' *baseline* Pod Security
Standard forbids.

katuna creates trial workloads with its own permissions, so whoever can submit a study (a Study
resource in a namespace katuna watches, a ``POST /studies``) would otherwise get what katuna's
account may create, whatever the submitter may create themselves: a privileged container, the
node's filesystem through a ``hostPath`` volume, or its network, process or IPC namespace, which
is root on the node and every Secret of every pod on it. A study runs code in a container; it
does not get the node. So a ``trialSpec`` of any kind (and an Argo ``podSpecPatch`` in it, read
as Argo reads it: :mod:`functions.core.pod_spec_patch`) asking for any of these is refused at
submission, naming the field: ``privileged``, ``hostNetwork``, ``hostPID``, ``hostIPC``,
``hostPath``, a ``hostPort``, a capability added beyond the baseline's, a sysctl outside the safe
set, a ``procMount`` other than ``Default``, an ``Unconfined`` seccomp or AppArmor profile, SELinux
options beyond a container type, and a Windows ``hostProcess``. The fields are found by name
wherever they sit (containers, init and ephemeral containers, pod templates of any workload,
Argo's templates, Tekton's steps), matched whatever the case, as Argo reads a patch.

A value a placeholder fills in is known at launch (:func:`launch_problems`): a field the filled-in
workload asks for that its template did not fails the launch for good. A study stored before
these checks ran is not refused again; its template's own fields are left as accepted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from functions.core import pod_spec_patch, template
from functions.core.errors import Problem

BASELINE = "baseline"
PRIVILEGED = "privileged"
LEVELS = (BASELINE, PRIVILEGED)
"""``KATUNA_TRIAL_POD_SECURITY``: the baseline kept (the default), or lifted by the operator."""

HOST_NAMESPACES = frozenset({"hostnetwork", "hostpid", "hostipc"})
BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
"""The capabilities a container may add under the baseline standard (a container runtime's defaults)."""
SAFE_SYSCTLS = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                          "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                          "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                          "net.ipv4.tcp_keepalive_probes"})
"""The sysctls the baseline standard allows: namespaced ones that no pod can use against another."""
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
LIFT = "KATUNA_TRIAL_POD_SECURITY=privileged lifts this for a cluster that trusts every study's author"
PATH = "trialTemplate.trialSpec"


def study_problems(trial_spec: Mapping[str, Any] | None) -> list[Problem]:
    """Where a study's ``trialSpec`` (placeholders not filled in) asks for more than the baseline."""
    return list(_problems(trial_spec, filled=False))


def launch_problems(trial_spec: Mapping[str, Any] | None, workload: Mapping[str, Any]) -> list[Problem]:
    """Where the rendered ``workload`` of a trial asks for more than the baseline and its template
    ``trial_spec`` did not: what a parameter's value made it ask for."""
    accepted = {problem.path for problem in _problems(trial_spec, filled=False)}
    return [problem for problem in _problems(workload, filled=True) if problem.path not in accepted]


def _problems(workload: Mapping[str, Any] | None, filled: bool) -> Iterator[Problem]:
    if not workload:
        return
    yield from _walk(workload, PATH)
    for path, patch in pod_spec_patch.patches(template.strings(workload, PATH), filled):
        yield from _walk(patch, path)


def _walk(value: Any, path: str) -> Iterator[Problem]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            where = f"{path}.{key}"
            found = _field(str(key).lower(), child, where)
            if found is not None:
                yield Problem(where, f"{found}: katuna creates trial pods with its own permissions, and this would "
                                     f"give trial code the node ({LIFT})")
            yield from _walk(child, where)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, f"{path}[{index}]")


def _field(key: str, value: Any, path: str) -> str | None:
    """What the field ``key`` holding ``value`` asks for beyond the baseline, or None."""
    if key in HOST_NAMESPACES or key in ("privileged", "hostprocess"):
        return "expected false or nothing, got true" if value is True else None
    if key == "hostpath":
        return "expected no hostPath volume (the node's own files)" if value is not None else None
    if key == "hostport":
        return f"expected no hostPort (the node's own port), got {value!r}" if value not in (None, 0) else None
    if key == "add" and path.rpartition(".")[0].rpartition(".")[2].lower() == "capabilities":
        extra = [c for c in (value if isinstance(value, list) else [value]) if str(c).upper().removeprefix("CAP_")
                 not in BASELINE_CAPABILITIES]
        return f"expected only capabilities of the baseline ({', '.join(sorted(BASELINE_CAPABILITIES))}), got " \
               f"{', '.join(map(str, extra))}" if extra else None
    if key == "sysctls":
        unsafe = [s.get("name") for s in (value if isinstance(value, list) else [value])
                  if not (isinstance(s, Mapping) and s.get("name") in SAFE_SYSCTLS)]
        return f"expected only safe sysctls ({', '.join(sorted(SAFE_SYSCTLS))}), got {unsafe}" if unsafe else None
    if key == "procmount":
        return f"expected Default, got {value!r}" if value not in (None, "Default") else None
    if key in ("seccompprofile", "apparmorprofile"):
        kind = value.get("type") if isinstance(value, Mapping) else None
        return f"expected a profile other than Unconfined, got {kind!r}" if kind == "Unconfined" else None
    if key == "selinuxoptions" and isinstance(value, Mapping):
        confined = value.get("type", "") in SELINUX_TYPES and not value.get("user") and not value.get("role")
        return None if confined else f"expected at most a container type ({', '.join(sorted(SELINUX_TYPES - {''}))}) " \
                                     f"and no user or role, got {dict(value)!r}"
    return None
