"""What of the katuna service's a trial's pods may never have: its service accounts and its Secrets.

The service's account holds its RBAC (create and delete Jobs, write study status) and, bound
through Workload Identity, IRSA or Pod Identity, its cloud identity (node pools, the cluster).
Trial code runs as whatever account its pods name, so a study naming one of the service's
accounts anywhere a pod's account can come from is refused: the ``kubernetes`` section, and
every ``serviceAccountName`` (or a pod's older ``serviceAccount``, or a Tekton
``taskServiceAccountName``) anywhere in a ``trialSpec``, whatever its kind (a Job's or a
Training Operator job's pod templates, a JobSet's, a TrainJob's ``podSpecOverrides``, an Argo
Workflow's and its executor's, a Tekton PipelineRun's). So is an account that katuna takes
events from (``KATUNA_OIDC_SUBJECTS``, a Trigger's OIDC account: :mod:`functions.core.senders`)
in the namespace the trials run in: a trial running as one could have its token for katuna's
audience taken as the broker's delivery.

The service's Secrets (the token that authorizes writes to its API) live in the namespace its
trials run in by default, and the API server lets katuna create a pod that reads any of them. So
a study naming one of them anywhere a pod, or the controller of a workload kind, takes a
Secret's name from is refused too (:func:`secret_field`): an env ``valueFrom.secretKeyRef``, an
``envFrom`` ``secretRef``, a ``secret`` or ``projected`` volume, a CSI volume's
``nodePublishSecretRef``, the ``secretRef`` of the other volume plugins, a Tekton workspace, an
Argo artifact's credentials, and ``imagePullSecrets`` (the study's ``kubernetes`` section's or a
pod's). Either name is refused in every namespace: it is the service's, and a trial has no use
for one of that name elsewhere.

An Argo ``podSpecPatch`` is a pod spec fragment in a string, merged into the pods Argo makes: the
fields it sets are checked as a pod spec's, at their paths in it
(``spec.templates[0].podSpecPatch.serviceAccountName``), and a patch katuna cannot read as Argo
does is refused (:mod:`functions.core.pod_spec_patch`). A field name is matched whatever its
case, as Argo's decoder of a patch matches it (the API server drops such a field elsewhere, so
refusing it there costs nothing).

The service's database is a PersistentVolumeClaim of that namespace too (``katuna-data``): a
pod scheduled beside the service's could mount it, read every study's report key and write a
study of its own; a study mounting one of the service's claims (``KATUNA_SERVICE_CLAIMS``) is
refused. So is one naming a Secret of an attempt's report token (``<job>.report``, katuna's own:
:func:`functions.core.report_token.holder_name`), which would let its trial report for another.

A name holding an expression that Argo (``{{...}}``) or Tekton (``$(...)``) fills in is refused
too: the controller fills it in after katuna's check, perhaps from an earlier step's outputs,
which trial code writes, so it could be any name.

A Tekton Task or Pipeline named by reference (a ``taskRef``, ``pipelineRef`` or a step's ``ref``:
fetched by a resolver from a git repository, a URL or an OCI bundle anyone may write, or held in
the cluster) and an Argo WorkflowTemplate (``workflowTemplateRef``, ``templateRef``) give the
trial's pods steps, volumes, accounts and securityContexts katuna never reads, which could name
any of the above or the node itself: such a reference is refused (:func:`_unseen`); the study
writes its tasks and templates inline (``taskSpec``, ``pipelineSpec``, Argo's ``templates``).
An Argo ``resource`` template creates the manifest it holds, any kind, with the Workflow's
account: katuna reads neither its kind (``KATUNA_TRIAL_KINDS``) nor its pods, so it is refused
at its ``resource`` (:func:`_manifests`); a step runs as a ``container`` or ``script`` template.

Last, a ``trialSpec`` is created with the service's own permissions, which reach objects that are
no workload (Events, Secrets, Katib's Trials and Suggestions, the kinds of ``knative/``): one of a
kind katuna does not run (:func:`functions.core.trial_kinds.taken`: the kinds it knows and the
operator's ``KATUNA_TRIAL_KINDS``) is refused at ``trialTemplate.trialSpec.kind`` (:func:`_kind`).

A value with a placeholder is known only at launch: the rendered workload is checked again
(:func:`check_launch`), and the launch fails for good if a parameter made it one of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from functions.core import pod_security, pod_spec_patch, report_token, senders, template, trial_kinds
from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy, Problem, RefusedWorkload
from functions.core.spec import Study
from functions.core.trial_spec import PATH

ACCOUNT_FIELDS = frozenset({"serviceaccountname", "serviceaccount", "taskserviceaccountname"})
"""The keys (lower-cased) that name the service account pods run as, in any workload kind katuna renders."""
SECRET_HOLDERS = ("secret", "secrets", "secretref", "secretkeyref")
"""How the key of an object whose ``name`` is a Secret's ends (lower-cased): ``secretKeyRef``,
``secretRef``, ``nodePublishSecretRef``, a projected source's ``secret``, ``imagePullSecrets``,
Argo's ``accessKeySecret`` and the like."""
REFERENCES = frozenset({"taskref", "pipelineref", "workflowtemplateref", "templateref"})
"""The keys (lower-cased) of a reference to a Tekton Task or Pipeline, or to an Argo
WorkflowTemplate's templates, whose pod specs katuna cannot read; and a Tekton step's ``ref``
(a StepAction) under :data:`STEP_REFERENCE`."""
STEP_REFERENCE = re.compile(r"\.steps\[\d+\]\.ref\.", re.IGNORECASE)
ENGINE_EXPRESSION = re.compile(r"\{\{|\$\(")
"""An expression a workload's controller fills in itself: Argo's ``{{...}}``, Tekton's ``$(...)``.
No Kubernetes name holds these characters."""


