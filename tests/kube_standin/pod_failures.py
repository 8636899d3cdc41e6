"""How the Job controller judges a failed pod by its Job's ``podFailurePolicy``
(``matchPodFailurePolicy``, pkg/controller/job/pod_failure_policy.go): the first rule that
matches it gives the action (``Count`` where none does); and which pods count as failed
(:func:`failed`)."""

from __future__ import annotations


def failed(job: dict, pod: dict) -> bool:
    """Whether the Job controller counts ``pod`` as failed (``isPodFailed``, job_controller.go):
    a ``Failed`` one, and under ``podReplacementPolicy: TerminatingOrFailed`` (the default of a
    Job without ``podFailurePolicy``) one deleted and not ``Succeeded`` too, while it still
    terminates: that Job counts it, and replaces it, at once."""
    phase = pod["status"].get("phase")
    spec = job["spec"]
    default = "Failed" if spec.get("podFailurePolicy") is not None else "TerminatingOrFailed"
    terminating = bool(pod["metadata"].get("deletionTimestamp")) and phase != "Succeeded"
    return phase == "Failed" or (terminating and spec.get("podReplacementPolicy", default) == "TerminatingOrFailed")


def failure_action(job: dict, pod: dict) -> tuple[str, str | None]:
    """``(action, message)`` of the first podFailurePolicy rule matching the failed ``pod``."""
    for index, rule in enumerate((job["spec"].get("podFailurePolicy") or {}).get("rules", [])):
        if _rule_matches(rule, pod):
            container = _terminated(pod)
            message = (f"Container {container[0]} for pod {pod['metadata']['namespace']}/{pod['metadata']['name']} "
                       f"failed with exit code {container[1]} matching {rule['action']} rule at index {index}"
                       if container else None)
            return rule["action"], message
    return "Count", None


def _rule_matches(rule: dict, pod: dict) -> bool:
    if "onPodConditions" in rule:
        have = {(c["type"], c["status"]) for c in pod["status"].get("conditions", [])}
        return any((p["type"], p.get("status", "True")) in have for p in rule["onPodConditions"])
    codes = rule.get("onExitCodes")
    if not codes:
        return False
    for status in _statuses(pod):
        terminated = status.get("state", {}).get("terminated")
        if terminated is None or terminated["exitCode"] == 0:
            continue
        if codes.get("containerName") not in (None, status["name"]):
            continue
        if (terminated["exitCode"] in codes["values"]) == (codes["operator"] == "In"):
            return True
    return False


def _terminated(pod: dict) -> tuple[str, int] | None:
    for status in _statuses(pod):
        terminated = status.get("state", {}).get("terminated")
        if terminated and terminated["exitCode"] != 0:
            return status["name"], terminated["exitCode"]
    return None


def _statuses(pod: dict) -> list[dict]:
    """The pod's containers' statuses, then its init containers': a ``podFailurePolicy``'s
    ``onExitCodes`` matches either (``matchOnExitCodes``, pod_failure_policy.go)."""
    return [*pod["status"].get("containerStatuses", []), *pod["status"].get("initContainerStatuses", [])]
