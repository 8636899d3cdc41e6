"""Whether katuna may create a study's trial workloads where they would run, and whether the
cluster takes them, asked of the API server before the study is stored.

First a SelfSubjectAccessReview, which every account may make: a study naming a namespace where
katuna's Role is not bound, or a workload kind katuna is not granted (a ``knative/trial-kinds/``
component not deployed), is refused, naming the field, instead of failing at its first trial;
so is a study with early stopping where katuna may not create the Secrets of its report tokens.
Then, for a ``trialSpec``, the first trial's workload is created in a dry run (``dryRun=All``),
each parameter at its lowest value: the API server validates and defaults it, and its admission
webhooks see it, as they will every trial's, and nothing is stored. Every kind's is sent with
``fieldValidation=Strict``: a field its schema does not have (a Job's ``comand``, a PyTorchJob's
``pytorchReplicaSpec`` or ``restartpolicy``) is refused at its path, as Katib's webhook refuses
it in a Job, where the API server would drop it (a CRD's schema prunes it) and the trials would
run without it: the image's own command, the operator's default restart policy. What it refuses
as invalid (422) is refused as ``trialTemplate.trialSpec`` at the API's field path, what it
cannot decode (400: a quantity that is no quantity, a field of the wrong type) as
``trialTemplate.trialSpec`` with its message, and what the typed client refuses before sending it (a Job whose value is of
a type its model does not take) at the field the client names; what it forbids (403, an
admission webhook) is refused as the review's refusals are. Two answers mean the workload was
valid: the name being taken (409), and the namespace's ResourceQuota full (a 403 saying
``exceeded quota``: the API server's quota admission charges a dry run as any create, after
validation, and it says nothing of the workload but that there is no room now; the trials wait
for the quota, as every study's do). Other errors are translated as every API call's
(:func:`~functions.adapters.kubernetes_client.translate`): a temporary one (5xx, unreachable)
refuses nothing, and the submission is to be made again.
"""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import call, client_refusals, over_quota, status_body, translate
from functions.adapters.kubernetes_discovery import served_resource
from functions.adapters.kubernetes_fields import DENIED_BY_WEBHOOK, kind_label, strict_refusals, webhook_refusals
from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy, PermanentError, Problem
from functions.core.job import render_trial
from functions.core.launch import first_launch
from functions.core.spec import Study
from functions.core.trial_spec import template_field

JOB = {"apiVersion": "batch/v1", "kind": "Job"}
"""The workload of a study without a ``trialSpec``."""

GRANTED_BY = "a kind of knative/trial-kinds/ is granted by deploying its component"
TRIAL_SPEC = "trialTemplate.trialSpec"


