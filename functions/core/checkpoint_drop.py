"""The Job that deletes a deleted study's checkpoints from the shared claim
(``KATUNA_CHECKPOINT_CLAIM``, :mod:`functions.core.checkpoint_volume`): the claim's folder
``<study uid>``, with every trial's folder in it.

A study's deletion asks for it before the study's record goes, so a deletion cut short (the
service restarted, the cluster refused) keeps the study, and deleting it again asks again. The
Job is named from the study's uid (:func:`job_name`), so asking twice, or in any order with
other deliveries, is one Job: a conflict is the Job asked for already. Once made, Kubernetes
runs it to its end whatever becomes of the service: a pod that fails (a trial's pod still
writing as it ends) is run again (:data:`BACKOFF_LIMIT`, with the Job controller's growing
back-off), within :data:`DEADLINE` seconds in all, and the finished Job is kept for the trial
Jobs' ``ttlSecondsAfterFinished`` (``KATUNA_K8S_TTL_SECONDS``), long enough to see a failure.

Its one container runs katuna's image (``KATUNA_CHECKPOINT_IMAGE``) with a fixed program
(:data:`COMMAND`, no shell) whose only input is the study's uid, checked to be one
(:func:`valid_uid`), in a variable; it deletes that folder of the claim (mounted whole at
:data:`CLAIM_FOLDER`, its working folder) by folder descriptors, following no link
(:mod:`functions.checkpoint_drop`). It runs as the user the study's trials run as, the user
their seed init container runs as (:func:`~functions.core.checkpoint_volume.run_as`), so it may
delete what they wrote (the seed's folders are writable by every user) and no more: the user
and groups the trial's primary container and pod name, which its files are owned by; where they
name none, the trial ran as its image's user, which katuna cannot know: where the trials are
non-root (the ``restricted`` level, or their ``runAsNonRoot``) the Job runs as katuna's image's
(10001), elsewhere images mostly run as root and so does the Job. Whatever the user, every
capability is dropped (a root without them deletes only what root owns), it may not escalate,
and its root filesystem is read-only, restricted's pod security but for a root user.
It asks for the seed's small requests and limits of cpu and memory
(:data:`~functions.core.checkpoint_volume.RESOURCES`), which a namespace whose ResourceQuota
tracks them needs of every container.

A Job that fails all its pods leaves the folder on the claim, which nothing else would tell once
the study is gone: katuna's sweep of the cluster (:meth:`~functions.adapters.kubernetes_checkpoints.CheckpointDrops.sweep`)
logs a warning for each such Job (:func:`left`: the Job, the claim, the folder, what its last
pod said, and the likely cause), and runs it again (:func:`again`) once it has been failed
:data:`RETRY_AFTER` seconds, :data:`MAX_RUNS` runs in all, counted in its :data:`RUNS`
annotation: what a trial's pod still writing made fail deletes at the next, and a folder its
user may not empty is deleted once the operator, told, fixed its owner. A deletion asked again
runs a failed Job again at once.

With ``KATUNA_PRUNE_CHECKPOINTS``, the same Job deletes, while the study runs, the folders of
the trials no later trial copies (:func:`prune_job`, :data:`TRIALS_ENV` naming them): one Job
per trial end that freed them, named from the study's uid and that trial's number
(:func:`prune_name`), so a pass made again finds its Job made. No I/O.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from functions.core.checkpoint_volume import RESOURCES, VOLUME, CheckpointVolume, run_as
from functions.core.pod_security_restricted import RESTRICTED
from functions.core.workload_labels import MANAGED_BY, POD_LABELS

PREFIX = "katuna-checkpoints-"
"""The Job's name before the study's uid."""
COMMAND = ("python", "-I", "-m", "functions.checkpoint_drop")
"""The fixed program, in katuna's image, run isolated (``-I``): the claim, its working folder,
is not on its import path, and no ``PYTHON*`` variable changes how it starts."""
STUDY_ENV = "STUDY_FOLDER"
"""The variable naming the study's folder in the claim: its uid."""
TRIALS_ENV = "TRIAL_FOLDERS"
"""The variable naming, comma-separated, the trials' folders a prune Job deletes from the
study's folder (their numbers); where it is absent, the Job deletes the study's folder."""
PRUNE_PREFIX = "katuna-prune-"
"""A prune Job's name before the study's uid and the number of the trial whose end freed the folders."""
MOST_FOLDERS = 10_000
"""Trials' folders one prune Job may name, at most: a study's trials, at most
(:data:`functions.core.pbt.MOST_TRIALS`)."""
CLAIM_FOLDER = "/checkpoints"
"""Where the container finds the whole claim."""
CONTAINER = "delete-checkpoints"
OF_LABEL = "katuna.dev/checkpoints-of"
"""The label naming the study's uid whose checkpoints the Job deletes: none of a trial's, so no
sweep of trial Jobs (:data:`~functions.core.workload_labels.STRAY_SELECTOR`) ever takes it for one."""
BACKOFF_LIMIT = 6
"""Pods run again after a failure, 10 s, 20 s, ... apart (about ten minutes in all)."""
DEADLINE = 3600
"""Seconds the Job may run, all its pods together (``activeDeadlineSeconds``)."""
UID = re.compile(r"[a-z0-9]([a-z0-9-]{0,34}[a-z0-9])?")
"""A study's uid: katuna's twelve hex digits, or a Kubernetes resource's uid (36 characters)."""
POD_FIELDS = ("fsGroup", "supplementalGroups")
RUNS = "katuna.dev/runs"
"""The annotation counting the Job's runs (1 when absent: the first)."""
MAX_RUNS = 3
"""Runs of the Job in all, the first included, before katuna leaves the folder to the operator."""
RETRY_AFTER = 300
"""Seconds a failed Job is left, to be seen, before it runs again: less than the least
``ttlSecondsAfterFinished`` katuna gives (600), so the Job is still there to run again."""
DENIED = ("Permission denied", "Operation not permitted", "Read-only file system")
"""What the program's error says where its user may not delete a file of the folder."""


