"""Whether the katuna revision has a ready pod, as the activator learns it.

The activator probes a pod it does not yet count healthy every 200 ms (``PROBE_FREQUENCY``,
revision_backends.go), through its queue-proxy, which runs the container's readiness probe; a
pod it counts healthy it drops once the kubelet marks it not ready (the Endpoints change): at
once, within the second the kubelet takes to notice, when the container ends; after
``failureThreshold`` failed probes (3 where none is given) when it answers but not as ready. The
emulator probes the container the same way every :data:`PROBE_PERIOD` seconds, whichever it
counts it: the container's ``readinessProbe`` (an ``httpGet`` path, ready on a status from
200 to 399, within its ``timeoutSeconds``; without one, Knative's TCP probe of the port), a
refused connection counting as the container ended.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

PROBE_PERIOD = 0.2
"""Seconds between probes (the activator's ``PROBE_FREQUENCY``)."""


@dataclass(frozen=True)
class Probe:
    """A container's readiness probe: ``path`` None for a TCP probe."""

    path: str | None = None
    timeout: float = 1.0
    failure_threshold: int = 3


def readiness_probe(service: Mapping[str, Any]) -> Probe:
    """The readiness probe of a Knative Service manifest's (first) container, with Kubernetes's
    defaults (``timeoutSeconds`` 1, ``failureThreshold`` 3)."""
    containers = service["spec"]["template"]["spec"].get("containers") or [{}]
    probe = containers[0].get("readinessProbe") or {}
    unknown = set(probe) - {"httpGet", "tcpSocket", "periodSeconds", "timeoutSeconds", "failureThreshold"}
    if unknown or set(probe.get("httpGet") or {}) - {"path", "port"}:
        raise ValueError(f"readinessProbe: {sorted(unknown) or probe['httpGet']} not emulated")
    return Probe((probe.get("httpGet") or {}).get("path") if "httpGet" in probe else None,
                 float(probe.get("timeoutSeconds", 1)), int(probe.get("failureThreshold", 3)))


class Readiness:
    """Probes of the container on ``port``, telling ``changed`` each time the pod becomes ready
    (True) or not (False); it starts not ready."""

    def __init__(self, port: int, probe: Probe, changed: Callable[[bool], None], period: float = PROBE_PERIOD) -> None:
        self.port, self.probe, self.changed, self.period = port, probe, changed, period
        self.ready = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            passed = self._probe()
            failures = 0 if passed else failures + 1
            if passed is None or failures >= self.probe.failure_threshold:
                self._set(False)
            elif passed:
                self._set(True)
            self._stop.wait(self.period)

    def _set(self, ready: bool) -> None:
        if ready != self.ready:
            self.ready = ready
            self.changed(ready)

    def _probe(self) -> bool | None:
        """True: ready; False: a failed probe; None: nothing listens (the container ended)."""
        if self.probe.path is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=self.probe.timeout).close()
                return True
            except ConnectionRefusedError:
                return None
            except OSError:
                return False
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.probe.timeout)
        try:
            connection.request("GET", self.probe.path, headers={"User-Agent": "kube-probe/1.33"})
            return 200 <= connection.getresponse().status < 400
        except ConnectionRefusedError:
            return None
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.probe.timeout + 5)
