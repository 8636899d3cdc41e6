"""Controllers of the operators whose workloads katuna creates as trials, small and as the real
ones behave in what katuna reads: the pods they make (names and labels), and the status
conditions of the workload.

- Kubeflow Training Operator (TFJob, PyTorchJob, MPIJob, XGBoostJob, PaddleJob, JAXJob): a pod
  ``<job>-<role>-<index>`` per replica, labelled ``training.kubeflow.org/job-name``,
  ``replica-type`` (the role lower-cased), ``replica-index``, and ``job-role: master`` on the
  pods of the kind's master role (``IsMasterRole``: a TFJob's Chief or Master, an MPIJob's
  Launcher, another kind's Master; without one, worker 0 of a TFJob, a PyTorchJob or a JAXJob,
  and no pod of a PaddleJob), each with its replica's
  ``restartPolicy`` over its template's (``ExitCode`` as ``Never``; where it names none, its
  kind's default: a PyTorchJob's and a PaddleJob's ``OnFailure``); an MPIJob's launcher is
  ``<job>-launcher``, and its pods carry ``mpi-job-name`` and ``mpi-job-role``. Conditions ``Created``,
  ``Running``, then ``Succeeded`` once the master role's pods succeeded (every worker, when the
  job has no Master, Chief or Launcher) or ``Failed`` once a pod of a ``Never`` replica failed
  (a failed pod of a replica that restarts is made again, the job ``Restarting``; past its
  ``runPolicy.backoffLimit`` the job fails: :mod:`kube_standin.operator_restarts`); the pods its
  ``cleanPodPolicy`` names are then deleted (:func:`clean_pod_policy`: by default, a TFJob's
  still running, none of another kind's).
- JobSet: a Job ``<jobset>-<replicatedJob>-<index>`` per replica, controlled by the JobSet (its
  ownerReference), labelled (and its pods) ``jobset.sigs.k8s.io/jobset-name``,
  ``replicatedjob-name`` and ``job-index``, as JobSet v0.8.2 labels them (v0.9 adds
  ``jobset-uid``, which katuna does not read); the Job controller makes the pods, each
  controlled by its Job. ``Completed`` once every Job completed, ``Failed`` once one failed.
- Kubeflow Trainer (TrainJob): the TrainJob's JobSet of its name, controlled by the TrainJob, as
  the ``torch-distributed`` runtime makes it (any ``runtimeRef`` is read as that runtime): one
  replicated Job ``node`` (labelled ``trainer.kubeflow.org/trainjob-ancestor-step: trainer``)
  running ``spec.trainer`` in its container ``node``, ``numNodes`` Indexed pods; ``Complete`` or
  ``Failed`` with its JobSet. The JobSet carries the runtime's labels, none of the TrainJob's
  (no Trainer v2 release passes them on), so its pods carry no label of katuna's.

A controller's create is refused where an object holds the name, as the API refuses it
(:class:`~kube_standin.objects.AlreadyExists`): an earlier workload's pod or Job of the same
name, Terminating or orphaned, is never overwritten. The Training Operator and JobSet record the
refusal as the real ones do (a Warning Event on the workload, :meth:`KubeStub.record_event`),
leave the workload's status where it is, and try again at each sync until the name is free; the
Trainer takes a JobSet holding its TrainJob's name as its own, as the real one does.
"""

from __future__ import annotations

import contextlib
import uuid

from kube_standin.admission import Forbidden
from kube_standin.clock import RealClock
from kube_standin.jobs import owned_pods
from kube_standin.objects import AlreadyExists, snapshot
from kube_standin.operator_restarts import (
    ROLE,
    backoff_message,
    deadline_message,
    drop_restarting,
    past_backoff_limit,
    past_deadline,
    policy,
    restarting,
    restarts,
    roles,
)
from kube_standin.scheduling import TERMINATED, requests
from kube_standin.validation import defaulted

TRAINING = {"TFJob": "tfReplicaSpecs", "PyTorchJob": "pytorchReplicaSpecs", "MPIJob": "mpiReplicaSpecs",
            "XGBoostJob": "xgbReplicaSpecs", "PaddleJob": "paddleReplicaSpecs", "JAXJob": "jaxReplicaSpecs"}
