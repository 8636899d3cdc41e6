"""Pod Security Admission's ``baseline`` checks (staging/src/k8s.io/pod-security-admission/policy)
as Kubernetes 1.37 runs them at version ``latest``, each answering a reason and a detail worded as
its check words them, and the helpers the ``restricted`` checks
(:mod:`kube_standin.pod_security_restricted`) share: a check visits init, regular and
ephemeral containers in that order, and names who set a forbidden value (``pod and containers
"a", "b"``).

By id (the order they run in): ``appArmorProfile`` (a type other than ``RuntimeDefault`` or
``Localhost``, in ``appArmorProfile`` or a ``container.apparmor.security.beta.kubernetes.io/*``
annotation other than ``runtime/default`` or ``localhost/*``), ``capabilities_baseline``,
``hostNamespaces``, ``hostPathVolumes``, ``hostPorts``, ``hostProbesAndHostLifecycle`` (a probe's
or lifecycle handler's ``host``), ``privileged``, ``procMount`` (other than ``Default``, unless
``hostUsers: false``), ``seLinuxOptions`` (a type beyond the container ones, any user or role),
``seccompProfile_baseline`` (a type other than ``RuntimeDefault`` or ``Localhost``), ``sysctls``
(outside the safe set) and ``windowsHostProcess``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

Result = tuple[str, str] | None
"""A failed check's reason and detail, or None where the pod passes it."""

SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem", "net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"})
"""The sysctls baseline allows (``sysctlsAllowedV1Dot37``: 1.27, 1.29, 1.32 and 1.37 each added some)."""
BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
"""The capabilities baseline lets a container add (``capabilities_baseline``)."""
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
PROFILES = ("RuntimeDefault", "Localhost")
"""The seccomp and AppArmor profile types allowed."""
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def containers(spec: dict) -> Iterator[dict]:
    """The pod's containers as Pod Security visits them: init, regular, then ephemeral ones."""
    yield from (*spec.get("initContainers", []), *spec.get("containers", []), *spec.get("ephemeralContainers", []))


def context(obj: dict) -> dict:
    return obj.get("securityContext") or {}


def quote(items) -> str:
    return ", ".join(f'"{item}"' for item in items)


def plural(one: str, many: str, count: int) -> str:
    return one if count == 1 else many


def named(names: list[str], what: str = "container") -> str:
    """``container "a"``, ``containers "a", "b"``."""
    return f"{plural(what, what + 's', len(names))} {quote(names)}"


def setters(pod: bool, names: list[str]) -> str:
    """Who set a forbidden value: ``pod and containers "a", "b"``."""
    return " and ".join([*(["pod"] if pod else []), *([named(names)] if names else [])])


def windows(spec: dict) -> bool:
    return (spec.get("os") or {}).get("name") == "windows"


def user_namespace(spec: dict) -> bool:
    return spec.get("hostUsers") is False


def profiles(spec: dict, field: str, allowed: Callable[[dict], bool]) -> tuple[bool, list[str], list[str]]:
    """Whether the pod's ``securityContext.<field>`` is set and not ``allowed``, the containers
    whose is, and the sorted types of both."""
    pod = context(spec).get(field) is not None and not allowed(context(spec)[field])
    bad = [c for c in containers(spec) if context(c).get(field) is not None and not allowed(context(c)[field])]
    types = {p.get("type", "") for p in ([context(spec)[field]] if pod else []) + [context(c)[field] for c in bad]}
    return pod, [c["name"] for c in bad], sorted(types)


def allowed_profile(profile: dict) -> bool:
    return profile.get("type") in PROFILES


def _app_armor(metadata: dict, spec: dict) -> Result:
    pod, names, values = profiles(spec, "appArmorProfile", allowed_profile)
    annotations = sorted(f"{key}={json.dumps(value)}" for key, value in (metadata.get("annotations") or {}).items()
                         if key.startswith(APPARMOR_ANNOTATION) and value not in ("", "runtime/default")
                         and not value.startswith("localhost/"))
    who = [setters(pod, names)] if pod or names else []
    if annotations:
        who.append(plural("annotation", "annotations", len(annotations)))
    values += annotations
    if not who:
        return None
    return (plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
            f"{' and '.join(who)} must not set AppArmor profile type to {quote(values)}")


def _capabilities_baseline(metadata: dict, spec: dict) -> Result:
    added = {c["name"]: set((context(c).get("capabilities") or {}).get("add") or ()) - BASELINE_CAPABILITIES
             for c in containers(spec)}
    names = [name for name, extra in added.items() if extra]
    if not names:
        return None
    return ("non-default capabilities", f"{named(names)} must not include {quote(sorted(set().union(*added.values())))} "
            "in securityContext.capabilities.add")


def _host_namespaces(metadata: dict, spec: dict) -> Result:
    hosts = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]
    return ("host namespaces", ", ".join(hosts)) if hosts else None


def _host_path_volumes(metadata: dict, spec: dict) -> Result:
    names = [v["name"] for v in spec.get("volumes", []) if v.get("hostPath") is not None]
    return ("hostPath volumes", named(names, "volume")) if names else None


