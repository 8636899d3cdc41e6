"""The working folders of a ``trialSpec``'s pods where its trials run as workloads on a cluster:
a container runs in an absolute folder of its image only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import trial_kinds
from functions.core.errors import Problem
from functions.core.trial_spec._shapes import PATH


def relative_pod_folders(trial_spec: Mapping[str, Any]) -> list[Problem]:
    """The ``workingDir`` of each container or init container of the workload's pod templates
    that names a relative folder (``src``, ``.``), where no placeholder begins it. The API server
    takes it, but the container runtime refuses it, as the OCI runtime spec has it (``cwd``
    "MUST be an absolute path"; runc: "cwd must be an absolute path"): the pod never starts, in
    every trial. Locally such a folder is one of the study's machine (:func:`local_folder`), so
    this is checked only where trials run on a cluster. One a placeholder begins is known per
    trial only."""
    problems = []
    for path, _, pod in trial_kinds.pod_specs(trial_spec):
        for key in ("containers", "initContainers"):
            listed = pod.get(key)
            for i, container in enumerate(listed if isinstance(listed, list) else []):
                folder = container.get("workingDir") if isinstance(container, Mapping) else None
                if isinstance(folder, str) and folder and not folder.startswith(("/", "${")):
                    problems.append(Problem(f"{PATH}.{path}.spec.{key}[{i}].workingDir", (
                        "expected an absolute folder of the image for trials run on Kubernetes (a container runs "
                        f"in no relative one), or none for the image's own working directory; got {folder!r}")))
    return problems
