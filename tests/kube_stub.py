"""A small stateful Kubernetes API on loopback: the Job, Pod and log endpoints katuna uses, and
custom resources (read, and their status subresource merge-patched).

Its "controller" runs each created Job's container command as a local process, as a kubelet
would run it in a pod, and reports the outcome in the Job's and the pod's status. Scenarios
come from the trial itself (tests/trials/objective.py --mode) and from ``preempt_first_pod``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jsonpatch
import jsonpointer

MAX_PODS = 20
"""Pods one Job may run (disrupted pods are replaced: podFailurePolicy ignores DisruptionTarget)."""

JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?$")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?(/log)?$")
CUSTOM = re.compile(r"^/apis/(katuna\.dev/v1)/namespaces/([^/]+)/([^/]+)/([^/]+)(/status)?$")
GROUP = "katuna.dev"
JSON_PATCH = "application/json-patch+json"
PATCHES = {"application/merge-patch+json", JSON_PATCH}
"""Patch types a custom resource's status takes here (the API also takes apply patches)."""
CUSTOM_LIST = re.compile(r"^/apis/katuna\.dev/v1/namespaces/([^/]+)/([^/]+)$")


def _suffix() -> str:
    """The random five characters the Job controller appends to a pod's name."""
    return "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _matches(labels: dict, selector: str) -> bool:
    for term in filter(None, (selector or "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _merge(target: dict, patch: dict) -> dict:
    """RFC 7386 JSON merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
    return target


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}



def _container_status(container: dict, state: dict) -> dict:
    """A container's status as the kubelet reports it, in ``state`` (running, with its start)."""
    image = container.get("image")
    return {"name": container["name"], "ready": "running" in state, "restartCount": 0, "image": image,
            "imageID": image_id(image or ""), "state": state}


def _killed(pod: dict) -> list[dict]:
    """The container statuses of a pod whose containers were killed (137) where they ran."""
    now = _now()
    return [{**status, "ready": False, "state": {"terminated": {
        "exitCode": 137, "reason": "Error", "startedAt": status["state"]["running"]["startedAt"], "finishedAt": now}}}
        for status in pod["status"]["containerStatuses"]]


def image_id(image: str) -> str:
    """The ``imageID`` the kubelet reports for a container of ``image``: the image by its digest."""
    return f"docker.io/library/{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"

class KubeStub:
    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], dict] = {}
        self.pods: dict[tuple[str, str], dict] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.deleted: list[tuple[str, str, str | None]] = []
        self.created: list[str] = []
        self.create_requests: list[tuple[str, str]] = []
        self.created_jobs: dict[str, dict] = {}
        self.preempt_first_pod = False
        self.disrupt: Callable[[str, int], float | None] | None = None
        """``(job name, pod index)`` to seconds after which the pod is preempted, or None."""
        self.disrupted: list[tuple[str, int]] = []
        """(Job, pod index) of every pod the storm disrupted."""
        self.processes: list[subprocess.Popen] = []
        self.resources: dict[tuple[str, str, str], dict] = {}
        self.status_writes: list[tuple[str, str, dict]] = []
        self.versions = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                return

            def _send(self, code: int, body: dict | str) -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                match = JOBS.match(urlparse(self.path).path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._send(*stub.create_job(match.group(1), body))

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if match := CUSTOM.match(url.path):
                    self._send(*stub.get_resource(match.group(3), match.group(2), match.group(4)))
                elif match := CUSTOM_LIST.match(url.path):
                    self._send(*stub.list_resources(match.group(2), match.group(1), query.get("limit"),
                                                    query.get("continue")))
                elif match := JOBS.match(url.path):
                    self._send(*stub.get_jobs(match.group(1), match.group(2), query.get("labelSelector")))
                elif match := PODS.match(url.path):
                    self._send(*stub.get_pods(match.group(1), match.group(2), bool(match.group(3)),
                                              query.get("labelSelector"), query.get("container")))
                else:
                    self._send(404, _status(404, "NotFound", url.path))

            def do_PATCH(self) -> None:  # noqa: N802
                match = CUSTOM.match(urlparse(self.path).path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not match or not match.group(5):
                    self._send(404, _status(404, "NotFound", self.path))
                elif self.headers["Content-Type"] not in PATCHES:
                    self._send(415, _status(415, "UnsupportedMediaType", self.headers["Content-Type"]))
                else:
                    self._send(*stub.patch_status(match.group(3), match.group(2), match.group(4), body,
                                                  self.headers["Content-Type"]))

            def do_DELETE(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                options = json.loads(self.rfile.read(length)) if length else {}
                policy = options.get("propagationPolicy") or parse_qs(url.query).get("propagationPolicy", [None])[0]
                match = JOBS.match(url.path)
                self._send(*stub.delete_job(match.group(1), match.group(2), policy))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        self.server.shutdown()

    # custom resources: tests play kubectl through apply/delete, katuna reads and patches status

    def apply(self, obj: dict) -> dict:
        """Create the resource, or change its spec (a new generation when the spec changes)."""
        plural = {"Study": "studies", "Experiment": "experiments"}[obj["kind"]]
        metadata = obj["metadata"]
        key = (plural, metadata.get("namespace", "default"), metadata["name"])
        with self.lock:
            self.versions += 1
            current = self.resources.get(key)
            if current is None:
                current = self.resources[key] = {
                    "apiVersion": obj["apiVersion"], "kind": obj["kind"], "spec": obj["spec"],
                    "metadata": {**metadata, "namespace": key[1], "uid": f"uid-{self.versions}", "generation": 1,
                                 "creationTimestamp": _now()}}
            elif current["spec"] != obj["spec"]:
                current["spec"] = obj["spec"]
                current["metadata"]["generation"] += 1
            current["metadata"]["resourceVersion"] = str(self.versions)
            return json.loads(json.dumps(current))

    def delete(self, kind: str, namespace: str, name: str) -> dict:
        plural = {"Study": "studies", "Experiment": "experiments"}[kind]
        with self.lock:
            return self.resources.pop((plural, namespace, name))

    def get_resource(self, plural: str, namespace: str, name: str) -> tuple[int, dict]:
        with self.lock:
            obj = self.resources.get((plural, namespace, name))
            return (200, obj) if obj else (404, _status(404, "NotFound", f'{plural} "{name}" not found'))

    def list_resources(self, plural: str, namespace: str, limit: str | None, token: str | None) -> tuple[int, dict]:
        """A namespace's resources of one kind, by name, ``limit`` at a time: as the API server, the
        list names what comes next in ``metadata.continue``, refuses a continue token it did not
        issue (400) and knows no kind it has no definition for (404)."""
        if plural not in ("studies", "experiments"):
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        with self.lock:
            names = sorted(n for (p, ns, n) in self.resources if (p, ns) == (plural, namespace))
            start = 0
            if token:
                if not token.startswith("after:"):
                    return 400, _status(400, "BadRequest", "continue key is not valid: incorrect encoded start resourceVersion")
                start = sum(1 for n in names if n <= token[len("after:"):])
            size = int(limit) if limit and int(limit) > 0 else len(names)
            page = names[start:start + size]
            metadata = {"resourceVersion": str(self.versions)}
            if start + size < len(names):
                metadata["continue"] = f"after:{page[-1]}"
            items = [json.loads(json.dumps(self.resources[(plural, namespace, n)])) for n in page]
        return 200, {"apiVersion": "katuna.dev/v1", "kind": "StudyList" if plural == "studies" else "ExperimentList",
                     "metadata": metadata, "items": items}

    def patch_status(self, plural: str, namespace: str, name: str, patch: object,
                     content_type: str = "application/merge-patch+json") -> tuple[int, dict]:
        """As the status subresource of a custom resource: the patch (merge, or JSON patch with
        ``test`` operations) applies to the whole object, then only its ``status`` is kept, so
        ``metadata`` in a merge patch changes nothing. A JSON patch that fails (a ``test`` that
        does not hold, a path that is not there) is refused whole with the API's 422, which
        does not say why; a ``resourceVersion`` other than the object's is a 409 conflict."""
        with self.lock:
            obj = self.resources.get((plural, namespace, name))
            if obj is None:
                return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
            if content_type == JSON_PATCH and not isinstance(patch, list):
                return 400, _status(400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
            try:
                patched = (jsonpatch.apply_patch(obj, patch) if content_type == JSON_PATCH
                           else _merge(copy.deepcopy(obj), patch))
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException):
                return 422, {**_status(422, "Invalid", "the server rejected our request due to an error in our request"),
                             "details": {}}
            version = (patched.get("metadata") or {}).get("resourceVersion")
            if version != obj["metadata"]["resourceVersion"]:
                return 409, _status(409, "Conflict", f'Operation cannot be fulfilled on {plural}.{GROUP} "{name}": the '
                                                     "object has been modified; please apply your changes to the latest "
                                                     "version and try again")
            if "status" in patched:
                obj["status"] = patched["status"]
            else:
                obj.pop("status", None)
            self.versions += 1
            obj["metadata"]["resourceVersion"] = str(self.versions)
            self.status_writes.append((plural, name, json.loads(json.dumps(obj.get("status") or {}))))
            return 200, obj

    def create_job(self, namespace: str, job: dict) -> tuple[int, dict]:
        name = job["metadata"]["name"]
        with self.lock:
            self.create_requests.append((namespace, name))
            if (namespace, name) in self.jobs:
                return 409, _status(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
            job.setdefault("status", {})
            job["metadata"].update(uid=name, creationTimestamp=_now(), namespace=namespace)
            self.jobs[(namespace, name)] = job
            self.created.append(name)
            self.created_jobs[name] = job
        threading.Thread(target=self._run_job, args=(namespace, job), daemon=True).start()
        return 201, job

    def get_jobs(self, namespace: str, name: str | None, selector: str | None) -> tuple[int, dict]:
        with self.lock:
            if name:
                job = self.jobs.get((namespace, name))
                return (200, job) if job else (404, _status(404, "NotFound", f'jobs.batch "{name}" not found'))
            items = [j for (ns, _), j in self.jobs.items() if ns == namespace and _matches(j["metadata"]["labels"], selector)]
        return 200, {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {}, "items": items}

    def get_pods(self, namespace: str, name: str | None, log: bool, selector: str | None,
                 container: str | None = None) -> tuple[int, dict | str]:
        """Pods, or one pod's log: as the API server, a log names one of the pod's containers
        (400 otherwise), and a pod that is gone has none (404)."""
        with self.lock:
            if name and log:
                pod = self.pods.get((namespace, name))
                if pod is None:
                    return 404, _status(404, "NotFound", f'pods "{name}" not found')
                names = [c["name"] for c in pod["spec"]["containers"]]
                if container is not None and container not in names:
                    return 400, _status(400, "BadRequest", f"container {container} is not valid for pod {name}")
                if container is None and len(names) > 1:
                    return 400, _status(400, "BadRequest", f"a container name must be specified for pod {name}, "
                                                           f"choose one of: [{' '.join(names)}]")
                return 200, self.logs.get((namespace, name), "")
            items = [p for (ns, _), p in self.pods.items() if ns == namespace and _matches(p["metadata"]["labels"], selector)]
        return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}

    def delete_job(self, namespace: str, name: str, policy: str | None) -> tuple[int, dict]:
        with self.lock:
            job = self.jobs.pop((namespace, name), None)
            self.deleted.append((namespace, name, policy))
            if job is None:
                return 404, _status(404, "NotFound", f'jobs.batch "{name}" not found')
            for key in [k for k, p in self.pods.items() if p["metadata"]["labels"]["job-name"] == name]:
                self.pods.pop(key)
        for process in self.processes:
            if getattr(process, "job", None) == name and process.poll() is None:
                process.kill()
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}

    def _run_job(self, namespace: str, job: dict) -> None:
        """Play kubelet and Job controller for one Job."""
        name = job["metadata"]["name"]
        containers = job["spec"]["template"]["spec"]["containers"]
        container = containers[0]
        deadline = job["spec"].get("activeDeadlineSeconds")
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        started = time.monotonic()
        for index in range(MAX_PODS):
            pod_name = f"{name}-{_suffix()}"
            pod = {"metadata": {"name": pod_name, "namespace": namespace, "creationTimestamp": _now(),
                                "labels": {**job["spec"]["template"]["metadata"]["labels"], "job-name": name}},
                   "spec": {"containers": [{"name": c["name"], "image": c.get("image")} for c in containers]},
                   "status": {"phase": "Running", "conditions": [], "containerStatuses": [
                       _container_status(c, {"running": {"startedAt": _now()}}) for c in containers]}}
            with self.lock:
                self.pods[(namespace, pod_name)] = pod
            import os

            process = subprocess.Popen(container["command"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       env={**os.environ, **env}, text=True)
            process.job = name
            self.processes.append(process)
            if self.preempt_first_pod and index == 0:
                time.sleep(0.2)
                process.kill()
                process.communicate()
                pod["status"].update(phase="Failed", containerStatuses=_killed(pod), conditions=[
                    {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}])
                continue
            disruption = self.disrupt(name, index) if self.disrupt is not None else None
            try:
                remaining = None if deadline is None else max(0.0, deadline - (time.monotonic() - started))
                if disruption is not None and (remaining is None or disruption < remaining):
                    try:
                        output, _ = process.communicate(timeout=disruption)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.communicate()
                        with self.lock:
                            self.disrupted.append((name, index))
                        pod["status"].update(phase="Failed", containerStatuses=_killed(pod), conditions=[
                            {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}])
                        continue
                else:
                    output, _ = process.communicate(timeout=remaining)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
                self._finish(namespace, name, pod, output, 137, "Failed", "DeadlineExceeded",
                             "Job was active longer than specified deadline")
                return
            code = process.returncode
            if (namespace, name) not in self.jobs:
                return
            if code == 0:
                self._finish(namespace, name, pod, output, 0, "Complete", None, None)
            else:
                self._finish(namespace, name, pod, output, code, "Failed", "BackoffLimitExceeded",
                             "Job has reached the specified backoff limit")
            return

    def _finish(self, namespace, name, pod, output, code, condition, reason, message) -> None:
        image = pod["spec"]["containers"][0]["image"]
        container = pod["spec"]["containers"][0]["name"]
        with self.lock:
            self.logs[(namespace, pod["metadata"]["name"])] = output
            started = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
            pod["status"].update(phase="Succeeded" if code == 0 else "Failed", containerStatuses=[
                {"name": container, "ready": False, "restartCount": 0, "image": image, "imageID": image_id(image),
                 "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                          "startedAt": started, "finishedAt": _now()}}}])
            job = self.jobs.get((namespace, name))
            if job is None:
                return
            job["status"] = {"conditions": [{"type": condition, "status": "True", "reason": reason,
                                             "message": message, "lastTransitionTime": _now()}],
                             "succeeded" if code == 0 else "failed": 1}
