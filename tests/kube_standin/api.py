"""The API server's side of the stand-in: answers to the requests katuna makes (already
authorized), with the API server's defaulting, validation, paging and wording."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

from kube_standin import (
    admission,
    claims,
    configmaps,
    etcd,
    event_writes,
    events,
    fields,
    job_fields,
    job_updates,
    katib_api,
    logs,
    patches,
    request_options,
    secrets,
    sink_bindings,
)
from kube_standin.jobs import owned_pods
from kube_standin.objects import (
    already_exists,
    deletes_nothing,
    invalid,
    namespace_refusal,
    not_found,
    snapshot,
    status,
    unmet_precondition,
)
from kube_standin.selectors import matches
from kube_standin.server import KINDS, Call
from kube_standin.structural import Refused
from kube_standin.validation import defaulted, generated_selector_problems, job_problems, undecodable

JOB_PATCH_TYPES = (patches.JSON_PATCH, patches.MERGE_PATCH, patches.STRATEGIC_MERGE_PATCH, patches.APPLY_PATCH)
"""The patch types the API server takes for a built-in kind, in the order it lists them."""

PLURALS = {"Study": "studies", "Experiment": "experiments"}
ORPHANS_PODS = ("child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to "
                "remove them")
"""The API server's warning on a Job delete that leaves its propagation policy unset (batch/v1's
default orphans the pods)."""


class ApiServer:
    """Request handling over the cluster's objects (a mixin of :class:`kube_stub.KubeStub`)."""

    def serve(self, call: Call) -> tuple[int, dict | str | bytes]:
        """Answer a non-watch request (already authorized)."""
        if (refused := request_options.refusal(call, self._patch_types(call))) is not None:
            return refused
        if call.method in ("POST", "PUT") and (refused := namespace_refusal(call.namespace, call.body)) is not None:
            return refused
        if (call.group, call.resource) in self.crds:
            if call.method == "POST" and not call.name and (late := self.answer_late(call)) is not None:
                return late
            return self.serve_workload(call, call.version)
        if (call.group, call.resource) == ("events.k8s.io", "events"):
            return self._events_v1(call)
        call = katib_api.keyed(call)
        if self._custom(call.resource) and call.method == "POST" and not call.name:
            return katib_api.create(self, call.resource, call.namespace or "", call.body,
                                    call.query.get("fieldValidation"), call.warnings, call.dry_run)
        if self._custom(call.resource) and call.method == "DELETE" and call.name and not call.subresource:
            options = call.delete_options()
            return katib_api.delete(self, call.resource, call.namespace or "", call.name, options,
                                    options.get("propagationPolicy"))
        if call.resource == "configmaps" and call.method == "POST" and not call.name:
            return configmaps.create(self, call.namespace or "", call.body, call.dry_run)
        if call.resource == "persistentvolumeclaims" and call.method == "POST" and not call.name:
            return claims.create(self, call.namespace or "", call.body, call.dry_run)
        if call.resource == "secrets" and call.method == "POST" and not call.name:
            return secrets.create(self, call.namespace or "", call.body, call.dry_run, call.query.get("fieldValidation"),
                                  call.warnings)
        if call.resource == "secrets" and call.method == "DELETE" and call.name:
            return secrets.delete(self, call.namespace or "", call.name, deletes_nothing(call.delete_options()))
        if call.resource == "secrets" and call.method == "DELETE":
            return secrets.delete_collection(self, call.namespace or "", call.query.get("labelSelector"),
                                             call.query.get("fieldSelector"), deletes_nothing(call.delete_options()))
        if call.resource == "jobs" and call.method == "POST" and (late := self.answer_late(call)) is not None:
            return late
        if call.resource == "jobs" and call.method == "POST":
            return self.create_job(call.namespace or "", call.body or {}, call.dry_run,
                                   call.query.get("fieldValidation"), call.warnings)
        if call.resource == "jobs" and call.method == "PATCH" and call.name and not call.subresource:
            return self.patch_job(call.namespace or "", call.name, call.body, call.content_type,
                                  call.query.get("fieldValidation"), call.dry_run, call.warnings)
        if call.resource == "jobs" and call.method == "DELETE":
            options = call.delete_options()
            if options.get("propagationPolicy") is None and options.get("orphanDependents") is None:
                call.warnings.append(ORPHANS_PODS)
            if not call.name:
                return self.delete_jobs(call.namespace or "", call.query.get("labelSelector"),
                                        options.get("propagationPolicy"), deletes_nothing(options),
                                        call.query.get("fieldSelector"))
            return self.delete_job(call.namespace or "", call.name, options.get("propagationPolicy"), options)
        if call.resource == "events" and call.method == "GET" and not call.name:
            with self.lock:
                return events.listed(self.events, call.namespace, call.query.get("fieldSelector"), self.history.version)
        if call.subresource == "log" and call.method == "GET":
            return self.read_log(call.namespace or "", call.name or "", call.query.get("container"), call.query)
        if call.subresource == "status" and call.method == "PATCH":
            return self.patch_status(call.resource, call.namespace or "", call.name or "", call.body,
                                     call.content_type, call.query.get("fieldValidation"), call.dry_run)
        if self._custom(call.resource) and call.method == "PATCH" and call.name and not call.subresource:
            return patches.patch(self, call.resource, katib_api.qualified(call.resource), call.namespace or "",
                                 call.name, call.body, call.content_type, call.query.get("fieldValidation"),
                                 warnings=call.warnings, dry_run=call.dry_run)
        if call.method == "GET" and not call.subresource:
            return self.read(call.resource, call.namespace, call.name, call.query.get("labelSelector"),
                             call.query.get("limit"), call.query.get("continue"), call.query.get("fieldSelector"))
        return 405, status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _events_v1(self, call: Call) -> tuple[int, dict]:
        """Events through ``events.k8s.io/v1``: created (:mod:`kube_standin.event_writes`) and listed."""
        if call.method == "POST" and not call.name:
            return event_writes.create(self, call.namespace or "", call.body, call.dry_run,
                                       call.query.get("fieldValidation"), call.warnings)
        if call.method == "GET" and not call.name:
            with self.lock:
                code, listed = events.listed(self.events, call.namespace, call.query.get("fieldSelector"),
                                             self.history.version)
            if code == 200:
                listed.update(apiVersion="events.k8s.io/v1",
                              items=[event_writes.as_events_v1(e) for e in listed["items"]])
            return code, listed
        return 405, status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _table(self, resource: str) -> dict:
        return {"jobs": self.jobs, "pods": self.pods, "nodes": self.nodes, "namespaces": self.namespaces,
                "configmaps": self.configmaps, "secrets": self.secrets, "persistentvolumeclaims": self.claims,
                "limitranges": self.limit_ranges}[resource]

    @staticmethod
    def _patch_types(call: Call) -> tuple[str, ...]:
        """The patch types the API server takes for ``call``'s resource: a built-in kind's take a
        strategic merge patch too, a custom resource's do not (:mod:`kube_standin.patches`)."""
        return JOB_PATCH_TYPES if call.group in ("", "batch") else patches.ACCEPTED

    @staticmethod
    def _custom(resource: str) -> bool:
        """Whether ``resource`` (a stand-in key) is a custom resource: katuna's or Katib's."""
        return resource in PLURALS.values() or "." in resource

    def _objects(self, resource: str, namespace: str | None) -> list[dict]:
        if any(crd.plural == resource for crd in self.crds.values()):
            return [o for (plural, ns, _), o in self.workloads.items() if plural == resource and namespace in (None, ns)]
        if self._custom(resource):
            return [o for (plural, ns, _), o in self.resources.items() if plural == resource and namespace in (None, ns)]
        return [o for o in self._table(resource).values() if namespace in (None, o["metadata"].get("namespace"))]

    def read(self, resource: str, namespace: str | None, name: str | None, selector: str | None,
             limit: str | None = None, token: str | None = None, field_selector: str | None = None) -> tuple[int, dict]:
        """One object (404 when it is not there), or a list by namespace and name of those the
        label and field selectors select (:mod:`kube_standin.fields`) carrying the
        current resourceVersion, ``limit`` at a time with a ``continue`` token for the rest and,
        when no selector filters it, ``remainingItemCount`` (as etcd3's ``GetList``, which leaves
        it unset where a selector makes the count unknown). A token whose version left the kept
        history (etcd compacted it) is 410 Expired. Unlike the API server, a later page shows
        the objects as they are now, not as of the first page's version."""
        crd = next((c for c in self.crds.values() if c.plural == resource), None)
        kind = crd.as_kind() if crd is not None else (katib_api.kind_of(resource) if "." in resource else
                KINDS[("katuna.dev" if resource in PLURALS.values() else "batch" if resource == "jobs" else "",
                       resource)])
        with self.lock:
            if name:
                found = [o for o in self._objects(resource, namespace) if o["metadata"]["name"] == name]
                group = kind.api_version.rpartition("/")[0]
                qualified = katib_api.qualified(resource) if "." in resource else f"{resource}.{group}".rstrip(".")
                return (200, snapshot(found[0])) if found else not_found(qualified, name)
            chosen = fields.terms(resource, field_selector)
            items = sorted((o for o in self._objects(resource, namespace)
                            if matches(o["metadata"].get("labels") or {}, selector)
                            and fields.matches(resource, o, chosen)), key=_key)
            metadata: dict = {"resourceVersion": str(self.history.version)}
            if token:
                after = _continue_from(token)
                if after is None:
                    return 400, status(400, "BadRequest", "continue key is not valid: incorrect encoded start "
                                                          "resourceVersion (version meta.k8s.io/v1)")
                if -1 < after[1] < self.history.first_kept - 1:
                    return _continue_expired(after[0])
                items = [o for o in items if _key(o) > after[0]]
            if limit and 0 < int(limit) < len(items):
                metadata["continue"] = _continue_token(_key(items[int(limit) - 1]), self.history.version)
                if not selector:
                    metadata["remainingItemCount"] = len(items) - int(limit)
                items = items[:int(limit)]
            return 200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": metadata,
                         "items": [snapshot(o) for o in items]}

    def get_jobs(self, namespace: str, name: str | None, selector: str | None) -> tuple[int, dict]:
        return self.read("jobs", namespace, name, selector)

    def get_pods(self, namespace: str, name: str | None, log: bool, selector: str | None,
                 container: str | None = None) -> tuple[int, dict | bytes]:
        return self.read_log(namespace, name or "", container) if log else self.read("pods", namespace, name, selector)

    def watch(self, call: Call, until: float, bookmarks: float | None) -> Iterator[dict]:
        """Watch events of ``call``'s resource: ADDED for what exists when no version is given,
        then every change after the version, in order."""
        call = katib_api.keyed(call)
        selector = call.query.get("labelSelector")
        chosen = fields.terms(call.resource, call.query.get("fieldSelector"))
        version = call.query.get("resourceVersion") or "0"
        with self.lock:
            if version == "0":
                start = self.history.version
                current = [{"type": "ADDED", "object": snapshot(o)} for o in self._objects(call.resource, call.namespace)
                           if matches(o["metadata"].get("labels") or {}, selector)]
            else:
                start, current = int(version), []
                self.history.since(start)
        yield from (event for event in current if fields.matches(call.resource, event["object"], chosen))
        yield from (event for event in self.history.follow(start, call.resource, call.namespace, selector, until,
                                                           bookmarks)
                    if event["type"] == "BOOKMARK" or fields.matches(call.resource, event["object"], chosen))

    def read_log(self, namespace: str, name: str, container: str | None,
                 query: dict[str, str] | None = None) -> tuple[int, dict | bytes]:
        """A pod's log: as the API server, a log names one of the pod's containers (400 otherwise),
        a pod not yet bound has an empty one (204: its log has no location), a container not yet
        started has none (400), nor has the run before a container's current one (``previous``,
        400) where it never restarted (the kubelet's ``validateContainerLogStatus`` looks for its
        last terminated state first; the first container run again in place under
        ``restartPolicy: OnFailure`` has one, its run before the current one, whose log is
        served: :meth:`~kube_standin.pod_ends.PodEnds.restart`; while it waits out its back-off to
        run again, a read of its current run is served that run's log too:
        :func:`~kube_standin.logs.run_served`), a pod that is gone
        has none (404), a pod on a node whose kubelet does not answer gets the failed dial (500), a
        pod whose log file is gone from its node (:attr:`lost_logs`) the kubelet's failed open
        (400, as ``kubectl logs`` shows it); the log options as the kubelet applies them (:mod:`kube_standin.logs`).
        Only the first container and the init containers run a command, so only their logs have
        lines (the others are sidecars); an init container's is served by its name.
        ``on_log_read``, when set, is called with each read's pod and query before it is answered."""
        if self.on_log_read is not None:
            self.on_log_read(name, query or {})
        refused = logs.refusal(name, query or {})
        if refused is not None:
            return refused
        with self.lock:
            pod = self.pods.get((namespace, name))
            if pod is None:
                return not_found("pods", name)
            names = [c["name"] for c in pod["spec"]["containers"]]
            inits = [c["name"] for c in pod["spec"].get("initContainers") or []]
            if container is not None and container not in names + inits:
                return 400, status(400, "BadRequest", f"container {container} is not valid for pod {name}")
            if container is None and len(names) > 1:
                also = f" or one of the init containers: [{' '.join(inits)}]" if inits else ""
                return 400, status(400, "BadRequest", f"a container name must be specified for pod {name}, "
                                                      f"choose one of: [{' '.join(names)}]{also}")
            container = container or names[0]
            if not pod["spec"].get("nodeName"):
                return 204, b""
            held = next((s for s in [*pod["status"].get("containerStatuses", []),
                                     *pod["status"].get("initContainerStatuses", [])] if s["name"] == container), {})
            try:
                earlier = logs.run_served(held, container, name, logs.previous(query or {}))
            except ValueError as exc:
                return 400, status(400, "BadRequest", str(exc))
            node = pod["spec"]["nodeName"]
            if node in self.unreachable:
                return 500, status(500, "", f'Get "https://{node}:10250/containerLogs/{namespace}/{name}/{container}": '
                                            f"dial tcp {node}:10250: connect: no route to host")
            if (namespace, name) in self.lost_logs:
                path = f"/var/log/pods/{namespace}_{name}_{pod['metadata']['uid']}/{container}/0.log"
                return 400, status(400, "BadRequest", f'failed to try resolving symlinks in path "{path}": lstat '
                                                      f"{path}: no such file or directory")
            if container in inits:
                return 200, logs.serve(self.kubelets.init_log_of(pod, container), query or {}, self.clock.time())
            if container != names[0]:
                return 200, b""
            if earlier:
                return 200, logs.serve(self.kubelets.previous_log_of(pod), query or {}, self.clock.time())
            stored = self.logs.get((namespace, name))
            if stored:
                return 200, logs.serve(stored, query or {}, self.clock.time())
            lines, now = self.kubelets.log_of(pod), self.clock.time()
            self.kubelets.served(pod, query or {}, now)
            return 200, logs.serve(lines, query or {}, now)

    def answer_late(self, call: Call) -> tuple[int, dict] | None:
        """The 504 of a create (a Job's, or a workload's of an installed operator's kind) named
        in :attr:`late_creates`, whose object is stored only when :meth:`land_late_creates` is
        called; None for any other. So the API server answers a create it could not finish within
        its timeout, while the create goes on and may store the object after the answer
        (``finisher.FinishRequest``: "we are going to send a timeout response to the caller, but
        the asynchronous goroutine (sender) is still executing")."""
        name = ((call.body or {}).get("metadata") or {}).get("name")
        with self.lock:
            if name not in self.late_creates:
                return None
            self.late_creates.discard(name)
            self.held_creates.append((call.namespace or "", call.body or {}, call.query.get("fieldValidation")))
        return 504, status(504, "Timeout", "request did not complete within requested timeout - context deadline exceeded")

    def land_late_creates(self) -> None:
        """Store the objects whose creates were answered 504 (:meth:`answer_late`)."""
        with self.lock:
            held, self.held_creates = self.held_creates, []
        for namespace, body, directive in held:
            group, _, version = str(body.get("apiVersion", "")).rpartition("/")
            crd = next((c for c in self.crds.values() if (c.group, c.kind) == (group, body.get("kind"))), None)
            if crd is None:
                self.create_job(namespace, body, directive=directive)
                continue
            with self.lock:
                self._create_workload(crd, namespace, body, version)

    def create_job(self, namespace: str, job: dict, dry_run: bool = False, directive: str | None = None,
                   warnings: list[str] | None = None) -> tuple[int, dict]:
        """Create a Job: refused as the API server refuses it, else defaulted and stored, where
        the Job controller sees it; a ``dry_run`` stores nothing and is seen by none. Fields its
        schema lacks are refused, warned of or passed over as ``directive`` (the request's
        ``fieldValidation``) says (:mod:`kube_standin.job_fields`); a pod template short of the
        namespace's Pod Security warn level is warned of (:mod:`kube_standin.admission`); a
        SinkBinding that selects it binds it (:mod:`kube_standin.sink_bindings`)."""
        name = job.get("metadata", {}).get("name", "")
        directive = directive or "Warn"
        with self.lock:
            if not dry_run:
                self.create_requests.append((namespace, name))
            if namespace not in self.namespaces:
                return not_found("namespaces", namespace)
            unreadable = undecodable(job)
            unknown = [] if directive == "Ignore" else job_fields.unknown_fields(job)
            if unknown and directive == "Strict":
                unreadable = "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)
            elif warnings is not None:
                warnings += [f'unknown field "{f}"' for f in unknown]
            if unreadable:
                return 400, status(400, "BadRequest", f'Job in version "v1" cannot be handled as a Job: {unreadable}')
            problems = job_problems(job)
            if not problems:
                job = defaulted(snapshot(job), str(uuid.uuid4()))
                problems = generated_selector_problems(job)
            if problems:
                return invalid("Job", "jobs.batch", name, problems)
            if (namespace, name) in self.jobs:
                return already_exists("jobs.batch", name)
            refused = admission.job_refusal(name, self.quotas.get(namespace),
                                            sum(1 for where, _ in self.jobs if where == namespace))
            if refused is not None:
                return 403, status(403, "Forbidden", refused, {"name": name, "group": "batch", "kind": "jobs"})
            if warnings is not None:
                warnings += admission.workload_warnings(self.namespaces[namespace], job["spec"].get("template") or {})
            if self.queued:
                job["spec"]["suspend"] = True
            job = sink_bindings.bound(self.sink_bindings, namespace, job)
            job["metadata"].update(creationTimestamp=self.clock.stamp(), namespace=namespace, generation=1)
            if dry_run:
                return 201, job
            if (too_large := etcd.store_refusal(job)) is not None:
                return too_large
            self.jobs[(namespace, name)] = job
            self.created.append(name)
            self.created_jobs[name] = job
            self.history.record("ADDED", "jobs", job)
            return 201, snapshot(job)

    def patch_job(self, namespace: str, name: str, body: object, content_type: str, directive: str | None = None,
                  dry_run: bool = False, warnings: list[str] | None = None) -> tuple[int, dict]:
        """A patch of a Job (JSON patch, JSON merge or strategic merge, the last the same as a
        merge for the fields a Job may change; server-side apply is not implemented: 501), decoded
        as the API server decodes it (:func:`kube_standin.job_updates.patch_refusal`,
        ``fieldValidation`` as ``directive``), against the stored resourceVersion where it names
        one (409 otherwise): a patch of a field fixed at creation (its pod template,
        ``completions``, ``completionMode``, ...: :mod:`kube_standin.job_updates`) is 422;
        ``spec.suspend`` and the metadata may change, and the Job controller then acts on it;
        a SinkBinding that selects the patched Job binds it first, as its webhook does.
        A ``dry_run`` stores nothing, nor does a patch that changes nothing."""
        if content_type not in JOB_PATCH_TYPES:
            return 415, status(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                                            "accepted media types include: " + ", ".join(JOB_PATCH_TYPES))
        with self.lock:
            job = self.jobs.get((namespace, name))
            if job is None:
                return not_found("jobs.batch", name)
            try:
                patched = patches.applied(job, body, patches.MERGE_PATCH if content_type == patches.STRATEGIC_MERGE_PATCH
                                          else content_type, directive)
            except Refused as refused:
                return refused.code, refused.body
            patched.update({key: patched.get(key) or {} for key in ("metadata", "spec")})
            refused = job_updates.patch_refusal(job, patched, directive or "Warn", warnings)
            refused = refused or job_updates.version_refusal(job, patched)
            patched = sink_bindings.bound(self.sink_bindings, namespace, patched)
            problems = [] if refused else job_updates.update_problems(job, patched)
            if refused or problems:
                return refused or invalid("Job", "jobs.batch", name, problems)
            new = job_updates.stored(job, patched)
            if dry_run or new == job:
                return 200, snapshot(new)
            job["spec"] = new["spec"]
            job["metadata"].clear()
            job["metadata"].update(new["metadata"])
            self.history.record("MODIFIED", "jobs", job)
            return 200, snapshot(job)

    def delete_job(self, namespace: str, name: str, policy: str | None, options: dict | None = None) -> tuple[int, dict]:
        """Delete a Job; its pods go with ``Background``/``Foreground`` and stay (orphaned) with
        the default ``Orphan`` of ``batch/v1`` Jobs. A precondition of ``options`` that does not
        hold is a 409 conflict, and deletes nothing; so does a dry run, answered as done."""
        with self.lock:
            job = self.jobs.get((namespace, name))
            unmet = unmet_precondition("Job", "batch", job, options or {}) if job is not None else None
            if unmet is None and job is not None and deletes_nothing(options or {}):
                return 200, _job_deleted(job)
            self.deleted.append((namespace, name, policy))
            return unmet or self.remove_job(namespace, name, policy)

    def delete_jobs(self, namespace: str, selector: str | None, policy: str | None,
                    dry_run: bool = False, field_selector: str | None = None) -> tuple[int, dict]:
        """Delete the collection of a namespace's Jobs that ``selector`` and ``field_selector``
        select, each as one delete would (its pods going by ``policy``), answered as the API
        server answers a DeleteCollection: the list of the objects deleted (a ``dry_run``'s,
        none deleted). A field selector a Job's fields do not take is 400, nothing deleted."""
        try:
            terms = fields.terms("jobs", field_selector)
        except ValueError as exc:
            return 400, status(400, "BadRequest", str(exc))
        with self.lock:
            self.collection_deletes.append((namespace, selector, policy))
            chosen = [job for (held, _), job in sorted(self.jobs.items())
                      if held == namespace and matches(job["metadata"].get("labels") or {}, selector)
                      and fields.matches("jobs", job, terms)]
            for job in [] if dry_run else chosen:
                self.deleted.append((namespace, job["metadata"]["name"], policy))
                self.remove_job(namespace, job["metadata"]["name"], policy)
            return 200, {"kind": "JobList", "apiVersion": "batch/v1",
                         "metadata": {"resourceVersion": str(self.history.version)},
                         "items": [snapshot(job) for job in chosen]}

    def remove_job(self, namespace: str, name: str, policy: str | None) -> tuple[int, dict]:
        with self.lock:
            job = self.jobs.pop((namespace, name), None)
            if job is None:
                return not_found("jobs.batch", name)
            for pod in owned_pods(self, job):
                if policy in ("Background", "Foreground"):
                    self.delete_pod(pod)
                else:
                    pod["metadata"]["ownerReferences"] = []
                    self.history.record("MODIFIED", "pods", pod)
            self.history.record("DELETED", "jobs", job)
            return 200, _job_deleted(job)


