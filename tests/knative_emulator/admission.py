"""What Knative Serving's webhook refuses in a revision template beyond its pod fields' masks
and flags (those are ``test_deploy.serving_webhook_problems``'s), under Serving's default
config-autoscaler and config-defaults, after its defaulting (revision_defaults.go):

- the template's annotations (pkg/apis/autoscaling/annotation_validation.go ``ValidateAnnotations``,
  revision_validation.go ``validateProgressDeadlineAnnotation``): ``min-scale`` and ``max-scale``
  integers from 0, ``max-scale`` (unless 0, no limit) not below ``min-scale``, ``initial-scale``
  above 0 (``allow-zero-initial-scale`` is off), a ``class`` of Knative's own domain only KPA or
  HPA, a ``metric`` its class takes, ``target-burst-capacity`` a number not below 0 or -1
  (unlimited), ``progress-deadline`` a Go duration of whole seconds, not
  negative. Any other ``autoscaling.knative.dev`` annotation is refused loudly: not checked here.
- the ports (k8s_validation.go ``validateContainersPorts``): one in all the containers, and
  one at least where there are several containers; the serving container's
  (``validateContainerPorts``) named ``""``, ``h2c`` or ``http1``, protocol TCP, no ``hostPort``
  or ``hostIP``;
- probes (``validateProbe``, ``validateReadinessProbe``): one handler, only the fields Serving's
  masks take (a probe's ``terminationGracePeriodSeconds`` only from Serving 1.21 on, so not
  at all here: katuna supports 1.15), a serving container's probe port by name only its port's
  name; a readiness probe
  with ``periodSeconds`` 0 (Knative's own aggressive probing) sets no ``timeoutSeconds`` nor
  ``failureThreshold``;
- volumes (``ValidateVolumes``, ``validateVolumeMounts``): each mounted, each mount naming a
  volume at an absolute path of its own;
- the Service's own annotations (service_validation.go, metadata_validation.go): no
  ``autoscaling.knative.dev`` one (it works only on the template), and a ``rollout-duration``
  a Go duration of whole seconds, not negative.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

AUTOSCALING = "autoscaling.knative.dev/"
KPA, HPA = "kpa.autoscaling.knative.dev", "hpa.autoscaling.knative.dev"
CHECKED = frozenset(AUTOSCALING + key for key in ("class", "min-scale", "max-scale", "initial-scale", "metric",
                                                  "target-burst-capacity"))
BURST = AUTOSCALING + "target-burst-capacity"
PROGRESS_DEADLINE = "serving.knative.dev/progress-deadline"
INT32_MAX = 2**31 - 1
PORT_NAMES = frozenset({"", "h2c", "http1"})
PROBE_FIELDS = frozenset({"httpGet", "tcpSocket", "exec", "grpc", "initialDelaySeconds", "timeoutSeconds",
                          "periodSeconds", "successThreshold", "failureThreshold"})
"""A probe's fields Serving 1.15's ``ProbeMask`` takes."""
HANDLER_FIELDS = {"httpGet": {"host", "path", "scheme", "httpHeaders", "port"}, "tcpSocket": {"host", "port"},
                  "exec": {"command"}, "grpc": {"port", "service"}}
"""Each probe handler's fields Serving's masks take (``HTTPGetActionMask`` and the rest)."""
_GO_DURATION = re.compile(r"^[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


ROLLOUT_DURATION = "serving.knative.dev/rollout-duration"


def service_problems(service: Mapping[str, Any]) -> list[str]:
    """What the webhook refuses in a Service: its own annotations, then its template's."""
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    problems = [f"metadata.annotations.{key}: autoscaling annotations must be put under "
                "spec.template.metadata.annotations to work" for key in sorted(annotations) if key.startswith(AUTOSCALING)]
    if annotations.get(ROLLOUT_DURATION) and not _whole_seconds(annotations[ROLLOUT_DURATION]):
        problems.append(f"metadata.annotations.{ROLLOUT_DURATION}: expected a Go duration of whole seconds, not "
                        f"negative, such as 300s, got {annotations[ROLLOUT_DURATION]!r}")
    return problems + template_problems(service["spec"]["template"])


def _whole_seconds(text: str) -> bool:
    """Whether ``text`` is a Go duration of whole seconds, not negative (``900s``, ``15m``)."""
    seconds = go_duration(text)
    return seconds is not None and seconds >= 0 and seconds == round(seconds)