def _named(path: str) -> bool:
    """Whether the string at ``path`` is a field naming a service account."""
    return path.rpartition(".")[2].lower() in ACCOUNT_FIELDS


def secret_field(path: str) -> bool:
    """Whether the string at ``path`` is a field naming a Secret: a ``secretName`` (a ``secret``
    volume's, an ``azureFile`` volume's, a Tekton workspace's), or the ``name`` of a reference
    whose key says it is a Secret's."""
    parent, _, key = path.rpartition(".")
    if key.lower() == "secretname":
        return True
    holder = parent.rpartition(".")[2].partition("[")[0].lower()
    return key.lower() == "name" and holder.endswith(SECRET_HOLDERS)


def _account(path: str, account: str) -> Problem:
    return Problem(path, f"{account!r} is the katuna service's own service account, which holds its Kubernetes and "
                         "cloud permissions; trials may never run as it: name an account made for trials (or none)")


def _secret(path: str, secret: str) -> Problem:
    return Problem(path, f"{secret!r} is one of the katuna service's own Secrets (such as the token that authorizes "
                         "writes to its API); trials may never read it: name a Secret made for trials")


def _filled_later(path: str, value: str) -> Problem:
    return Problem(path, f"{value!r} holds an expression the workload's controller fills in (Argo's {{{{...}}}}, "
                         "Tekton's $(...)) after katuna checks the trial, perhaps from an earlier step's outputs: "
                         "write the name, or a ${trialParameters.<name>} placeholder, which katuna fills in and checks")


def study_problems(spec: Study, service: Cluster) -> list[Problem]:
    """Where the study gives its trials' pods one of the ``service``'s own accounts or Secrets
    (its ``reserved_accounts`` and ``reserved_secrets``, and the accounts of its
    ``sender_subjects`` in the trials' namespace), or more than the ``service``'s Pod Security
    level allows (the baseline, or restricted; none where it lifted it:
    :mod:`functions.core.pod_security`), and the
    patches of its ``trialSpec`` that cannot be read."""
    trial_spec = spec.trial_template.trial_spec
    strings, unreadable = _trial_strings(trial_spec, filled=False)
    beyond = pod_security.study_problems(trial_spec, service.pod_security) \
        if service.pod_security != pod_security.PRIVILEGED else []
    account, namespace = spec.kubernetes.service_account, spec.kubernetes.with_defaults(service).namespace
    return (_kind(trial_spec, service) + unreadable + _unseen(strings) + _manifests(trial_spec) + _accounts(account, strings, service.reserved_accounts)
            + _senders(account, strings, service, namespace or "default")
            + _secrets(spec.kubernetes.image_pull_secrets, strings, service.reserved_secrets)
            + _claims(strings, service.reserved_claims) + _checkpoint_claim(strings, service) + beyond)


