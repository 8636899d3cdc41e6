"""Population-based training's checkpoints for trials that run as Kubernetes Jobs: a shared
PersistentVolumeClaim the operator names (``KATUNA_CHECKPOINT_CLAIM``), as Katib's
``resumePolicy: FromVolume`` volume.

The claim holds a folder per study (its uid) and in it one per trial (its number). Each trial's
primary container mounts its own folder at the path ``suggestion_trial_dir`` names
(``subPath: <study uid>/<trial number>``), as Katib's pod webhook mounts ``<experiment>/<trial>``
of the suggestion's volume. The folder is made by an init container of the trial's pod,
:data:`INIT_CONTAINER`, which runs katuna's own image (``KATUNA_CHECKPOINT_IMAGE``:
:mod:`functions.checkpoint_seed`) with the claim's study folder mounted: a copy of the parent's
folder made beside it and renamed once whole (empty in generation 0), within
``KATUNA_MAX_CHECKPOINT`` bytes, and nothing done where the trial's folder exists already, so a
pod run again (a preemption, a Job delivered twice, a later attempt) resumes from what it saved.
Its values come through environment variables to a fixed program (no shell), and it asks for
cpu and memory, requests and limits (:data:`RESOURCES`).

It reads the parent's folder as the user the trials write it as (:func:`trial_user`,
:func:`run_as`), so a file a trial saved readable by its own user only (``tempfile.mkstemp``'s
0600) is copied: the ``runAsUser`` and ``runAsGroup`` of the trial's primary container, else of
its pod, the pod's ``fsGroup`` and ``supplementalGroups`` applying to it as to every container
of the pod. A trial that names no user runs as its image's, which katuna cannot read: where the
trials are non-root (``KATUNA_TRIAL_POD_SECURITY=restricted``, or ``runAsNonRoot`` on the
trial's container or pod) it runs as katuna's image's user (:data:`IMAGE_USER`), reading what
that user or the pod's groups may; elsewhere as root, which images mostly run as. Whatever the
user, every capability is dropped (root without them reads only what root owns, or all may),
it may not escalate, and its root filesystem is read-only: the restricted level, but for a
trial that runs as root, which only a namespace below restricted admits. The checkpoint-drop Job
(:mod:`functions.core.checkpoint_drop`) runs as the same user. No I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.core.checkpoints import Checkpoint
from functions.core.errors import PermanentError

VOLUME = "katuna-checkpoints"
"""The name of the claim's volume in a trial's pod."""
INIT_CONTAINER = "katuna-checkpoint"
"""The init container that makes the trial's checkpoint folder."""
STUDY_FOLDER = "/checkpoints"
"""Where the init container finds the claim's folder of the study."""
COMMAND = ("python", "-I", "-m", "functions.checkpoint_seed")
"""The init container's fixed program, in katuna's image, run isolated (``-I``): its working
folder, the claim's folder of the study, which trials write to, is not on its import path, and
no ``PYTHON*`` variable changes how it starts."""
TRIAL_ENV, PARENT_ENV, MAX_ENV = "TRIAL_FOLDER", "PARENT_FOLDER", "KATUNA_MAX_CHECKPOINT"
"""The variables the init container reads: the trial's folder, its parent's (absent in
generation 0), both names in the study's folder, and the most bytes copied."""
IMAGE_USER = 10001
"""The user and group katuna's image runs as (``knative/Dockerfile``)."""
RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
"""The resources of katuna's own containers beside the trials' (this init container, and the
checkpoint-drop Job's): requests and limits of cpu and memory both, so a namespace whose
ResourceQuota tracks any of them (``cpu``, ``requests.memory``, ``limits.cpu``: every container
must ask for each, init containers too) admits their pods, and a LimitRange's defaults need not
fill them in. Small: a streamed copy, a chunk at a time, needs little memory, and half a core
copies the largest checkpoint (``KATUNA_MAX_CHECKPOINT``) in seconds; a pod is charged the most
of its init containers' and the sum of its containers', so below a trial's own they add nothing
to what the quota counts."""
USER_FIELDS = ("runAsUser", "runAsGroup", "runAsNonRoot")
"""The fields of a container's ``securityContext`` (else its pod's) that say whom it runs as."""
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class CheckpointVolume:
    """The claim the checkpoints live on, the image that seeds them, and the bytes copied at most."""

    claim: str
    image: str
    max_bytes: int


class CheckpointClash(PermanentError):
    """The trial's pod already has a volume, an init container or a mount where katuna's goes."""