def template_problems(template: Mapping[str, Any]) -> list[str]:
    """What the webhook refuses in a Service's ``spec.template`` (its annotations and pod spec)."""
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    return annotation_problems(annotations) + pod_problems(template.get("spec") or {})


def annotation_problems(annotations: Mapping[str, str]) -> list[str]:
    """What the webhook refuses in a revision template's annotations."""
    problems = [f"{key}: not checked here" for key in sorted(annotations)
                if key.startswith(AUTOSCALING) and key not in CHECKED]
    scale = {}
    for name in ("min-scale", "max-scale"):
        value = annotations.get(AUTOSCALING + name)
        scale[name] = 0 if value is None else _int32(value)
        if scale[name] is None:
            problems.append(f"{AUTOSCALING}{name}: expected an integer from 0 to {INT32_MAX}, got {value!r}")
    low, high = scale["min-scale"], scale["max-scale"]
    if low is not None and high is not None and high != 0 and high < low:
        problems.append(f"max-scale={high} is less than min-scale={low}")
    initial = annotations.get(AUTOSCALING + "initial-scale")
    if initial is not None and not (re.fullmatch(r"[+-]?\d+", initial) and int(initial) > 0):
        problems.append(f"{AUTOSCALING}initial-scale: expected an integer above 0 (0 only with "
                        f"allow-zero-initial-scale), got {initial!r}")
    problems += _class_problems(annotations)
    burst = annotations.get(BURST)
    if burst is not None and not _burst_capacity(burst):
        problems.append(f"{BURST}: expected a number not below 0, or -1 for no limit, got {burst!r}")
    deadline = annotations.get(PROGRESS_DEADLINE)
    if deadline and not _whole_seconds(deadline):
        problems.append(f"{PROGRESS_DEADLINE}: expected a Go duration of whole seconds, not negative, "
                        f"such as 900s, got {deadline!r}")
    return problems


def _class_problems(annotations: Mapping[str, str]) -> list[str]:
    """A ``class`` of Knative's domain that is neither KPA nor HPA; a ``metric`` its class refuses."""
    chosen = annotations.get(AUTOSCALING + "class")
    problems = []
    if chosen is not None and chosen.endswith("autoscaling.knative.dev") and chosen not in (KPA, HPA):
        problems.append(f"{AUTOSCALING}class: expected {KPA} or {HPA}, got {chosen!r}")
    metric = annotations.get(AUTOSCALING + "metric")
    refused = {KPA: lambda m: m not in ("concurrency", "rps"), HPA: lambda m: m == ""}
    if metric is not None and refused.get(chosen or KPA, lambda m: False)(metric):
        problems.append(f"{AUTOSCALING}metric: {metric!r} is no metric of the class {chosen or KPA}")
    return problems


def _burst_capacity(text: str) -> bool:
    """Whether Go's ``strconv.ParseFloat`` reads ``text`` (no spaces, no ``_`` between decimal
    digits) as a capacity the webhook takes: not below 0 (NaN is not), or -1."""
    if text != text.strip() or "_" in text:
        return False
    try:
        value = float(text)
    except ValueError:
        return False
    return not value < 0 or value == -1


def _int32(text: str) -> int | None:
    """``text`` as Go's ``strconv.ParseInt(text, 10, 32)`` reads it, where it is 0 or more."""
    if not re.fullmatch(r"[+-]?\d+", text):
        return None
    value = int(text)
    return value if 0 <= value <= INT32_MAX else None


def go_duration(text: str) -> float | None:
    """Seconds of a duration as Go's ``time.ParseDuration`` reads it (``900s``, ``1h30m``, ``0``),
    or None where it refuses it (a number without a unit, ``15 m``, ``PT15M``)."""
    if text in ("0", "+0", "-0"):
        return 0.0
    if not _GO_DURATION.match(text):
        return None
    sign = -1 if text.startswith("-") else 1
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    return sign * sum(float(number) * _UNITS[unit] for number, unit in parts)


def pod_problems(spec: Mapping[str, Any]) -> list[str]:
    """What the webhook refuses in a revision's ports, probes and volumes."""
    containers = spec.get("containers") or []
    serving = [c for c in containers if len(containers) == 1 or c.get("ports")][:1]
    port = ((serving[0].get("ports") or [{}])[0]) if serving else {}
    problems = _ports_count_problems(containers) + _port_problems(port)
    for index, container in enumerate(containers):
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if container.get(probe) is not None:
                problems += [f"containers[{index}].{probe}{problem}" for problem in
                             _probe_problems(container[probe], probe == "readinessProbe", port if
                                             container in serving else None)]
    return problems + _volume_problems(spec)