def check_launch(cluster: Cluster, workload: Mapping[str, Any] | None,
                 trial_spec: Mapping[str, Any] | None = None) -> None:
    """Refuse (for good: every attempt would be the same) a trial whose pods would have one of
    the service's own accounts or Secrets (the ``reserved_*`` of ``cluster``, the trial's own
    with the service's defaults): the account and image pull Secrets katuna gives its pods, or
    one the rendered ``trialSpec`` ``workload`` names once a parameter's value filled its
    placeholder in; or whose patch cannot be read once filled in; or that a parameter's value
    made ask for more than its template ``trial_spec`` and the service's Pod Security level allow."""
    strings, found = _trial_strings(workload, filled=True)
    found += _kind(workload, cluster) + _unseen(strings) + _manifests(workload) + _accounts(cluster.service_account, strings, cluster.reserved_accounts)
    found += _senders(cluster.service_account, strings, cluster, cluster.namespace or "default")
    own = (workload or {}).get("metadata", {}).get("name")
    found += _secrets(cluster.image_pull_secrets, strings, cluster.reserved_secrets,
                      report_token.holder_name(own) if isinstance(own, str) else None)
    found += _claims(strings, cluster.reserved_claims) + _checkpoint_claim(strings, cluster)
    if workload is not None and cluster.pod_security != pod_security.PRIVILEGED:
        found += pod_security.launch_problems(trial_spec, workload, cluster.pod_security)
    if found:
        raise _refusal(cluster, found, trial_spec)


def _refusal(cluster: Cluster, found: list[Problem], trial_spec: Mapping[str, Any] | None) -> InvalidStudy:
    """A :class:`RefusedWorkload` where the parameters' values made every problem ``found``; an
    :class:`InvalidStudy` where the template itself has one (the service's accounts or Secrets
    changed since the study was stored): every trial would be refused, and the study fails."""
    strings, unreadable = _trial_strings(trial_spec, filled=False)
    account, namespace = cluster.service_account, cluster.namespace or "default"
    as_stored = {*_kind(trial_spec, cluster), *unreadable, *_unseen(strings), *_manifests(trial_spec),
                 *_accounts(account, strings, cluster.reserved_accounts),
                 *_senders(account, strings, cluster, namespace),
                 *_secrets(cluster.image_pull_secrets, strings, cluster.reserved_secrets),
                 *_claims(strings, cluster.reserved_claims), *_checkpoint_claim(strings, cluster)}
    return InvalidStudy(found) if as_stored.intersection(found) else RefusedWorkload(found)


def _kind(trial_spec: Mapping[str, Any] | None, service: Cluster) -> list[Problem]:
    """Where the ``trialSpec`` is of a kind katuna does not run (:func:`trial_kinds.taken`): its
    ``kind``, naming the kinds it runs. None for katuna's own Job (no ``trialSpec``), and for a
    ``trialSpec`` of no kind, which the study's parse refuses."""
    if not trial_spec or not trial_spec.get("kind") or trial_kinds.taken(trial_spec, service.trial_kinds):
        return []
    return [Problem(f"{PATH}.kind", f"expected a workload kind katuna runs trials as, got {trial_spec.get('apiVersion')} "
                                    f"{trial_spec.get('kind')}: katuna creates a trial's workload with its own "
                                    "permissions, so it runs only the kinds it knows and those the operator adds "
                                    "(KATUNA_TRIAL_KINDS, as Katib's trialResources): "
                                    f"{trial_kinds.taken_kinds(service.trial_kinds)}")]


