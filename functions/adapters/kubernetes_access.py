"""Whether katuna may create a study's trial workloads where they would run, asked of the API
server before the study is stored (a SelfSubjectAccessReview, which every account may make): a
study naming a namespace where katuna's Role is not bound, or a workload kind katuna is not
granted (a ``knative/trial-kinds/`` component not deployed), is refused, naming the field,
instead of failing at its first trial.
"""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import translate
from functions.core import trial_kinds
from functions.core.errors import Problem
from functions.core.spec import Study

JOB = {"apiVersion": "batch/v1", "kind": "Job"}
"""The workload of a study without a ``trialSpec``."""

GRANTED_BY = "a kind of knative/trial-kinds/ is granted by deploying its component"


class Access:
    """Asks the API server what this service's account may do; ``default_namespace`` is where
    the trials of a study naming none run."""

    def __init__(self, api: client.ApiClient, default_namespace: str) -> None:
        self._reviews = client.AuthorizationV1Api(api)
        self._default_namespace = default_namespace

    def refusal(self, spec: Study) -> Problem | None:
        """Why katuna may not create the study's trial workloads where they would run; None where
        it may, or where the study names no namespace and runs Jobs (in the service's own
        namespace, which the operator binds)."""
        named = spec.kubernetes.namespace
        group, _, plural = trial_kinds.resource(spec.trial_template.trial_spec or JOB)
        jobs = (group, plural) == ("batch", "jobs")
        if named is None and jobs:
            return None
        if self._may_create(named or self._default_namespace, group, plural):
            return None
        what = plural + ("." + group if group else "")
        if named is not None:
            granted = "" if jobs else f" with this kind granted ({GRANTED_BY})"
            return Problem("kubernetes.namespace", f"katuna may not create {what} in namespace {named!r}: bind the "
                                                   f"katuna-trials ClusterRole to its account there{granted}, or "
                                                   f"run the trials in a namespace where it is bound")
        return Problem("trialTemplate.trialSpec", f"katuna may not create {what} in namespace "
                                                  f"{self._default_namespace!r}, where this study's trials run: grant "
                                                  f"its account that kind there ({GRANTED_BY}), or use a kind it may "
                                                  f"create")

    def _may_create(self, namespace: str, group: str, plural: str) -> bool:
        attributes = client.V1ResourceAttributes(namespace=namespace, verb="create", group=group, resource=plural)
        review = client.V1SelfSubjectAccessReview(
            api_version="authorization.k8s.io/v1", kind="SelfSubjectAccessReview",
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes))
        try:
            answer = self._reviews.create_self_subject_access_review(review)
        except (ApiException, HTTPError) as exc:
            raise translate(exc, f"review katuna's access to namespace {namespace}") from exc
        return answer.status is not None and bool(answer.status.allowed)
