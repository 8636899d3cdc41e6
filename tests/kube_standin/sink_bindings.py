"""Knative Eventing's SinkBindings of Jobs selected by label (knative.dev/pkg ``webhook/psbinding``
with eventing's ``sinkbinding_lifecycle.go``), as they meet katuna's trial Jobs:

- the mutating webhook, on each create and update of a Job (its rules ``jobs/*``, CREATE and
  UPDATE), looks the bindings up by the labels of the object as it would be stored
  (``index.lookUp`` on the request's new object) and applies each one's ``Do`` to the pod
  template: ``Undo`` (its variables taken out), then ``K_SINK``, ``K_CA_CERTS`` where the sink
  has CA certificates, and ``K_CE_OVERRIDES`` appended to the env of every container and init
  container. The update is then validated as any other, so one of a Job whose template ``Do``
  changes (the binding changed since the Job was made) is refused ``field is immutable``;
- the reconciler (``BaseReconciler.ReconcileSubject``) lists the Jobs the binding's selector
  selects, patches each whose template ``Do`` changes, and on a refusal marks the binding
  ``BindingFailed`` and stops there, before it mints or renews its OIDC token.

The OIDC token's volume and the trust bundles are not modelled: the env shows a change as well."""

from __future__ import annotations

from dataclasses import dataclass, field

from kube_standin.objects import snapshot
from kube_standin.patches import MERGE_PATCH

INJECTED = ("K_SINK", "K_CA_CERTS", "K_CE_OVERRIDES")
"""The variables ``Do`` appends (and ``Undo`` removes), in its order."""


@dataclass
class JobBinding:
    """A SinkBinding of the Jobs of ``namespace`` that carry every label of ``selector``
    (``matchLabels``), giving them ``sink`` (its address), ``ca_certs`` and ``overrides``
    (``K_CE_OVERRIDES``); a test changes them as an operator changes the broker or the binding."""

    namespace: str
    selector: dict[str, str]
    sink: str
    ca_certs: str | None = None
    overrides: str = ""
    refusals: list[str] = field(default_factory=list)
    """What each :func:`reconcile` that failed put in the binding's ``BindingFailed`` condition."""

    def selects(self, namespace: str, labels: dict | None) -> bool:
        """Whether the binding's subject selector takes a Job of ``namespace`` with ``labels``."""
        return namespace == self.namespace and all((labels or {}).get(k) == v for k, v in self.selector.items())

    def env(self) -> list[dict[str, str]]:
        """What ``Do`` appends to each container's env."""
        ca = [{"name": "K_CA_CERTS", "value": self.ca_certs}] if self.ca_certs is not None else []
        return [{"name": "K_SINK", "value": self.sink}, *ca, {"name": "K_CE_OVERRIDES", "value": self.overrides}]


def bound(bindings: list[JobBinding], namespace: str, job: dict) -> dict:
    """The Job as the webhook lets it through: each binding that selects it by its labels
    applied (a copy; the Job itself where none does)."""
    chosen = [b for b in bindings if b.selects(namespace, (job.get("metadata") or {}).get("labels"))]
    if not chosen:
        return job
    job = snapshot(job)
    spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    for binding in chosen:
        for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            kept = [e for e in container.get("env") or [] if e.get("name") not in INJECTED]
            container["env"] = kept + binding.env()
    return job


def reconcile(cluster, binding: JobBinding) -> bool:
    """One pass of the binding's reconciler over the Jobs it selects; whether it is Ready (no
    patch refused). A refusal is kept in ``binding.refusals``, as its condition says it."""
    selected = [(ns, name) for (ns, name), job in cluster.jobs.items() if binding.selects(ns, job["metadata"].get("labels"))]
    for namespace, name in selected:
        job = cluster.jobs[(namespace, name)]
        template = bound([binding], namespace, job)["spec"]["template"]
        if template == job["spec"]["template"]:
            continue
        code, body = cluster.patch_job(namespace, name, {"spec": {"template": template}}, MERGE_PATCH)
        if code != 200:
            binding.refusals.append(f"failed binding subject {name}: {body.get('message')}")
            return False
    return True