def valid_uid(uid: str) -> bool:
    """Whether ``uid`` is a study uid: one folder name, never ``..``, a ``/`` or a link's target."""
    return UID.fullmatch(uid) is not None


def job_name(uid: str) -> str:
    return f"{PREFIX}{uid}"


def drop_job(volume: CheckpointVolume, uid: str, user: Mapping[str, Any], level: str,
             ttl: int | None) -> dict[str, Any]:
    """The Job deleting the study ``uid``'s folder of the claim, run as ``user``
    (:func:`~functions.core.checkpoint_volume.trial_user`; empty: the trials' image's user,
    unknown), its pods meeting the trials' pod security ``level``, kept ``ttl`` seconds once
    finished."""
    if not valid_uid(uid):
        raise ValueError(f"not a study uid: {uid!r}")
    labels = {MANAGED_BY: "katuna", OF_LABEL: uid}
    container: dict[str, Any] = {"name": CONTAINER, "image": volume.image, "command": list(COMMAND),
                 "env": [{"name": STUDY_ENV, "value": uid}], "workingDir": CLAIM_FOLDER,
                 "resources": copy.deepcopy(RESOURCES), "securityContext": run_as(user, level == RESTRICTED),
                 "terminationMessagePolicy": "FallbackToLogsOnError",
                 "volumeMounts": [{"name": VOLUME, "mountPath": CLAIM_FOLDER}]}
    pod_context: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    pod_context.update({field: copy.deepcopy(user[field]) for field in POD_FIELDS if field in user})
    spec: dict[str, Any] = {"backoffLimit": BACKOFF_LIMIT, "activeDeadlineSeconds": DEADLINE, "template": {
        "metadata": {"labels": {**labels, **POD_LABELS}},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
                 "securityContext": pod_context, "containers": [container],
                 "volumes": [{"name": VOLUME, "persistentVolumeClaim": {"claimName": volume.claim}}]}}}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": job_name(uid), "labels": labels},
            "spec": spec}


def prune_name(uid: str, number: int) -> str:
    return f"{PRUNE_PREFIX}{uid}-{number}"


def prune_job(volume: CheckpointVolume, uid: str, number: int, numbers: Sequence[int], user: Mapping[str, Any],
              level: str, ttl: int | None) -> dict[str, Any]:
    """The Job deleting the folders of the trials ``numbers`` from the study ``uid``'s folder of
    the claim, freed by the end of trial ``number``: the drop Job (:func:`drop_job`: its user,
    pod security, bounds and program) named for that end and told which folders."""
    if not numbers or len(numbers) > MOST_FOLDERS or any(n < 0 for n in numbers):
        raise ValueError(f"expected 1 to {MOST_FOLDERS} trial numbers, got {len(numbers)}")
    job = drop_job(volume, uid, user, level, ttl)
    job["metadata"]["name"] = prune_name(uid, number)
    job["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": TRIALS_ENV, "value": ",".join(str(n) for n in numbers)})
    return job


