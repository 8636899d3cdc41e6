"""Trial Jobs under the SinkBinding ``trial-progress`` (``KATUNA_TRIAL_SINK_BINDING``), through
the real client on the stand-in, whose Knative webhook binds a Job as it is created and whose
reconciler patches each Job the binding selects (:mod:`kube_standin.sink_bindings`): katuna takes
the label off each Job once it is made and bound, so no change to the binding (the broker turned
https, its CA, ``ceOverrides``) leaves the binding failed on a Job whose template it cannot
patch, nor has katuna's own suspension of a kept Job refused."""

from __future__ import annotations

from kube_standin import sink_bindings
from kube_standin.containers import Run
from kube_standin.sink_bindings import JobBinding
from kube_stub import KubeStub
from test_suspended_jobs import job, launch_of

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.core.cluster import SINK_BINDING_LABEL, Cluster
from functions.core.job import render_job

SIMULATED_RUN = Run(600, "loss=0.5\n")
"""Each trial's container runs ten minutes: still running when the binding changes."""
BOUND = Cluster(namespace="katuna", start_allowance=600, sink_binding="trial-progress")
HTTP = "http://broker-ingress.knative-eventing.svc.cluster.local/katuna/katuna"


def bound_by(kube: KubeStub) -> JobBinding:
    """The oidc component's binding, as it is deployed, on the stand-in."""
    binding = JobBinding("katuna", {SINK_BINDING_LABEL: "trial-progress"}, HTTP)
    kube.sink_bindings.append(binding)
    return binding


def env_of(kube: KubeStub, name: str) -> dict[str, str]:
    [container] = job(kube, name)["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def turned_https(binding: JobBinding) -> None:
    """The broker's address turned https, with its CA (``transport-encryption: strict``)."""
    binding.sink = "https://broker-ingress.knative-eventing.svc.cluster.local/katuna/katuna"
    binding.ca_certs = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_a_trial_job_is_bound_as_it_is_made_then_leaves_the_binding_which_a_change_no_longer_fails(
        simulated_kube: KubeStub):
    binding = bound_by(simulated_kube)
    executor = KubernetesExecutor(BOUND, api_client(simulated_kube.url), clock=simulated_kube.clock.time)
    launch = launch_of("bound")
    executor.launch(launch)
    assert env_of(simulated_kube, "bound")["K_SINK"] == HTTP, "bound as it was created"
    assert SINK_BINDING_LABEL not in job(simulated_kube, "bound")["metadata"]["labels"]
    turned_https(binding)
    assert sink_bindings.reconcile(simulated_kube, binding), binding.refusals
    executor.stop(launch, keep=True)
    assert job(simulated_kube, "bound")["spec"]["suspend"] is True
    assert env_of(simulated_kube, "bound")["K_SINK"] == HTTP, "a Job's template is kept as it was made"


def test_a_job_left_labelled_loses_the_label_when_its_launch_is_delivered_again_or_when_it_is_suspended(
        simulated_kube: KubeStub):
    """A Job made and bound by a delivery that ended before it took the label off (or by an
    earlier katuna): the launch delivered again finds it, its own, and takes the label off; the
    suspension of a ``retain`` study's Job takes it off in the same patch, which the webhook then
    leaves alone, where it would add the changed binding to the update and have it refused."""
    binding = bound_by(simulated_kube)
    executor = KubernetesExecutor(BOUND, api_client(simulated_kube.url), clock=simulated_kube.clock.time)
    again, kept = launch_of("again"), launch_of("kept")
    for launch in (again, kept):
        assert simulated_kube.create_job("katuna", render_job(launch, BOUND))[0] == 201
    turned_https(binding)
    assert not sink_bindings.reconcile(simulated_kube, binding), "what a labelled Job does to a changed binding"
    executor.launch(again)
    executor.stop(kept, keep=True)
    assert job(simulated_kube, "kept")["spec"]["suspend"] is True
    assert not any(SINK_BINDING_LABEL in job(simulated_kube, name)["metadata"]["labels"] for name in ("again", "kept"))
    assert sink_bindings.reconcile(simulated_kube, binding)
