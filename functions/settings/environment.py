"""The values of :class:`functions.settings.Settings` that the process's environment holds,
read once by :meth:`~functions.settings.Settings.from_env`: the ``KATUNA_*`` variables
(:mod:`functions.settings.variables`), those Knative and Kubernetes set, and what they imply
(the database a command finds by itself, the bound on the trials running at once by default)."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from functions import reporter
from functions.core.limits import PREFIX
from functions.core.records import LOCAL
from functions.settings.values import ce_overrides, converted, study_limits
from functions.settings.variables import VARIABLES, default_running_trials

DEFAULT_DB = Path("katuna.db")
"""The database where ``KATUNA_DB`` names none."""


POD_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
"""Where Kubernetes writes the namespace of a pod's service account (the pod's own namespace)."""


def _pod_namespace() -> str | None:
    """The namespace this pod runs in, as its service account's mounted files tell it; None
    where they are not mounted."""
    try:
        return POD_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


def from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings' values ``env`` holds, by field, each converted
    (:func:`~functions.settings.values.converted`);
    :class:`~functions.core.errors.InvalidSetting` naming the first variable katuna cannot use
    (checked across settings later, :func:`~functions.settings.checks.check`)."""
    values = {field: converted(PREFIX + name, kind, env[PREFIX + name])
              for field, (name, kind) in VARIABLES.items() if env.get(PREFIX + name)}
    if env.get("K_SINK"):
        values["sink"] = env["K_SINK"]
        values.setdefault("report_url", env["K_SINK"])
    if env.get("K_CA_CERTS"):
        values["sink_ca_certs"] = env["K_CA_CERTS"]
    values["ce_overrides"] = ce_overrides(env.get(reporter.OVERRIDES, ""))
    values["found_db"] = values.get("db", DEFAULT_DB)
    values["in_cluster"] = bool(env.get("KUBERNETES_SERVICE_HOST"))
    values["host"] = socket.gethostname()
    if env.get("K_SERVICE"):
        values["knative_service"] = env["K_SERVICE"]
        values["service_namespace"] = _pod_namespace()
    values["limits"] = study_limits(env)
    if "max_running_trials" not in values:
        values["max_running_trials"] = default_running_trials(values.get("executor", LOCAL))
        values["running_trials_by_default"] = True
    return values