def _host_ports(metadata: dict, spec: dict) -> Result:
    ports = {c["name"]: {str(p["hostPort"]) for p in c.get("ports", []) if p.get("hostPort")} for c in containers(spec)}
    names = [name for name, used in ports.items() if used]
    if not names:
        return None
    used = sorted(set().union(*ports.values()))
    return ("hostPort", f"{named(names)} {plural('uses', 'use', len(names))} "
                        f"{plural('hostPort', 'hostPorts', len(used))} {', '.join(used)}")


def _host_probes(metadata: dict, spec: dict) -> Result:
    hosts = {c["name"]: {h for handler in _handlers(c) for h in _handler_hosts(handler)} for c in containers(spec)}
    names = sorted(name for name, found in hosts.items() if found)
    if not names:
        return None
    found = sorted(set().union(*hosts.values()))
    return ("probe or lifecycle host", f"{named(names)} {plural('uses', 'use', len(names))} "
            f"{plural('probe or lifecycle host', 'probe or lifecycle hosts', len(found))} {quote(found)}")


def _handlers(container: dict) -> list[dict]:
    lifecycle = container.get("lifecycle") or {}
    return [h for h in (*(container.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")),
                        lifecycle.get("postStart"), lifecycle.get("preStop")) if h]


def _handler_hosts(handler: dict) -> list[str]:
    return [host for kind in ("httpGet", "tcpSocket") if (host := (handler.get(kind) or {}).get("host"))]


def _privileged(metadata: dict, spec: dict) -> Result:
    names = [c["name"] for c in containers(spec) if context(c).get("privileged")]
    return ("privileged", f"{named(names)} must not set securityContext.privileged=true") if names else None


def proc_mount(metadata: dict, spec: dict) -> Result:
    bad = [c for c in containers(spec) if context(c).get("procMount") not in (None, "Default")]
    if not bad:
        return None
    types = sorted({context(c)["procMount"] for c in bad})
    return "procMount", f"{named([c['name'] for c in bad])} must not set securityContext.procMount to {quote(types)}"


def _proc_mount_baseline(metadata: dict, spec: dict) -> Result:
    return None if user_namespace(spec) else proc_mount(metadata, spec)


def _se_linux(metadata: dict, spec: dict) -> Result:
    pod = context(spec).get("seLinuxOptions")
    options = [*([pod] if pod is not None else []), *(context(c)["seLinuxOptions"] for c in containers(spec)
                                                       if context(c).get("seLinuxOptions") is not None)]
    names = [c["name"] for c in containers(spec) if _se_linux_bad(context(c).get("seLinuxOptions"))]
    pod_bad = _se_linux_bad(pod)
    if not pod_bad and not names:
        return None
    types = sorted({o.get("type") or "" for o in options} - SELINUX_TYPES)
    said = [f"{plural('type', 'types', len(types))} {quote(types)}"] if types else []
    said += [f"{field} may not be set" for field in ("user", "role") if any(o.get(field) for o in options)]
    return "seLinuxOptions", f"{setters(pod_bad, names)} set forbidden securityContext.seLinuxOptions: {'; '.join(said)}"


def _se_linux_bad(options: dict | None) -> bool:
    return options is not None and ((options.get("type") or "") not in SELINUX_TYPES or bool(options.get("user"))
                                    or bool(options.get("role")))


def _seccomp_baseline(metadata: dict, spec: dict) -> Result:
    pod, names, values = profiles(spec, "seccompProfile", allowed_profile)
    if not pod and not names:
        return None
    return "seccompProfile", f"{setters(pod, names)} must not set securityContext.seccompProfile.type to {quote(values)}"


def _sysctls(metadata: dict, spec: dict) -> Result:
    names = [s["name"] for s in context(spec).get("sysctls") or [] if s.get("name") not in SAFE_SYSCTLS]
    return ("forbidden sysctls", ", ".join(names)) if names else None


def _host_process(metadata: dict, spec: dict) -> Result:
    def on(obj: dict) -> bool:
        return bool((context(obj).get("windowsOptions") or {}).get("hostProcess"))

    names = [c["name"] for c in containers(spec) if on(c)]
    if not on(spec) and not names:
        return None
    return "hostProcess", f"{setters(on(spec), names)} must not set securityContext.windowsOptions.hostProcess=true"


BASELINE: dict[str, Callable[[dict, dict], Result]] = {
    "appArmorProfile": _app_armor, "capabilities_baseline": _capabilities_baseline,
    "hostNamespaces": _host_namespaces, "hostPathVolumes": _host_path_volumes, "hostPorts": _host_ports,
    "hostProbesAndHostLifecycle": _host_probes, "privileged": _privileged, "procMount": _proc_mount_baseline,
    "seLinuxOptions": _se_linux, "seccompProfile_baseline": _seccomp_baseline, "sysctls": _sysctls,
    "windowsHostProcess": _host_process}
"""Baseline's checks by id."""