MASTER_ROLES = ("master", "chief", "launcher")
MASTERS = {"TFJob": ("chief", "master"), "PyTorchJob": ("master",), "MPIJob": ("launcher",), "XGBoostJob": ("master",),
           "PaddleJob": ("master",), "JAXJob": ()}
"""The roles whose pods each kind's controller labels ``job-role: master`` (its ``IsMasterRole``)."""
WORKER_LEADS = ("TFJob", "PyTorchJob", "JAXJob")
"""The kinds whose worker 0 is labelled so without one of those roles."""


def owner_reference(owner: dict) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def make_pod(cluster, owner: dict, name: str, template: dict, labels: dict, index: int = 0) -> dict:
    """A pod of ``owner`` from a pod template, as a controller creates it; refused
    (:class:`~kube_standin.objects.AlreadyExists`) where a pod holds the name, and as the API
    server's admission refuses it (:class:`~kube_standin.admission.Forbidden`)."""
    template = snapshot(template)
    metadata = template.get("metadata") or {}
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": owner["metadata"]["namespace"],
                        "labels": {**(metadata.get("labels") or {}), **labels},
                        "annotations": metadata.get("annotations") or {}, "ownerReferences": [owner_reference(owner)]},
           "spec": {**template["spec"], "schedulerName": "default-scheduler"},
           "status": {"phase": "Pending", "qosClass": "Burstable" if requests({"spec": template["spec"]}) else "BestEffort"}}
    return cluster.add_pod(pod, index)


def condition(clock: RealClock, obj: dict, kind: str, value: str, reason: str, message: str) -> bool:
    """Set a condition (a new transition, at the ``clock``'s time, only when its status changes);
    whether anything changed."""
    conditions = obj.setdefault("status", {}).setdefault("conditions", [])
    current = next((c for c in conditions if c["type"] == kind), None)
    if current is not None and current["status"] == value:
        return False
    stamp = clock.stamp()
    entry = {"type": kind, "status": value, "reason": reason, "message": message, "lastUpdateTime": stamp,
             "lastTransitionTime": stamp}
    obj["status"]["conditions"] = [c for c in conditions if c["type"] != kind] + [entry]
    return True


