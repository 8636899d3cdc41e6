"""Controllers of the pipeline engines whose runs katuna creates as trials: Argo Workflows and
Tekton Pipelines, for the shapes Katib's examples use.

- Argo ``Workflow``: the entrypoint is a ``container``/``script`` template (one pod), or a
  ``steps`` template whose groups run one after the other, the steps of a group side by side,
  each a pod ``<workflow>-<template>-<n>`` with one container ``main`` (a script's ``source`` is
  written to a file passed to its command), labelled ``workflows.argoproj.io/workflow`` plus the
  template's and ``spec.podMetadata``'s labels (and annotations). ``{{inputs.parameters.x}}`` takes the step's
  argument, which may be ``{{steps.<name>.outputs.result}}`` (an earlier step's output).
  ``status.phase`` goes Running, then Succeeded, Failed or Error, as the controller infers it
  from its nodes (workflow/controller/operator.go, steps.go): each step's pod is a node of
  ``status.nodes`` (keyed here by its pod's name), ``Failed`` when its ``main`` container fails
  (``main: Error (exit code N)``), ``Error`` when its executor errs (``inferFailedReason``). A
  ``container``/``script`` entrypoint is the Workflow's one node, so the Workflow ends in that
  node's phase with its message; a ``steps`` entrypoint's group fails on any child that failed
  or erred (``child '<node>' failed``), and the Workflow ends ``Failed`` with that message. Each
  pod runs as its template's ``serviceAccountName``, else the Workflow's, else the namespace's
  ``default`` account (docs/workflow-rbac.md); Argo's executor (its ``wait`` container) reports
  the step's end by creating and patching a ``WorkflowTaskResult`` with that account's token,
  or with ``executor.serviceAccountName``'s where one is named (workflow/executor/taskresult.go).
  Where RBAC does not grant that account both, the step errs as the executor does (exit code
  64, the API's 403).
- Tekton ``PipelineRun`` (``tekton.dev/v1`` and ``v1beta1``) with an inline ``pipelineSpec``:
  each task runs as a pod ``<run>-<task>-pod`` once the tasks it names (``runAfter``, or
  ``$(tasks.<t>.results.<r>)``) succeeded, with a container ``step-<name>``, labelled with the
  run's labels and ``tekton.dev/pipelineRun``, ``pipelineTask`` and ``taskRun``, and annotated
  with the run's annotations (which Tekton passes on through the TaskRun). ``$(params.x)``
  takes the task's params (which may use the run's params and earlier results), and
  ``$(results.r.path)`` is a file whose content becomes the result. The ``Succeeded`` condition
  is Unknown while running, then True or False. The stand-in's kubelet runs one container a pod,
  so a task of several steps fails the run (reason ``StepsUnsupported``).

A pod whose name another holds (an earlier run's of the same name, Terminating or orphaned) is
refused as the API refuses it, and made at a later sync once the name is free. A pod a
ResourceQuota refuses (a 403 saying ``exceeded quota``) is a transient refusal to both
controllers: Argo's leaves the step's node Pending and requeues the Workflow
(``requeueIfTransientErr``, ``IsTransientErr`` in util/errors), Tekton's leaves the TaskRun
running (``ExceededResourceQuota``) and tries again a minute later (``handlePodCreationError``,
pkg/reconciler/taskrun); either makes the pod once the quota lets it. Any other refusal fails the run.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from kube_standin import logs
from kube_standin.admission import Forbidden
from kube_standin.objects import AlreadyExists
from kube_standin.operators import make_pod
from kube_standin.rbac import SERVICE_ACCOUNT_USER, Request, forbidden

ARGO_PLACEHOLDER = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
TEKTON_PLACEHOLDER = re.compile(r"\$\(([^)]+)\)")
OVER_QUOTA = "exceeded quota"
"""What a refusal says where a ResourceQuota refused the pod: transient to both controllers."""
ARGO_REQUEUE_SECONDS = 1.0
"""When Argo's controller looks at a Workflow again after a transient refusal (its rate-limited requeue)."""
TEKTON_REQUEUE_SECONDS = 60.0
"""When Tekton's controller tries a TaskRun's pod again after a quota refused it (``NewRequeueAfter(time.Minute)``)."""


