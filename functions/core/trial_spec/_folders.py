"""The working folders of a ``trialSpec``'s pods where its trials run as workloads on a cluster:
a container runs in an absolute folder of its image only."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from functions.core import workload_pods
from functions.core.errors import Problem
from functions.core.trial_spec._shapes import PATH

POSIX_ABSOLUTE = re.compile(r"^/")
"""An absolute folder of a Linux container."""
WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:)?[\\/]")
"""An absolute folder of a Windows container: ``C:\\app``, ``C:/app``, or one rooted on the
current drive (``\\app``, ``/app``)."""
OS_LABEL = "kubernetes.io/os"
"""The node label a pod selects Windows nodes by, where its spec names no ``os``."""


def relative_pod_folders(trial_spec: Mapping[str, Any]) -> list[Problem]:
    """The ``workingDir`` of each container or init container of the workload's pod templates
    that names a relative folder (``src``, ``.``), where no placeholder begins it. The API server
    takes it, but the container runtime refuses it, as the OCI runtime spec has it (``cwd``
    "MUST be an absolute path"; runc: "cwd must be an absolute path"): the pod never starts, in
    every trial. A Windows pod's folder is absolute as Windows has it (:func:`windows_pod`:
    ``C:\\app``). Locally such a folder is one of the study's machine (:func:`local_folder`), so
    this is checked only where trials run on a cluster. One a placeholder begins is known per
    trial only."""
    problems = []
    for path, _, pod in workload_pods.pod_specs(trial_spec):
        absolute = WINDOWS_ABSOLUTE if windows_pod(pod) else POSIX_ABSOLUTE
        for key in ("containers", "initContainers"):
            listed = pod.get(key)
            for i, container in enumerate(listed if isinstance(listed, list) else []):
                folder = container.get("workingDir") if isinstance(container, Mapping) else None
                if isinstance(folder, str) and folder and not folder.startswith("${") and not absolute.match(folder):
                    problems.append(Problem(f"{PATH}.{path}.spec.{key}[{i}].workingDir", (
                        "expected an absolute folder of the image for trials run on Kubernetes (a container runs "
                        f"in no relative one), or none for the image's own working directory; got {folder!r}")))
    return problems


def windows_pod(pod: Mapping[str, Any]) -> bool:
    """Whether the pod runs on Windows nodes: its ``os.name`` says so, or, without one, its
    ``nodeSelector`` asks for them (``kubernetes.io/os: windows``, as pods did before ``os``)."""
    given = pod.get("os")
    if isinstance(given, Mapping) and given.get("name") is not None:
        return given.get("name") == "windows"
    selector = pod.get("nodeSelector")
    return isinstance(selector, Mapping) and selector.get(OS_LABEL) == "windows"