def _trial_strings(workload: Mapping[str, Any] | None, filled: bool) -> tuple[list[tuple[str, str]], list[Problem]]:
    """Every string of a ``trialSpec`` with its path, with those its ``podSpecPatch`` strings set;
    and why a patch cannot be read (:func:`pod_spec_patch.fields`)."""
    strings = template.strings(workload or {}, PATH)
    patched, unreadable = pod_spec_patch.fields(strings, filled)
    return strings + patched, unreadable


def _unseen(strings: Iterable[tuple[str, str]]) -> list[Problem]:
    """Where a ``trialSpec``'s ``strings`` name a Task, Pipeline, StepAction or WorkflowTemplate
    its controller reads from elsewhere (:data:`REFERENCES`): one problem per reference, at its
    first string (``name``, ``resolver``)."""
    found: dict[str, Problem] = {}
    for path, _ in strings:
        reference = _reference(path)
        if reference is not None and reference not in found:
            found[reference] = Problem(path, _UNSEEN)
    return list(found.values())


def _manifests(trial_spec: Mapping[str, Any] | None) -> list[Problem]:
    """Where an Argo Workflow's template is a ``resource`` template: a manifest Argo creates (or
    applies, patches, deletes) with the Workflow's account, whose kind and pods katuna never
    reads, so neither ``KATUNA_TRIAL_KINDS`` nor the checks of its pods' accounts, Secrets and
    Pod Security reach what it makes, nor does katuna find or stop its pods."""
    spec = (trial_spec or {}).get("spec")
    if not trial_kinds.is_workflow(trial_spec or {}) or not isinstance(spec, Mapping):
        return []
    templates = spec.get("templates")
    return [Problem(f"{PATH}.spec.templates[{index}].resource", _MANIFEST)
            for index, one in enumerate(templates if isinstance(templates, list) else [])
            if isinstance(one, Mapping) and "resource" in one]


_MANIFEST = ("is an Argo resource template, whose manifest Argo creates with the Workflow's account: katuna reads "
             "neither its kind (only the kinds it knows and KATUNA_TRIAL_KINDS are trials) nor its pods (their "
             "accounts, Secrets and Pod Security), nor finds or stops them; run the step as a container or script "
             "template")


def _reference(path: str) -> str | None:
    """The path of the reference (:data:`REFERENCES`) the string at ``path`` is a field of, or None."""
    parts = path.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.partition("[")[0].lower() in REFERENCES:
            return ".".join(parts[:i + 1])
    step = STEP_REFERENCE.search(path)
    return path[:step.end() - 1] if step else None


_UNSEEN = ("names a Task, Pipeline or template that katuna cannot read (a Tekton resolver fetches it from a "
           "repository, a URL or a bundle, or the cluster holds it): its steps could run as the katuna service's "
           "account, mount its Secrets or reach the node, unchecked; write it inline (a taskSpec or pipelineSpec, "
           "an Argo template of the Workflow)")


def _accounts(account: str | None, strings: Iterable[tuple[str, str]], reserved: Iterable[str]) -> list[Problem]:
    """Where the ``kubernetes`` section's ``account`` or a ``trialSpec``'s ``strings`` name a ``reserved`` one."""
    given = [("kubernetes.serviceAccountName", account), *((path, value) for path, value in strings if _named(path))]
    return _reserved(given, reserved, _account)


def _senders(account: str | None, strings: Iterable[tuple[str, str]], service: Cluster,
             namespace: str) -> list[Problem]:
    """Where the ``kubernetes`` section's ``account`` or a ``trialSpec``'s ``strings`` name, in the
    trials' ``namespace``, an account of the ``service``'s ``sender_subjects`` (one of its
    ``reserved_accounts`` is told once, by :func:`_accounts`)."""
    given = [("kubernetes.serviceAccountName", account), *((path, value) for path, value in strings if _named(path))]
    return [_sender(path, value, namespace) for path, value in given
            if value is not None and value not in service.reserved_accounts
            and senders.allowed(senders.account_subject(namespace, value), service.sender_subjects)]


