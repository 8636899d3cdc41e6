"""The Kubernetes versions the objects katuna makes and ships are validated at: the oldest it
supports (docs/kubernetes.md, "Kubernetes versions") and the newest kubernetes-validate knows.
A field the oldest lacks fails there, as its API server would refuse it."""

from __future__ import annotations

import subprocess
import sys

from kubernetes_validate.utils import latest_version

OLDEST = "1.28.0"
"""The oldest Kubernetes katuna supports: Knative Serving and Eventing 1.15's and 1.16's minimum."""
NEWEST = latest_version()
VERSIONS = (OLDEST, NEWEST)


def validate_strictly(paths: list[str], stdin: str | None = None) -> list[str]:
    """Run ``kubernetes_validate --strict`` on ``paths`` (``-`` reads ``stdin``) at each of
    :data:`VERSIONS`, asserting it passes at each; the output of each run, in that order."""
    outputs = []
    for version in VERSIONS:
        result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, *paths],
                                input=stdin, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"Kubernetes {version}:\n{result.stdout}{result.stderr}"
        outputs.append(result.stdout)
    return outputs
