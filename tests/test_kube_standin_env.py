"""The stand-in kubelet makes a container's environment as the kubelet does before it creates
the container (``makeEnvironmentVariables``, pkg/kubelet/kubelet_pods.go): a ConfigMap, Secret
or key the container reads that is missing leaves it waiting with ``CreateContainerConfigError``
and the kubelet's words, the pod ``Pending`` for ever; it starts once what it reads is there;
an optional reference is skipped. A ``fieldRef`` reads the pod's own field (the downward API),
and one the API server would refuse is refused when the Job is created."""

from __future__ import annotations

import time

import pytest
from kube_stub import KubeStub

HOUR = 3600.0


def job(name: str, **container: object) -> dict:
    pod = {"restartPolicy": "Never", "containers": [{"name": "trial", "image": "python:3.12", "command": ["t"],
                                                     **container}]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": pod}}}


def pod_of(kube: KubeStub, name: str) -> dict:
    [pod] = [p for p in kube.pods.values() if p["metadata"]["labels"]["job-name"] == name]
    return pod


def waiting(pod: dict) -> dict | None:
    return pod["status"]["containerStatuses"][0]["state"].get("waiting")


def held(kube: KubeStub, name: str) -> dict:
    """Run until the Job's pod waits with ``CreateContainerConfigError``: that waiting state."""
    kube.run_until(lambda: any(p["metadata"]["labels"]["job-name"] == name for p in kube.pods.values())
                   and (waiting(pod_of(kube, name)) or {}).get("reason") == "CreateContainerConfigError")
    return waiting(pod_of(kube, name))


def secret_env(name: str = "db", key: str = "password", optional: bool = False) -> list[dict]:
    return [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": name, "key": key, "optional": optional}}}]


def test_a_missing_secret_leaves_the_container_waiting_until_it_is_created(simulated_kube: KubeStub):
    assert simulated_kube.create_job("katuna", job("reads", env=secret_env()))[0] == 201
    assert held(simulated_kube, "reads") == {"reason": "CreateContainerConfigError", "message": 'secret "db" not found'}
    simulated_kube.clock.now += 10 * HOUR
    simulated_kube.settle()
    pod = pod_of(simulated_kube, "reads")
    assert pod["status"]["phase"] == "Pending"
    assert not simulated_kube.jobs[("katuna", "reads")]["status"].get("conditions")
    simulated_kube.create_secret("katuna", "db", {"password": "hunter2"})
    simulated_kube.run_until(lambda: pod["status"]["phase"] == "Running")
    assert simulated_kube.clock.now - simulated_kube.clock.start <= 10 * HOUR + 10, "the kubelet's next sync finds it"
    simulated_kube.run_until(lambda: pod["status"]["phase"] == "Succeeded")


@pytest.mark.parametrize(("container", "message"), [
    ({"env": secret_env(key="token")}, "couldn't find key token in Secret katuna/db"),
    ({"env": [{"name": "LR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "lr"}}}]},
     'configmap "settings" not found'),
    ({"env": [{"name": "LR", "valueFrom": {"configMapKeyRef": {"name": "present", "key": "lr"}}}]},
     "couldn't find key lr in ConfigMap katuna/present"),
    ({"envFrom": [{"secretRef": {"name": "absent"}}]}, 'secret "absent" not found'),
    ({"envFrom": [{"configMapRef": {"name": "absent"}}]}, 'configmap "absent" not found'),
])
def test_each_way_to_read_what_is_missing_has_the_kubelets_words(simulated_kube: KubeStub, container: dict,
                                                                  message: str):
    simulated_kube.create_secret("katuna", "db", {"password": "hunter2"})
    simulated_kube.create_config_map("katuna", "present", {"batch": "32"})
    assert simulated_kube.create_job("katuna", job("reads", **container))[0] == 201
    assert held(simulated_kube, "reads") == {"reason": "CreateContainerConfigError", "message": message}


def test_optional_references_to_what_is_missing_are_skipped(simulated_kube: KubeStub):
    env = [*secret_env(optional=True), *secret_env(name="db2", key="x", optional=True)]
    simulated_kube.create_secret("katuna", "db2", {"other": "1"})
    env_from = [{"secretRef": {"name": "absent", "optional": True}}, {"configMapRef": {"name": "a", "optional": True}}]
    assert simulated_kube.create_job("katuna", job("skips", env=env, envFrom=env_from))[0] == 201
    simulated_kube.run_until(lambda: pod_of(simulated_kube, "skips")["status"]["phase"] == "Succeeded")


def test_a_sidecar_reading_what_is_missing_says_so_under_its_own_name(simulated_kube: KubeStub):
    sidecar = {"name": "agent", "image": "busybox", "env": secret_env()}
    body = job("side")
    body["spec"]["template"]["spec"]["containers"].append(sidecar)
    assert simulated_kube.create_job("katuna", body)[0] == 201
    simulated_kube.run_until(
        lambda: any(p["metadata"]["labels"]["job-name"] == "side" for p in simulated_kube.pods.values())
        and waiting(pod_of(simulated_kube, "side")).get("reason") == "CreateContainerConfigError")
    states = {s["name"]: s["state"]["waiting"] for s in pod_of(simulated_kube, "side")["status"]["containerStatuses"]}
    assert states == {"agent": {"reason": "CreateContainerConfigError", "message": 'secret "db" not found'},
                      "trial": {"reason": "ContainerCreating"}}


def test_a_process_container_gets_what_it_reads():
    """On the machine's clock the container is a local process: its environment holds the
    Secret's and the ConfigMap's values."""
    simulated_kube = KubeStub()
    try:
        simulated_kube.create_secret("katuna", "db", {"password": "hunter2"})
        simulated_kube.create_config_map("katuna", "settings", {"lr": "0.1", "batch": "32"})
        script = "import os; print(os.environ['PASSWORD'], os.environ['LR'], os.environ['CFG_batch'])"
        env = [*secret_env(), {"name": "LR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "lr"}}}]
        body = job("proc", command=["python", "-c", script], env=env,
                   envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}])
        assert simulated_kube.create_job("katuna", body)[0] == 201
        deadline = time.monotonic() + 30
        while not simulated_kube.jobs[("katuna", "proc")]["status"].get("succeeded") and time.monotonic() < deadline:
            time.sleep(0.05)
        pod = pod_of(simulated_kube, "proc")
        assert simulated_kube.read_log("katuna", pod["metadata"]["name"], None) == (200, b"hunter2 0.1 32\n")
    finally:
        simulated_kube.close()


def test_a_container_reads_its_pods_own_fields_through_the_downward_api(simulated_kube: KubeStub):
    fields = {"POD_UID": "metadata.uid", "POD_NAME": "metadata.name", "NODE": "spec.nodeName",
              "ROLE": "metadata.labels['job-name']"}
    env = [{"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}} for name, path in fields.items()]
    containers = simulated_kube.kubelets.containers
    started: dict[str, dict[str, str]] = {}
    start = containers.start
    containers.start = lambda pod, log, given, *rest, **more: started.setdefault("env", given) and start(
        pod, log, given, *rest, **more)
    assert simulated_kube.create_job("katuna", job("fields", env=env))[0] == 201
    simulated_kube.run_until(lambda: "env" in started)
    pod = pod_of(simulated_kube, "fields")
    assert {name: started["env"][name] for name in fields} == {
        "POD_UID": pod["metadata"]["uid"], "POD_NAME": pod["metadata"]["name"], "NODE": pod["spec"]["nodeName"],
        "ROLE": "fields"}


@pytest.mark.parametrize(("field", "message"), [
    ({"fieldPath": "metadata.labels"}, 'Unsupported value: "metadata.labels": supported values: "metadata.name", '
                                      '"metadata.namespace", "metadata.uid", "spec.nodeName", '
                                      '"spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", '
                                      '"status.podIPs"'),
    ({"fieldPath": "metadata.secret"}, 'Invalid value: "metadata.secret": error converting fieldPath: field label not '
                                      "supported: metadata.secret"),
    ({"fieldPath": "spec.containers['a']"}, "Invalid value: \"spec.containers['a']\": error converting fieldPath: "
                                           "field label does not support subscript: spec.containers['a']"),
    ({"apiVersion": "v1"}, "Required value"),
])
def test_a_field_reference_the_api_server_refuses_is_refused(simulated_kube: KubeStub, field: dict, message: str):
    body = job("badfield", env=[{"name": "A", "valueFrom": {"fieldRef": field}}])
    code, answer = simulated_kube.create_job("katuna", body)
    assert (code, answer["message"]) == (422, 'Job.batch "badfield" is invalid: spec.template.spec.containers[0].'
                                              f"env[0].valueFrom.fieldRef.fieldPath: {message}")


def test_a_secret_is_refused_as_the_api_server_refuses_it(simulated_kube: KubeStub):
    with pytest.raises(LookupError, match=r'Secret "Bad_Name" is invalid: metadata.name: Invalid value'):
        simulated_kube.create_secret("katuna", "Bad_Name", {"a": "b"})
    with pytest.raises(LookupError, match=r"a valid config key must consist of"):
        simulated_kube.create_secret("katuna", "ok", {"bad key": "b"})
    simulated_kube.create_secret("katuna", "ok", {"a": "b"})
    with pytest.raises(LookupError, match=r'secrets "ok" already exists'):
        simulated_kube.create_secret("katuna", "ok", {"a": "c"})
