"""Whether katuna may create a study's trial workloads in the namespace the study names, asked
of the API server before the study is stored (a SelfSubjectAccessReview, which every account may
make): a study naming a namespace where katuna's Role is not bound is refused, naming the field,
instead of failing at its first trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import translate
from functions.core import trial_kinds
from functions.core.spec import Study

JOB = {"apiVersion": "batch/v1", "kind": "Job"}
"""The workload of a study without a ``trialSpec``."""


class Access:
    """Asks the API server what this service's account may do."""

    def __init__(self, api: client.ApiClient) -> None:
        self._reviews = client.AuthorizationV1Api(api)

    def refusal(self, spec: Study) -> str | None:
        """Why katuna may not create the study's trial workloads in the namespace it names;
        None where it may, or where the study names none (the service's own is the operator's)."""
        namespace = spec.kubernetes.namespace
        if namespace is None:
            return None
        workload: Mapping[str, Any] = spec.trial_template.trial_spec or JOB
        group, _, plural = trial_kinds.resource(workload)
        attributes = client.V1ResourceAttributes(namespace=namespace, verb="create", group=group, resource=plural)
        review = client.V1SelfSubjectAccessReview(
            api_version="authorization.k8s.io/v1", kind="SelfSubjectAccessReview",
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes))
        try:
            answer = self._reviews.create_self_subject_access_review(review)
        except (ApiException, HTTPError) as exc:
            raise translate(exc, f"review katuna's access to namespace {namespace}") from exc
        if answer.status is not None and answer.status.allowed:
            return None
        return (f"katuna may not create {plural}{'.' + group if group else ''} in namespace {namespace!r}: bind the "
                f"katuna-trials ClusterRole to its account there, or run the trials in a namespace where it is bound")