def _output(cluster, pod: dict) -> str:
    key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
    return logs.serve(cluster.logs.get(key) or cluster.kubelets.log_of(pod), {}, cluster.clock.time()).decode().strip()


def _substitute(pattern: re.Pattern[str], value, known: dict[str, str]):
    if isinstance(value, str):
        return pattern.sub(lambda m: known.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_substitute(pattern, v, known) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(pattern, v, known) for k, v in value.items()}
    return value


def _account(workflow: dict, template: dict) -> str:
    """The account a step's pod runs as: its template's, else the Workflow's, else ``default``."""
    return template.get("serviceAccountName") or workflow["spec"].get("serviceAccountName") or "default"


def _executor_account(workflow: dict, template: dict) -> str:
    """The account whose token a step's executor uses: ``executor.serviceAccountName`` of its
    template or the Workflow where named, else its pod's."""
    named = (template.get("executor") or {}).get("serviceAccountName") \
        or (workflow["spec"].get("executor") or {}).get("serviceAccountName")
    return named or _account(workflow, template)


class Argo:
    def __init__(self) -> None:
        self.runs: dict[str, dict] = {}
        """Per Workflow uid: the group running, its pods by step name, and the steps' results."""
        self.scripts = Path(tempfile.mkdtemp(prefix="argo-standin-"))

    def close(self) -> None:
        """Remove the steps' scripts, with the cluster."""
        shutil.rmtree(self.scripts, ignore_errors=True)

    def step(self, cluster) -> None:
        for workflow in [w for w in cluster.workloads.values() if w["kind"] == "Workflow"]:
            if (workflow.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
                continue
            run = self.runs.setdefault(workflow["metadata"]["uid"],
                                       {"group": -1, "pods": {}, "results": {}, "pending": []})
            groups = self._groups(workflow)
            if not self._make(cluster, workflow, run):
                continue
            pods = {name: cluster.pods.get((workflow["metadata"]["namespace"], pod)) for name, pod in run["pods"].items()}
            if not all(p is None or p["status"].get("phase") in ("Succeeded", "Failed") for p in pods.values()):
                continue
            steps = groups[run["group"]] if run["group"] >= 0 else []
            ended = [self._node(cluster, workflow, step, run["pods"][step["name"]], pods[step["name"]]) for step in steps]
            if failed := next((node for node in ended if node["phase"] != "Succeeded"), None):
                self._end(cluster, workflow, failed)
                continue
            run["results"].update({n: _output(cluster, p) for n, p in pods.items() if p is not None})
            run["group"] += 1
            if run["group"] >= len(groups):
                self._phase(cluster, workflow, "Succeeded", "")
            else:
                run["pods"], run["pending"] = {}, list(groups[run["group"]])
                self._make(cluster, workflow, run)
                self._phase(cluster, workflow, "Running", "")

    def _end(self, cluster, workflow: dict, node: dict) -> None:
        """End the Workflow on a step's ``node`` that failed or erred: in the node's phase and
        words where the entrypoint is the step itself, else ``Failed`` as its step group."""
        templates = {t["name"]: t for t in workflow["spec"].get("templates") or []}
        if "steps" in templates[workflow["spec"]["entrypoint"]]:
            self._phase(cluster, workflow, "Failed", f"child '{node['id']}' failed")
        else:
            self._phase(cluster, workflow, node["phase"], node["message"])

    def _node(self, cluster, workflow: dict, step: dict, name: str, pod: dict | None) -> dict:
        """The ended step's node in ``status.nodes``, as the controller infers it from its pod
        ``name`` (``pod deleted`` when it is gone; the pod's own message where the kubelet gave
        one, as to an evicted pod; else its containers')."""
        phase, message = "Succeeded", ""
        if pod is None:
            phase, message = "Error", "pod deleted"
        elif pod["status"]["phase"] == "Failed":
            statuses = pod["status"].get("containerStatuses") or [{"state": {}}]
            terminated = statuses[0]["state"].get("terminated") or {}
            phase, message = "Failed", pod["status"].get("message") or (
                f"main: {terminated.get('reason')} (exit code {terminated.get('exitCode')})")
        elif refused := self._unreported(cluster, workflow, step):
            phase, message = "Error", refused
        node = {"id": name, "name": f"{workflow['metadata']['name']}.{step['name']}", "displayName": step["name"],
                "type": "Pod", "templateName": step["template"]["name"], "phase": phase, "message": message}
        workflow.setdefault("status", {}).setdefault("nodes", {})[name] = node
        return node

    def _make(self, cluster, workflow: dict, run: dict) -> bool:
        """Make the pod of each step of the running group not made yet; whether every one is
        made. A pod whose name another holds (an earlier Workflow's of the same name), or that a
        ResourceQuota refuses (the Workflow runs on, its step waiting), is tried again at a later
        sync; one the API server's admission refuses otherwise fails the Workflow with its words,
        as Argo's controller fails the step's node."""
        for step in list(run["pending"]):
            try:
                run["pods"][step["name"]] = self._pod(cluster, workflow, step, run["results"])["metadata"]["name"]
            except AlreadyExists:
                continue
            except Forbidden as refused:
                if OVER_QUOTA in str(refused):
                    self._phase(cluster, workflow, "Running", "")
                    cluster.clock.wake_at(cluster.clock.monotonic() + ARGO_REQUEUE_SECONDS)
                    continue
                self._phase(cluster, workflow, "Failed", str(refused))
                return False
            run["pending"].remove(step)
        return not run["pending"]

    @staticmethod
    def _unreported(cluster, workflow: dict, step: dict) -> str:
        """Why the executor of the finished ``step`` could not report its end (its ``wait``
        container's words, which become its node's message), or "" when it could."""
        namespace = workflow["metadata"]["namespace"]
        user = SERVICE_ACCOUNT_USER.format(namespace=namespace, name=_executor_account(workflow, step["template"]))
        for verb in ("create", "patch"):
            request = Request(user, verb, "argoproj.io", "workflowtaskresults", namespace=namespace)
            if not cluster.authorizer.allows(request):
                return f"wait: Error (exit code 64): {forbidden(request)[1]['message']}"
        return ""

    @staticmethod
    def _groups(workflow: dict) -> list[list[dict]]:
        """The step groups of the entrypoint: a steps template's, or the entrypoint alone."""
        templates = {t["name"]: t for t in workflow["spec"].get("templates") or []}
        entry = templates[workflow["spec"]["entrypoint"]]
        if "steps" in entry:
            return [[{**s, "template": templates[s["template"]]} for s in group] for group in entry["steps"]]
        return [[{"name": entry["name"], "template": entry}]]

    def _pod(self, cluster, workflow: dict, step: dict, results: dict[str, str]) -> dict:
        template, name = step["template"], workflow["metadata"]["name"]
        known = {f"steps.{s}.outputs.result": r for s, r in results.items()}
        arguments = {p["name"]: _substitute(ARGO_PLACEHOLDER, str(p.get("value", "")), known)
                     for p in (step.get("arguments") or {}).get("parameters") or []}
        known.update({f"inputs.parameters.{k}": v for k, v in arguments.items()})
        body = template.get("container") or template.get("script") or {}
        container = {**_substitute(ARGO_PLACEHOLDER, {k: v for k, v in body.items() if k != "source"}, known),
                     "name": "main"}
        if "source" in body:
            script = self.scripts / f"{workflow['metadata']['uid']}-{step['name']}"
            script.write_text(_substitute(ARGO_PLACEHOLDER, body["source"], known))
            container["args"] = [*(container.get("args") or []), str(script)]
        spec = {"restartPolicy": "Never", "containers": [container], "serviceAccountName": _account(workflow, template),
                **{k: workflow["spec"][k] for k in ("nodeSelector", "tolerations") if k in workflow["spec"]}}
        labels = {**((workflow["spec"].get("podMetadata") or {}).get("labels") or {}),
                  "workflows.argoproj.io/workflow": name}
        count = sum(1 for p in cluster.pods.values() if p["metadata"]["labels"].get("workflows.argoproj.io/workflow") == name)
        metadata = template.get("metadata") or {}
        annotations = {**((workflow["spec"].get("podMetadata") or {}).get("annotations") or {}),
                       **(metadata.get("annotations") or {})}
        return make_pod(cluster, workflow, f"{name}-{template['name']}-{count}",
                        {"metadata": {**metadata, "annotations": annotations}, "spec": spec}, labels)

    @staticmethod
    def _phase(cluster, workflow: dict, phase: str, message: str) -> None:
        status = workflow.setdefault("status", {})
        if status.get("phase") == phase:
            return
        status.update(phase=phase, startedAt=status.get("startedAt") or cluster.clock.stamp())
        if phase in ("Succeeded", "Failed", "Error"):
            status["finishedAt"] = cluster.clock.stamp()
        if message:
            status["message"] = message
        cluster.modified("workflows", workflow)


class Tekton:
    def __init__(self) -> None:
        self.results_dir = Path(tempfile.mkdtemp(prefix="tekton-standin-"))
        self.runs: dict[str, dict] = {}
        """Per PipelineRun uid: each started task's pod name, and the results of finished ones."""

    def close(self) -> None:
        """Remove the tasks' results, with the cluster."""
        shutil.rmtree(self.results_dir, ignore_errors=True)

    def step(self, cluster) -> None:
        for run in [w for w in cluster.workloads.values() if w["kind"] == "PipelineRun"]:
            succeeded = next((c for c in (run.get("status") or {}).get("conditions", []) if c["type"] == "Succeeded"), None)
            if succeeded is not None and succeeded["status"] != "Unknown":
                continue
            self._sync(cluster, run)

    def _sync(self, cluster, run: dict) -> None:
        state = self.runs.setdefault(run["metadata"]["uid"], {"pods": {}, "results": {}, "refused": {}})
        tasks = (run["spec"].get("pipelineSpec") or {}).get("tasks") or []
        namespace = run["metadata"]["namespace"]
        done = []
        for task in tasks:
            pod = cluster.pods.get((namespace, state["pods"].get(task["name"], "")))
            phase = pod["status"].get("phase") if pod is not None else None
            if phase == "Failed" or (task["name"] in state["pods"] and pod is None):
                return self._condition(cluster, run, "False", "Failed", f"task {task['name']} failed")
            if phase == "Succeeded":
                done.append(task["name"])
                state["results"].setdefault(task["name"], self._results(run, task))
            elif task["name"] not in state["pods"] and self._ready(task, state["results"]) and self._due(cluster, state, task):
                if len((task.get("taskSpec") or {}).get("steps") or []) != 1:
                    return self._condition(cluster, run, "False", "StepsUnsupported",
                                           f"task {task['name']}: the stand-in runs tasks of one step")
                try:
                    state["pods"][task["name"]] = self._pod(cluster, run, task, state["results"])["metadata"]["name"]
                except AlreadyExists:  # its name held: tried again at the next sync
                    continue
                except Forbidden as refused:
                    if OVER_QUOTA in str(refused):  # the TaskRun runs on, its pod tried again a minute later
                        state["refused"][task["name"]] = cluster.clock.monotonic()
                        cluster.clock.wake_at(cluster.clock.monotonic() + TEKTON_REQUEUE_SECONDS)
                        continue
                    # as Tekton's reconciler fails a TaskRun whose pod is refused otherwise
                    return self._condition(cluster, run, "False", "PodCreationFailed", str(refused))
        if len(done) == len(tasks):
            return self._condition(cluster, run, "True", "Succeeded",
                                   f"Tasks Completed: {len(done)} (Failed: 0, Cancelled 0), Skipped: 0")
        self._condition(cluster, run, "Unknown", "Running",
                        f"Tasks Completed: {len(done)} (Failed: 0, Cancelled 0), Incomplete: {len(tasks) - len(done)}, "
                        "Skipped: 0")

    @staticmethod
    def _due(cluster, state: dict, task: dict) -> bool:
        """Whether the task's pod may be tried now: never refused for a quota, or a minute since."""
        refused = state["refused"].get(task["name"])
        return refused is None or cluster.clock.monotonic() - refused >= TEKTON_REQUEUE_SECONDS

    @staticmethod
    def _ready(task: dict, results: dict[str, dict[str, str]]) -> bool:
        needed = set(task.get("runAfter") or [])
        needed |= {m.group(1).split(".")[1] for m in TEKTON_PLACEHOLDER.finditer(str(task.get("params")))
                   if m.group(1).startswith("tasks.")}
        return needed <= set(results)

    def _results(self, run: dict, task: dict) -> dict[str, str]:
        folder = self.results_dir / run["metadata"]["uid"] / task["name"]
        return {p.name: p.read_text().strip() for p in folder.glob("*")} if folder.exists() else {}

    def _pod(self, cluster, run: dict, task: dict, results: dict[str, dict[str, str]]) -> dict:
        run_params = {f"params.{p['name']}": str(p.get("value", "")) for p in run["spec"].get("params") or []}
        run_params.update({f"tasks.{t}.results.{r}": v for t, found in results.items() for r, v in found.items()})
        params = {f"params.{p['name']}": _substitute(TEKTON_PLACEHOLDER, str(p.get("value", "")), run_params)
                  for p in task.get("params") or []}
        folder = self.results_dir / run["metadata"]["uid"] / task["name"]
        folder.mkdir(parents=True, exist_ok=True)
        params.update({f"results.{r['name']}.path": str(folder / r["name"])
                       for r in (task.get("taskSpec") or {}).get("results") or []})
        step = {**task["taskSpec"]["steps"][0]}
        if run["apiVersion"] == "tekton.dev/v1" and "computeResources" in step:
            step["resources"] = step.pop("computeResources")
        container = {**_substitute(TEKTON_PLACEHOLDER, step, params), "name": f"step-{step['name']}"}
        name = run["metadata"]["name"]
        labels = {**(run["metadata"].get("labels") or {}), "tekton.dev/pipelineRun": name,
                  "tekton.dev/pipelineTask": task["name"], "tekton.dev/taskRun": f"{name}-{task['name']}",
                  "tekton.dev/pipeline": name}
        spec = run["spec"].get("taskRunTemplate", {}) if run["apiVersion"] == "tekton.dev/v1" else run["spec"]
        placed = {k: v for k, v in (spec.get("podTemplate") or {}).items() if k in ("nodeSelector", "tolerations")}
        return make_pod(cluster, run, f"{name}-{task['name']}-pod",
                        {"metadata": {"annotations": dict(run["metadata"].get("annotations") or {})},
                         "spec": {"restartPolicy": "Never", "containers": [container], **placed}}, labels)

    @staticmethod
    def _condition(cluster, run: dict, value: str, reason: str, message: str) -> None:
        status = run.setdefault("status", {})
        current = next((c for c in status.get("conditions", []) if c["type"] == "Succeeded"), None)
        if current is not None and (current["status"], current["reason"], current["message"]) == (value, reason, message):
            return
        status["conditions"] = [{"type": "Succeeded", "status": value, "reason": reason, "message": message,
                                 "lastTransitionTime": cluster.clock.stamp()}]
        status.setdefault("startTime", cluster.clock.stamp())
        if value != "Unknown":
            status["completionTime"] = cluster.clock.stamp()
        cluster.modified("pipelineruns", run)