def pruned_folders(job: Mapping[str, Any]) -> str | None:
    """The trials' folders a prune Job deletes (:data:`TRIALS_ENV`), or None for a drop Job."""
    container = (job["spec"]["template"]["spec"].get("containers") or [{}])[0]
    return next((e.get("value") for e in container.get("env") or [] if e.get("name") == TRIALS_ENV), None)


def failed_at(job: Mapping[str, Any]) -> tuple[str, float] | None:
    """The reason and the time (seconds since the epoch) a stored Job failed (its ``Failed``
    condition, true), or None."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            when = condition.get("lastTransitionTime")
            return str(condition.get("reason") or "Failed"), rfc3339_seconds(when) if isinstance(when, str) else 0.0
    return None


def rfc3339_seconds(stamp: str) -> float:
    """An API time (``2027-01-01T00:00:00Z``) as seconds since the epoch."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def runs(job: Mapping[str, Any]) -> int:
    """The Job's runs so far (:data:`RUNS`): 1 where it says none, or no number."""
    value = ((job.get("metadata") or {}).get("annotations") or {}).get(RUNS, "1")
    return int(value) if isinstance(value, str) and value.isdigit() else 1


def again(job: Mapping[str, Any], run: int) -> dict[str, Any]:
    """The stored drop Job ``job`` made anew as its run ``run``: its name, katuna's labels,
    its limits and its pod spec, without what the API server added to it (its selector, the
    controller's labels, its status)."""
    metadata, spec = job["metadata"], job["spec"]
    uid = metadata["labels"][OF_LABEL]
    labels = {MANAGED_BY: "katuna", OF_LABEL: uid}
    kept = {key: spec[key] for key in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished")
            if spec.get(key) is not None}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": metadata["name"], "labels": labels, "annotations": {RUNS: str(run)}},
            "spec": {**kept, "template": {"metadata": {"labels": {**labels, **POD_LABELS}},
                                          "spec": copy.deepcopy(spec["template"]["spec"])}}}


def left(job: Mapping[str, Any], namespace: str, reason: str, said: str | None, retry: bool) -> str:
    """The warning that the drop Job ``job`` failed (for ``reason``), its last pod having ``said``
    so: the Job, the claim and the folder left, the likely cause, and what comes next
    (``retry``: katuna runs it again)."""
    name, uid, run = job["metadata"]["name"], job["metadata"]["labels"][OF_LABEL], runs(job)
    pod = job["spec"]["template"]["spec"]
    claim = next((v.get("persistentVolumeClaim", {}).get("claimName") for v in pod.get("volumes") or []
                  if v.get("name") == VOLUME), None)
    user = ((pod.get("containers") or [{}])[0].get("securityContext") or {}).get("runAsUser")
    folders = pruned_folders(job)
    text = (f"Job {namespace}/{name} failed ({reason}, run {run} of {MAX_RUNS}): the checkpoints of the deleted "
            f"study of uid {uid} are left on claim {claim}, in its folder {uid}") if folders is None else (
            f"Job {namespace}/{name} failed ({reason}, run {run} of {MAX_RUNS}): the checkpoint folders {folders} "
            f"of the study of uid {uid}, which no later trial copies, are left on claim {claim}, in its folder {uid}")
    text += f"; its last pod said: {' '.join(said.split())}" if said else "; no pod of it said why"
    if said and any(words in said for words in DENIED):
        text += (f". Likely cause: its user (runAsUser {user}, as the trials' pod spec gives it, else their "
                 "image's) may not delete what the trials wrote there as another user: give the trials' pod "
                 "spec the runAsUser and fsGroup they write as, or make the folder deletable by that user")
    if retry:
        return text + f". katuna runs it again in {RETRY_AFTER} s"
    if folders is not None:
        return text + ". katuna runs it no more: they go with the study's folder once the study is deleted"
    return text + (f". katuna runs it no more: delete the folder {uid} from the claim by hand (as the user "
                   "that owns its files)")