def finished(obj: dict, types: tuple[str, ...]) -> bool:
    return any(c["type"] in types and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions", []))


def _master_role(kind: str, roles: list[str], role: str, index: int) -> bool:
    if any(r.lower() in MASTERS[kind] for r in roles):
        return role.lower() in MASTERS[kind]
    return kind in WORKER_LEADS and role.lower() == "worker" and index == 0


def _replicas(job: dict) -> list[tuple[str, dict, dict, int]]:
    """``(pod name, template, labels, index)`` of each pod a Training Operator job has."""
    specs = job["spec"].get(TRAINING[job["kind"]]) or {}
    name = job["metadata"]["name"]
    replicas = []
    for role, replica in specs.items():
        for index in range(replica.get("replicas", 1)):
            labels = {"training.kubeflow.org/job-name": name, "training.kubeflow.org/operator-name":
                      f"{job['kind'].lower()}-controller", "training.kubeflow.org/replica-type": role.lower(),
                      "training.kubeflow.org/replica-index": str(index)}
            if _master_role(job["kind"], list(specs), role, index):
                labels["training.kubeflow.org/job-role"] = "master"
            pod_name = f"{name}-{role.lower()}-{index}"
            if job["kind"] == "MPIJob":
                labels.update({"mpi-job-name": name, "mpi-job-role": role.lower()})
                pod_name = f"{name}-launcher" if role.lower() == "launcher" else pod_name
            replicas.append((pod_name, _restarting(job["kind"], replica), labels, index))
    return replicas


def _restarting(kind: str, replica: dict) -> dict:
    """The replica's pod template with the replica's ``restartPolicy``, as the operator sets it
    over the template's (``setRestartPolicy``: ``ExitCode`` is ``Never`` for the kubelet), its
    kind's default where the replica names none (``SetDefaults_<Kind>``: a PyTorchJob's and a
    PaddleJob's ``OnFailure``, every other kind's ``Never``)."""
    given = policy(kind, replica)
    spec = {**(replica["template"].get("spec") or {}), "restartPolicy": "Never" if given == "ExitCode" else given}
    return {**replica["template"], "spec": spec}


def clean_pod_policy(job: dict) -> str:
    """What the operator deletes of a job's pods once it ended: its ``runPolicy.cleanPodPolicy``
    (an MPIJob's ``spec.cleanPodPolicy`` too), else the kind's default, ``Running`` for a TFJob
    and ``None`` for every other kind (``SetDefaults_TFJob``, ``SetDefaults_PyTorchJob`` and the
    others of kubeflow/training-operator): a PyTorchJob's pods still running when it ended run on."""
    spec = job.get("spec") or {}
    given = (spec.get("runPolicy") or {}).get("cleanPodPolicy") or spec.get("cleanPodPolicy")
    return given or ("Running" if job["kind"] == "TFJob" else "None")


class TrainingOperator:
    def __init__(self) -> None:
        self.made: dict[str, set[str]] = {}
        """Per job uid, the names of the pods made for it."""
        self.started: dict[str, float] = {}
        """Per job uid, its ``status.startTime`` (seconds since the epoch)."""

    def step(self, cluster) -> None:
        for job in [w for w in cluster.workloads.values() if w["kind"] in TRAINING]:
            if finished(job, ("Succeeded", "Failed")):
                continue
            changed = False
            if not job.get("status"):
                changed = condition(cluster.clock, job, "Created", "True", f"{job['kind']}Created",
                                    f"{job['kind']} {job['metadata']['name']} is created.")
                job["status"]["startTime"] = cluster.clock.stamp()
                self.started[job["metadata"]["uid"]] = cluster.clock.time()
            if self._create_pods(cluster, job):
                changed = self._sync(cluster, job) or changed
            if changed:
                cluster.modified(cluster.crds[("kubeflow.org", job["kind"].lower() + "s")].plural, job)

    def _create_pods(self, cluster, job: dict) -> bool:
        """Make each pod of the job not made yet; whether every one is made. A pod whose name
        another holds (an earlier job's of the same name, Terminating or orphaned) is not made:
        the refusal is the job's Warning Event ``FailedCreatePod``, the job's status stays as it
        is, and the pod is tried again at the next sync, as the real operator's reconcile fails
        and is queued again."""
        made = self.made.setdefault(job["metadata"]["uid"], set())
        replicas = _replicas(job)
        for pod_name, template, labels, index in replicas:
            if pod_name in made:
                continue
            try:
                make_pod(cluster, job, pod_name, template, labels, index)
            except (AlreadyExists, Forbidden) as refused:
                cluster.record_event(job, "Warning", "FailedCreatePod", f"Error creating: {refused}")
            else:
                made.add(pod_name)
        return len(made) == len(replicas)

    def _sync(self, cluster, job: dict) -> bool:
        """The job's conditions from its pods: failed past its ``backoffLimit`` or its
        ``activeDeadlineSeconds`` (from its ``startTime``); its failed pods
        made again where their replica restarts (:mod:`kube_standin.operator_restarts`), else
        failed; succeeded once its deciding pods did; running."""
        pods = owned_pods(cluster, job)
        kind, name = job["kind"], job["metadata"]["name"]
        by_role = roles(job, TRAINING[kind])
        given_up = backoff_message(job) if past_backoff_limit(job, pods, by_role) else \
            deadline_message(job) if past_deadline(job, self.started.get(job["metadata"]["uid"]), cluster.clock) else None
        if given_up is not None:
            for pod in pods:
                cluster.delete_pod(pod)
            cluster.record_event(job, "Normal", f"{kind}Failed", given_up)
            condition(cluster.clock, job, "Failed", "True", f"{kind}Failed", given_up)
            condition(cluster.clock, job, "Running", "False", f"{kind}Running", f"{kind} {name} is no longer running.")
            return True
        failed, restarted = [], False
        for pod in [p for p in pods if p["status"].get("phase") == "Failed" and not p["metadata"].get("deletionTimestamp")]:
            role, given = by_role.get(pod["metadata"]["labels"].get(ROLE, ""), ("", "Never"))
            if restarts(pod, given, kind):
                cluster.delete_pod(pod)
                self.made.get(job["metadata"]["uid"], set()).discard(pod["metadata"]["name"])
                cluster.record_event(job, "Warning", f"{kind}Restarting",
                                     f"job {name} is restarting because {role} replica(s) failed.")
                restarted = restarting(cluster.clock, job, role) or restarted
            else:
                failed.append(pod)
        pods = [p for p in pods if p in failed or p["status"].get("phase") != "Failed"]
        by_type = {role: [p for p in pods if p["metadata"]["labels"].get(ROLE) in role]
                   for role in (MASTER_ROLES, ("worker",))}
        deciding = by_type[MASTER_ROLES] or by_type[("worker",)] or pods
        if failed:
            role = failed[0]["metadata"]["labels"][ROLE]
            changed = condition(cluster.clock, job, "Failed", "True", f"{kind}Failed",
                                f"{kind} {name} is failed because {len(failed)} {role.capitalize()} replica(s) failed.")
        elif deciding and all(p["status"].get("phase") == "Succeeded" for p in deciding):
            changed = condition(cluster.clock, job, "Succeeded", "True", f"{kind}Succeeded",
                                f"{kind} {name} is successfully completed.")
        elif any(p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp") for p in pods):
            return drop_restarting(job) | condition(cluster.clock, job, "Running", "True", f"{kind}Running", f"{kind} {name} is running.")
        else:
            return restarted
        condition(cluster.clock, job, "Running", "False", f"{kind}Running", f"{kind} {name} is no longer running.")
        cleaning = clean_pod_policy(job)
        for pod in [p for p in pods if cleaning == "All" or cleaning == "Running" and p["status"].get("phase") not in TERMINATED]:
            cluster.delete_pod(pod)
        return changed

def make_jobset(cluster, owner: dict, jobset: dict) -> dict:
    """Store a JobSet ``owner`` makes (a TrainJob's); refused
    (:class:`~kube_standin.objects.AlreadyExists`) where a JobSet holds its name."""
    jobset["metadata"].update(namespace=owner["metadata"]["namespace"], uid=str(uuid.uuid4()),
                              ownerReferences=[owner_reference(owner)])
    return cluster.add_workload("jobsets", jobset)


class JobSetController:
    def __init__(self) -> None:
        self.made: dict[str, set[str]] = {}
        """Per JobSet uid, the names of the Jobs made for it."""

    def step(self, cluster) -> None:
        for jobset in [w for w in cluster.workloads.values() if w["kind"] == "JobSet"]:
            if finished(jobset, ("Completed", "Failed")):
                continue
            made = self._create_jobs(cluster, jobset)
            if not jobset.get("status"):
                jobset["status"] = {"replicatedJobsStatus": []}
                cluster.modified("jobsets", jobset)
            if not made:
                continue
            jobs = [j for j in cluster.jobs.values()
                    if any(r["uid"] == jobset["metadata"]["uid"] for r in j["metadata"].get("ownerReferences", []))]
            if any(finished(j, ("Failed",)) for j in jobs):
                condition(cluster.clock, jobset, "Failed", "True", "FailedJobs", "jobset failed due to one or more job failures")
                cluster.modified("jobsets", jobset)
            elif jobs and all(finished(j, ("Complete",)) for j in jobs):
                condition(cluster.clock, jobset, "Completed", "True", "AllJobsCompleted", "jobset completed successfully")
                cluster.modified("jobsets", jobset)

    def _create_jobs(self, cluster, jobset: dict) -> bool:
        """Make each Job of the JobSet not made yet; whether every one is made. A Job whose
        name another holds (an earlier JobSet's of the same name, orphaned or not yet collected)
        is not made: the refusal is the JobSet's Warning Event ``JobCreationFailed``, its
        conditions wait, and the Job is tried again at the next sync, as the real controller's
        reconcile fails and is queued again."""
        made = self.made.setdefault(jobset["metadata"]["uid"], set())
        wanted = sum(r.get("replicas", 1) for r in jobset["spec"].get("replicatedJobs") or [])
        if len(made) == wanted:
            return True
        for job in _jobs(jobset):
            name = job["metadata"]["name"]
            if name in made:
                continue
            try:
                cluster.add_job(job)
            except AlreadyExists as refused:
                cluster.record_event(jobset, "Warning", "JobCreationFailed",
                                     f'job "{name}" creation failed with error: {refused}')
            else:
                made.add(name)
        return len(made) == wanted


def _jobs(jobset: dict) -> list[dict]:
    """The Jobs of a JobSet, ``<jobset>-<replicatedJob>-<index>``, as its controller makes them."""
    name, namespace = jobset["metadata"]["name"], jobset["metadata"]["namespace"]
    jobs = []
    for replicated in jobset["spec"].get("replicatedJobs") or []:
        for index in range(replicated.get("replicas", 1)):
            labels = {"jobset.sigs.k8s.io/jobset-name": name,
                      "jobset.sigs.k8s.io/replicatedjob-name": replicated["name"],
                      "jobset.sigs.k8s.io/job-index": str(index)}
            job = snapshot(replicated["template"])
            job.setdefault("metadata", {})
            job["metadata"].update(name=f"{name}-{replicated['name']}-{index}", namespace=namespace,
                                   labels={**(job["metadata"].get("labels") or {}), **labels},
                                   ownerReferences=[owner_reference(jobset)])
            template = job["spec"]["template"].setdefault("metadata", {})
            template["labels"] = {**(template.get("labels") or {}), **labels}
            jobs.append(defaulted(job, str(uuid.uuid4())))
    return jobs


class Trainer:
    def step(self, cluster) -> None:
        for train in [w for w in cluster.workloads.values() if w["kind"] == "TrainJob"]:
            if finished(train, ("Complete", "Failed")):
                continue
            key = ("jobsets", train["metadata"]["namespace"], train["metadata"]["name"])
            if not train.get("status"):
                # As the real Trainer: a JobSet holding the TrainJob's name is taken as its own.
                with contextlib.suppress(AlreadyExists):
                    make_jobset(cluster, train, self._jobset(train))
                condition(cluster.clock, train, "Created", "True", "JobsCreated", "TrainJob Jobs are created")
                cluster.modified("trainjobs", train)
            jobset = cluster.workloads.get(key)
            if jobset is not None and finished(jobset, ("Completed",)):
                condition(cluster.clock, train, "Complete", "True", "JobsCompleted", "TrainJob is completed")
                cluster.modified("trainjobs", train)
            elif jobset is not None and finished(jobset, ("Failed",)):
                condition(cluster.clock, train, "Failed", "True", "JobsFailed", "TrainJob is failed")
                cluster.modified("trainjobs", train)

    @staticmethod
    def _jobset(train: dict) -> dict:
        trainer = train["spec"].get("trainer") or {}
        nodes = trainer.get("numNodes", 1)
        container = {"name": "node", "image": trainer.get("image", ""), "command": trainer.get("command") or [],
                     "args": trainer.get("args") or [], "env": trainer.get("env") or []}
        if trainer.get("resourcesPerNode"):
            container["resources"] = trainer["resourcesPerNode"]
        pod = {"spec": {"restartPolicy": "Never", "containers": [container]}}
        for override in train["spec"].get("podSpecOverrides") or []:
            if {"name": "node"} in (override.get("targetJobs") or []):
                pod["spec"].update({k: override[k] for k in ("nodeSelector", "tolerations") if k in override})
        job = {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
               "spec": {"parallelism": nodes, "completions": nodes, "completionMode": "Indexed", "backoffLimit": 0,
                        "template": pod}}
        return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": {"name": train["metadata"]["name"]},
                "spec": {"replicatedJobs": [{"name": "node", "replicas": 1, "template": job}]}}
