"""Trial workloads of any kind but ``batch/v1`` Job, through the custom objects API (the
dynamic client): create (an existing one is success), read, delete with their pods, and the end
Katib's ``successCondition`` / ``failureCondition`` read from them.

The Job executor (:mod:`functions.adapters.kubernetes_executor`) hands a trial here when its
``trialSpec`` is another kind; the two share the client and the translation of API errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from functions.core import gjson, trial_kinds
from functions.core.cluster import STUDY_LABEL, TRIAL_LABEL
from functions.core.launch import TrialLaunch

Translate = Callable[[Exception, str], Exception]


@dataclass(frozen=True)
class End:
    """How a workload ended by its conditions: ``succeeded``, and the condition's reason and message."""

    succeeded: bool
    reason: str
    message: str


def pod_selector(launch: TrialLaunch) -> str:
    """The label selector of the attempt's primary pods: the label the kind's controller puts on
    each pod it makes, valued with the workload's name, and the primary pod labels."""
    spec = launch.trial_spec or {}
    known = trial_kinds.kind_of(spec)
    owner = known.owner_label if known is not None else None
    terms = [f"{owner}={launch.job_name}"] if owner else []
    terms += [f"{k}={v}" for k, v in sorted(trial_kinds.primary_pod_labels(spec, launch.primary_pod_labels).items())]
    return ",".join(terms)


def end(launch: TrialLaunch, workload: Mapping[str, Any]) -> End | None:
    """The workload's end by the study's conditions (else its kind's): failure is read first, as
    Katib reads it; None while neither holds."""
    success, failure = trial_kinds.conditions(launch.trial_spec or {}, launch.success_condition,
                                              launch.failure_condition)
    for path, succeeded in ((failure, False), (success, True)):
        found = gjson.holds(workload, path) if path else None
        if found is not None:
            return End(succeeded, str(found.get("reason") or ""), str(found.get("message") or ""))
    return None


def created_at(workload: Mapping[str, Any]) -> float | None:
    """When the workload was created (seconds since the epoch), from its metadata."""
    stamp = (workload.get("metadata") or {}).get("creationTimestamp")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if isinstance(stamp, str) else None


class Workloads:
    """Create, read and delete trial workloads through the custom objects API."""

    def __init__(self, api: client.ApiClient, translate: Translate) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._translate = translate

    def create(self, namespace: str, workload: Mapping[str, Any]) -> None:
        """Create the workload; one that exists already (409) is success. A kind the cluster does
        not serve (404: its operator is not installed) is refused for good."""
        group, version, plural = trial_kinds.resource(workload)
        name = workload["metadata"]["name"]
        try:
            self._objects.create_namespaced_custom_object(group, version, namespace, plural, dict(workload))
        except ApiException as exc:
            if exc.status != 409:
                raise self._translate(exc, f"create {workload.get('kind')} {name} ({plural}.{group}/{version}; "
                                           "is its operator installed and katuna's Role granted it?)") from exc
        except HTTPError as exc:
            raise self._translate(exc, f"create {workload.get('kind')} {name}") from exc

    def get(self, launch: TrialLaunch, namespace: str) -> Mapping[str, Any] | None:
        """The attempt's workload as the API has it; None when it is not there."""
        group, version, plural = trial_kinds.resource(launch.trial_spec or {})
        try:
            return cast(Mapping[str, Any], self._objects.get_namespaced_custom_object(
                group, version, namespace, plural, launch.job_name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._translate(exc, f"read {plural} {launch.job_name} ({plural}.{group}/{version}; "
                                       "is its operator installed and katuna's Role granted it?)") from exc
        except HTTPError as exc:
            raise self._translate(exc, f"read {plural} {launch.job_name}") from exc

    def delete_trial(self, launch: TrialLaunch, namespace: str) -> None:
        """Delete every workload of the trial (each attempt's), with their pods (``Background``)."""
        group, version, plural = trial_kinds.resource(launch.trial_spec or {})
        selector = f"{STUDY_LABEL}={launch.study},{TRIAL_LABEL}={launch.number}"
        try:
            found = cast(Mapping[str, Any], self._objects.list_namespaced_custom_object(
                group, version, namespace, plural, label_selector=selector))
            for item in found.get("items") or []:
                try:
                    self._objects.delete_namespaced_custom_object(group, version, namespace, plural,
                                                                  item["metadata"]["name"],
                                                                  propagation_policy="Background")
                except ApiException as exc:
                    if exc.status != 404:
                        raise
        except (ApiException, HTTPError) as exc:
            raise self._translate(exc, f"delete the {plural} of trial {launch.number}") from exc