class Access:
    """Asks the API server what this service's account may do and what it takes; ``defaults``
    are the service's trial settings (``namespace``: where the trials of a study naming none run)."""

    def __init__(self, api: client.ApiClient, defaults: Cluster, hands_tokens: bool = False) -> None:
        self._reviews = client.AuthorizationV1Api(api)
        self._batch = client.BatchV1Api(api)
        self._objects = client.CustomObjectsApi(api)
        self._defaults = defaults
        self._default_namespace = defaults.namespace or "default"
        self._hands_tokens = hands_tokens

    def refusal(self, spec: Study) -> Problem | None:
        """Why katuna may not create the study's trial workloads where they would run, or the
        Secrets that hand them their report tokens; None where it may. ``InvalidStudy`` where
        the API server refuses the first trial's ``trialSpec`` workload as invalid (:meth:`_dry_run`)."""
        forbidden = self._access(spec)
        if forbidden is None and spec.trial_template.trial_spec is not None:
            forbidden = self._dry_run(spec)
        return forbidden or self._token_refusal(spec)

    def _token_refusal(self, spec: Study) -> Problem | None:
        """Why katuna may not create the Secret each attempt of a study with early stopping reads
        its report token from (:mod:`~functions.adapters.kubernetes_report_secrets`), where the
        trials run; None where it may, or where no token is handed (no early stopping, or no
        ``KATUNA_REPORT_URL``). Refused here, a study whose every attempt would fail at its
        launch is not stored."""
        if not (self._hands_tokens and spec.early_stopping):
            return None
        namespace = spec.kubernetes.namespace or self._default_namespace
        if self._may_create(namespace, "", "secrets"):
            return None
        return Problem("earlyStopping", f"katuna may not create secrets in namespace {namespace!r}, where this "
                                        f"study's trials run: each attempt of a study with early stopping reads its "
                                        f"report token from a Secret katuna creates. Grant its account create and "
                                        f"deletecollection on secrets there (the katuna-trials ClusterRole does), or leave "
                                        f"early stopping out")

    def _access(self, spec: Study) -> Problem | None:
        """The review's refusal; None where katuna may create the workload, or where the study
        names no namespace and runs Jobs (in the service's own namespace, which the operator binds)."""
        named = spec.kubernetes.namespace
        group, _, plural = served_resource(self._objects, spec.trial_template.trial_spec or JOB)
        jobs = (group, plural) == ("batch", "jobs")
        if named is None and jobs:
            return None
        if self._may_create(named or self._default_namespace, group, plural):
            return None
        return _forbidden(spec, _what(group, plural), named or self._default_namespace, None)

    def _may_create(self, namespace: str, group: str, plural: str) -> bool:
        attributes = client.V1ResourceAttributes(namespace=namespace, verb="create", group=group, resource=plural)
        review = client.V1SelfSubjectAccessReview(
            api_version="authorization.k8s.io/v1", kind="SelfSubjectAccessReview",
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes))
        answer = call(lambda: self._reviews.create_self_subject_access_review(review),
                      f"review katuna's access to namespace {namespace}")
        return answer.status is not None and bool(answer.status.allowed)

    def _dry_run(self, spec: Study) -> Problem | None:
        """Create the first trial's workload with ``dryRun=All`` where it would run; see the
        module's docstring for what each answer means. A first trial katuna itself would not
        launch (a value making a label Kubernetes refuses) is left to fail at its launch."""
        launch = first_launch(spec)
        try:
            workload = render_trial(launch, self._defaults)
        except PermanentError:
            return None
        namespace = (launch.cluster or Cluster()).with_defaults(self._defaults).namespace or "default"
        group, version, plural = served_resource(self._objects, workload)
        doing = f"create {_what(group, plural)} {launch.job_name} in namespace {namespace} (a dry run)"
        try:
            self._create(namespace, (group, version, plural), workload)
        except ApiException as exc:
            if exc.status == 409 or over_quota(exc):
                return None
            if exc.status in (400, 422) or (exc.status == 403 and _message(exc).startswith(DENIED_BY_WEBHOOK)):
                raise InvalidStudy(_invalid(exc, workload)) from exc
            if exc.status == 403:
                return _forbidden(spec, _what(group, plural), namespace, _message(exc))
            raise translate(exc, doing) from exc
        except HTTPError as exc:
            raise translate(exc, doing) from exc
        except ValidationError as exc:
            refused = f"Kubernetes' client refuses the first trial's {workload.get('kind')} before sending it"
            raise InvalidStudy(client_refusals(exc, TRIAL_SPEC, refused)) from exc
        return None

    def _create(self, namespace: str, resource: tuple[str, str, str], workload: dict[str, Any]) -> None:
        group, version, plural = resource
        if (group, plural) == ("batch", "jobs"):
            # The client checks the dict against its V1Job model, then sends it as it is. Strict
            # (every kind): a field the kind does not have is refused, as Katib's webhook refuses
            # it in a Job, not dropped.
            self._batch.create_namespaced_job(namespace, cast(client.V1Job, workload), dry_run="All",
                                              field_validation="Strict")
        else:
            self._objects.create_namespaced_custom_object(group, version, namespace, plural, workload, dry_run="All",
                                                          field_validation="Strict")


def _what(group: str, plural: str) -> str:
    return plural + ("." + group if group else "")


def _forbidden(spec: Study, what: str, namespace: str, why: str | None) -> Problem:
    """The refusal of a study whose trial workload katuna may not create in ``namespace``,
    naming the field that chose it: for the reason the API server gave (``why``: it forbade
    the dry run's create), else as the access review answered."""
    field = "kubernetes.namespace" if spec.kubernetes.namespace is not None else TRIAL_SPEC
    if why is not None:
        return Problem(field, f"Kubernetes forbids katuna to create {what} in namespace {namespace!r}: {why}")
    if field == TRIAL_SPEC:
        return Problem(field, f"katuna may not create {what} in namespace {namespace!r}, where this study's trials "
                              f"run: grant its account that kind there ({GRANTED_BY}), or use a kind it may create")
    granted = "" if what == "jobs.batch" else f" with this kind granted ({GRANTED_BY})"
    return Problem(field, f"katuna may not create {what} in namespace {namespace!r}: bind the katuna-trials "
                          f"ClusterRole to its account there{granted}, or run the trials in a namespace where it is "
                          f"bound")


def _invalid(exc: ApiException, workload: dict[str, Any]) -> list[Problem]:
    """The API server's reasons for refusing the first trial's workload, each at its field
    under the ``trialSpec`` (the workload is the ``trialSpec`` filled in, a Job's
    ``podFailurePolicy`` rules after katuna's own: :func:`~functions.core.trial_spec.template_field`):
    the fields strict field validation refused as unknown, else what it found invalid."""
    kind = str(workload.get("kind"))
    own = template_field if kind == "Job" else str
    unknown = strict_refusals(exc, TRIAL_SPEC, kind_label(workload), own)
    if unknown:
        return unknown
    causes = (status_body(exc).get("details") or {}).get("causes") or []
    refused = f"the API server refuses the first trial's {kind} (a dry run of its create)"
    problems = [Problem(f"{TRIAL_SPEC}.{own(c['field'])}" if c.get("field") else TRIAL_SPEC,
                        f"{c.get('message', '')}: {refused}") for c in causes]
    return problems or webhook_refusals(_message(exc), TRIAL_SPEC, refused, own) or \
        [Problem(TRIAL_SPEC, f"{_message(exc)}: {refused}")]


def _message(exc: ApiException) -> str:
    return str(status_body(exc).get("message") or exc.reason)