def _sender(path: str, account: str, namespace: str) -> Problem:
    return Problem(path, f"{account!r} in namespace {namespace!r} is an account katuna takes events from "
                         "(KATUNA_OIDC_SUBJECTS: a Knative Trigger's OIDC account); trials may never run as it: "
                         "name an account made for trials (or none)")


def _secrets(pull_secrets: Iterable[str], strings: Iterable[tuple[str, str]], reserved: Iterable[str],
             own: str | None = None) -> list[Problem]:
    """Where the ``kubernetes`` section's ``pull_secrets`` or a ``trialSpec``'s ``strings`` name a
    ``reserved`` Secret, or an attempt's report token's other than the ``own`` one katuna gave it."""
    given: list[tuple[str, str | None]] = [(f"kubernetes.imagePullSecrets[{i}]", name)
                                           for i, name in enumerate(pull_secrets)]
    given += [(path, value) for path, value in strings if secret_field(path)]
    return _reserved(given, reserved, _secret) + [_token(path, value) for path, value in given
                                                  if value is not None and value != own
                                                  and report_token.is_holder(value)]


def _token(path: str, secret: str) -> Problem:
    return Problem(path, f"{secret!r} is the Secret of a trial attempt's report token (katuna's own, named "
                         "<job>.report); a trial may never read another's, which would let it report for that trial")


def _claims(strings: Iterable[tuple[str, str]], reserved: Iterable[str],
            problem: Callable[[str, str], Problem] | None = None) -> list[Problem]:
    """Where a ``trialSpec``'s ``strings`` mount a ``reserved`` PersistentVolumeClaim (a
    ``persistentVolumeClaim`` volume's ``claimName``) or clone one (the ``name`` of a claim
    template's ``dataSource`` or ``dataSourceRef``: an ephemeral volume's, an Argo or Tekton
    ``volumeClaimTemplate``'s), each said by ``problem`` (by default as one of the service's own claims)."""
    return _reserved([(path, value) for path, value in strings if _claim_field(path.lower())], reserved,
                     problem or _claim)


def _checkpoint_claim(strings: Iterable[tuple[str, str]], cluster: Cluster) -> list[Problem]:
    """Where a ``trialSpec`` mounts or clones the claim of population-based training's
    checkpoints itself (``KATUNA_CHECKPOINT_CLAIM``): katuna mounts each trial's own folder of
    it, and the whole claim holds every study's checkpoints."""
    if cluster.checkpoints is None:
        return []
    return _claims(strings, (cluster.checkpoints.claim,), lambda path, claim: Problem(
        path, f"{claim!r} is the claim of population-based training's checkpoints (KATUNA_CHECKPOINT_CLAIM), which "
              "holds every study's; katuna mounts each pbt trial's own folder of it, and a trial may never mount or "
              "clone it itself: name a claim made for trials"))


def _claim_field(path: str) -> bool:
    """Whether the string at ``path`` (lower-cased) names a PersistentVolumeClaim to mount or clone."""
    parent, _, key = path.rpartition(".")
    return key == "claimname" or (key == "name" and parent.rpartition(".")[2] in ("datasource", "datasourceref"))


def _claim(path: str, claim: str) -> Problem:
    return Problem(path, f"{claim!r} is one of the katuna service's own PersistentVolumeClaims (its database); trials "
                         "may never mount it: name a claim made for trials")


def _reserved(given: Iterable[tuple[str, str | None]], reserved: Iterable[str],
              problem: Callable[[str, str], Problem]) -> list[Problem]:
    """A ``problem`` for each of the ``given`` names that is ``reserved``, and one for each the
    workload's controller would fill in later (:data:`ENGINE_EXPRESSION`), which could be any."""
    names = frozenset(reserved)
    return [problem(path, value) if value in names else _filled_later(path, value) for path, value in given
            if value is not None and (value in names or ENGINE_EXPRESSION.search(value))]