def _ports_count_problems(containers: list[Mapping[str, Any]]) -> list[str]:
    """Serving's one port: more than one across the containers is refused, and so is none where
    there are several (the serving container is the one with the port)."""
    ports = sum(len(container.get("ports") or []) for container in containers)
    if ports > 1:
        return ["ports: more than one container port is set"]
    return ["ports: missing, with more than one container"] if ports == 0 and len(containers) > 1 else []


def _port_problems(port: Mapping[str, Any]) -> list[str]:
    problems = [f"ports: {field} is not allowed" for field in sorted(set(port) & {"hostPort", "hostIP"})]
    if port.get("name", "") not in PORT_NAMES:
        problems.append(f"ports: Port name {port['name']} is not allowed (empty, or one of: 'h2c', 'http1')")
    if port.get("protocol", "TCP") != "TCP":
        problems.append(f"ports.protocol: expected TCP, got {port['protocol']!r}")
    return problems


def _probe_problems(probe: Mapping[str, Any], readiness: bool, port: Mapping[str, Any] | None) -> list[str]:
    """A probe's problems (``port``: the serving container's port, None for a sidecar's probe)."""
    problems = [f".{field} is not allowed" for field in sorted(set(probe) - PROBE_FIELDS)]
    handlers = [handler for handler in HANDLER_FIELDS if handler in probe]
    if len(handlers) != 1 and not (readiness and not handlers and port is not None):
        problems.append(f": expected exactly one of httpGet, tcpSocket, exec, grpc, got {handlers}")
    for handler in handlers:
        action = probe[handler] or {}
        problems += [f".{handler}.{field} is not allowed" for field in sorted(set(action) - HANDLER_FIELDS[handler])]
        named = action.get("port")
        if handler not in ("httpGet", "tcpSocket"):
            continue
        if port is not None and isinstance(named, str) and named != port.get("name"):
            problems.append(f".{handler}.port: {named!r}: Probe port must match container port")
        if port is None and named in (None, 0, ""):
            problems.append(f".{handler}.port: Probe port must be specified")
    return problems + (_readiness_problems(probe) if readiness else [])


def _readiness_problems(probe: Mapping[str, Any]) -> list[str]:
    """A readiness probe's numbers, as they are once Serving has defaulted them (a
    ``successThreshold`` of 0 to 1; with ``periodSeconds`` set, a ``failureThreshold`` of 0 to 3
    and a ``timeoutSeconds`` of 0 to 1): none negative; with ``periodSeconds`` 0, Knative's
    aggressive probing, no ``failureThreshold`` nor ``timeoutSeconds`` at all."""
    problems = [f".{field}: expected 0 or more, got {probe[field]}" for field in
                ("periodSeconds", "initialDelaySeconds", "successThreshold", "timeoutSeconds", "failureThreshold")
                if probe.get(field, 0) < 0]
    if probe.get("periodSeconds", 0) == 0:
        problems += [f".{field} is disallowed when periodSeconds is zero"
                     for field in ("failureThreshold", "timeoutSeconds") if probe.get(field)]
    return problems


def _volume_problems(spec: Mapping[str, Any]) -> list[str]:
    names = [volume["name"] for volume in spec.get("volumes") or []]
    mounts = [mount for kind in ("containers", "initContainers") for container in spec.get(kind) or []
              for mount in container.get("volumeMounts") or []]
    mounted = {mount["name"] for mount in mounts}
    problems = [f"volumes: duplicate volume name {name!r}" for name in sorted({n for n in names if names.count(n) > 1})]
    problems += [f"volumes: volume with name {name!r} not mounted" for name in names if name not in mounted]
    problems += [f"volumeMounts: {mount['name']!r} has no matching volume" for mount in mounts
                 if mount["name"] not in names]
    for kind in ("containers", "initContainers"):
        for index, container in enumerate(spec.get(kind) or []):
            paths = [_clean(mount["mountPath"]) for mount in container.get("volumeMounts") or []]
            problems += [f"{kind}[{index}].volumeMounts: mountPath {path!r} must be unique"
                         for path in sorted({p for p in paths if paths.count(p) > 1})]
            problems += [f"{kind}[{index}].volumeMounts: mountPath {path!r} is not absolute"
                         for path in paths if not path.startswith("/")]
    return problems


def _clean(path: str) -> str:
    """Go's ``path.Clean`` (unlike :func:`posixpath.normpath`, it keeps no leading ``//``)."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("/") else cleaned