def _job_deleted(job: dict) -> dict:
    """The Status the API server answers a Job's delete with."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": job["metadata"]["name"], "group": "batch", "kind": "jobs", "uid": job["metadata"]["uid"]}}


def _key(obj: dict) -> tuple[str, str]:
    """Where an object sits in the store's order: by namespace, then name."""
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _continue_token(after: tuple[str, str], version: int) -> str:
    """An opaque token for the rest of a list, as the API server's (base64 of JSON): where the
    page ended, and the resourceVersion of the first page (-1: continue at the latest)."""
    return base64.urlsafe_b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": version,
                                                "start": "/".join(after)}).encode()).decode()


def _continue_from(token: str) -> tuple[tuple[str, str], int] | None:
    """Where a token's list goes on (after which namespace and name), and its resourceVersion."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        start, version = decoded["start"], int(decoded["rv"])
    except (ValueError, KeyError, TypeError):
        return None
    namespace, _, name = start.partition("/")
    return (namespace, name), version


INCONSISTENT_CONTINUE = ("The provided continue parameter is too old to display a consistent list result. You can "
                         "start a new list without the continue parameter, or use the continue token in this response "
                         "to retrieve the remainder of the results. Continuing with the provided token results in an "
                         "inconsistent list - objects that were created, modified, or deleted between the time the "
                         "first chunk was returned and now may show up in the list.")
"""The API server's answer to a continue token whose resourceVersion was compacted
(kubernetes/kubernetes, staging/src/k8s.io/apiserver/pkg/storage/etcd3/errors.go)."""


def _continue_expired(after: tuple[str, str]) -> tuple[int, dict]:
    """410 Expired for a token older than the kept history (etcd's compaction), carrying a token
    that continues at the latest version, as ``handleCompactedErrorForPaging`` answers."""
    body = status(410, "Expired", INCONSISTENT_CONTINUE)
    body["metadata"] = {"continue": _continue_token(after, -1)}
    return 410, body