def add_to_pod(pod: dict[str, Any], primary: str, volume: CheckpointVolume, uid: str,
               checkpoint: Checkpoint, restricted: bool) -> None:
    """Give the pod spec ``pod`` the claim's volume, its init container seeding the trial's
    folder as the ``primary`` container's user (:func:`run_as`: ``restricted``, the trials' pod
    security level, decides for an image's user), and that container's mount of the folder at
    the study's path."""
    containers = pod.get("containers") or []
    target = next((c for c in containers if c.get("name") == primary), None)
    if target is None:
        raise CheckpointClash(f"the trial's pod has no container {primary!r} to mount its checkpoint folder in")
    _refuse_clash(pod, target, checkpoint.mount)
    pod.setdefault("volumes", []).append({"name": VOLUME, "persistentVolumeClaim": {"claimName": volume.claim}})
    context = run_as(trial_user(pod, primary), restricted)
    pod["initContainers"] = [init_container(volume, uid, checkpoint, context), *(pod.get("initContainers") or [])]
    target.setdefault("volumeMounts", []).append(
        {"name": VOLUME, "mountPath": checkpoint.mount, "subPath": f"{uid}/{checkpoint.trial}"})


def init_container(volume: CheckpointVolume, uid: str, checkpoint: Checkpoint,
                   context: Mapping[str, Any]) -> dict[str, Any]:
    """The init container that makes the trial's folder in the claim's study folder ``uid``,
    its ``securityContext`` ``context`` (:func:`run_as`)."""
    env = [{"name": TRIAL_ENV, "value": str(checkpoint.trial)}, {"name": MAX_ENV, "value": str(volume.max_bytes)}]
    if checkpoint.parent_trial is not None:
        env.append({"name": PARENT_ENV, "value": str(checkpoint.parent_trial)})
    return {"name": INIT_CONTAINER, "image": volume.image, "command": list(COMMAND), "env": env,
            "workingDir": STUDY_FOLDER, "resources": copy.deepcopy(RESOURCES),
            "securityContext": copy.deepcopy(dict(context)), "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [{"name": VOLUME, "mountPath": STUDY_FOLDER, "subPath": uid}]}


def trial_user(pod: Mapping[str, Any], primary: str) -> dict[str, Any]:
    """The user fields a trial's pod spec ``pod`` gives its ``primary`` container: its
    ``runAsUser``, ``runAsGroup`` and ``runAsNonRoot`` (the container's own over the pod's, as
    the kubelet takes them) and the pod's ``fsGroup`` and ``supplementalGroups``; each only
    where it is an id, or for ``runAsNonRoot`` a boolean (a value a parameter filled in that is
    not one is left out)."""
    pod_context = pod.get("securityContext") or {}
    container: Mapping[str, Any] = next((c for c in pod.get("containers") or [] if c.get("name") == primary), {})
    own = container.get("securityContext") or {}
    found: dict[str, Any] = {}
    for field in USER_FIELDS:
        value = own[field] if own.get(field) is not None else pod_context.get(field)
        if (isinstance(value, bool) if field == "runAsNonRoot" else _is_id(value)):
            found[field] = value
    if _is_id(pod_context.get("fsGroup")):
        found["fsGroup"] = pod_context["fsGroup"]
    groups = pod_context.get("supplementalGroups")
    if isinstance(groups, list) and groups and all(_is_id(g) for g in groups):
        found["supplementalGroups"] = list(groups)
    return found


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID


def run_as(user: Mapping[str, Any], restricted: bool) -> dict[str, Any]:
    """The ``securityContext`` of a container of katuna's reading and writing the claim as the
    trials' ``user`` (:func:`trial_user`), or where it names none: katuna's image's user where
    the trials are non-root (their pod security level is ``restricted``, or they say
    ``runAsNonRoot``), root elsewhere; nothing it may escalate to. ``runAsNonRoot`` is said
    either way, so a pod's own ``runAsNonRoot: true`` does not refuse a trial's root user."""
    non_root = restricted or user.get("runAsNonRoot") is True
    uid = user.get("runAsUser", IMAGE_USER if non_root else 0)
    context: dict[str, Any] = {"runAsUser": uid, "runAsNonRoot": uid != 0, "allowPrivilegeEscalation": False,
                               "privileged": False, "readOnlyRootFilesystem": True,
                               "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    group = user.get("runAsGroup", IMAGE_USER if "runAsUser" not in user and non_root else None)
    if group is not None:
        context["runAsGroup"] = group
    return context


def _refuse_clash(pod: Mapping[str, Any], target: Mapping[str, Any], mount: str) -> None:
    """Refuse a pod whose own volume or init container has katuna's name, or whose primary
    container mounts something at the checkpoint path already: the API server would refuse the
    duplicate, or the trial would not find its folder there."""
    if any(v.get("name") == VOLUME for v in pod.get("volumes") or []):
        raise CheckpointClash(f"the trial's pod has a volume named {VOLUME!r}, the name of katuna's checkpoint volume")
    if any(c.get("name") == INIT_CONTAINER for c in pod.get("initContainers") or []):
        raise CheckpointClash(f"the trial's pod has an init container named {INIT_CONTAINER!r}, the name of "
                              f"katuna's checkpoint init container")
    taken = [m.get("mountPath") for m in target.get("volumeMounts") or []]
    if any(str(path).rstrip("/") == mount.rstrip("/") for path in taken):
        raise CheckpointClash(f"the trial's container mounts a volume at {mount}, where its checkpoint folder "
                              f"(suggestion_trial_dir) goes")
