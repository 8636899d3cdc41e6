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
Its values come through environment variables to a fixed program (no shell), it runs as
katuna's image's non-root user with nothing it may escalate to (restricted-level, whatever the
trials' level), and it asks for cpu and memory, requests and limits (:data:`RESOURCES`). No I/O.
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
SECURITY = {"runAsNonRoot": True, "runAsUser": IMAGE_USER, "runAsGroup": IMAGE_USER, "allowPrivilegeEscalation": False,
            "privileged": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}
"""The init container's ``securityContext``: restricted, whatever the trials' pods are."""


@dataclass(frozen=True)
class CheckpointVolume:
    """The claim the checkpoints live on, the image that seeds them, and the bytes copied at most."""

    claim: str
    image: str
    max_bytes: int


class CheckpointClash(PermanentError):
    """The trial's pod already has a volume, an init container or a mount where katuna's goes."""


def add_to_pod(pod: dict[str, Any], primary: str, volume: CheckpointVolume, uid: str,
               checkpoint: Checkpoint) -> None:
    """Give the pod spec ``pod`` the claim's volume, its init container seeding the trial's
    folder, and the ``primary`` container's mount of that folder at the study's path."""
    containers = pod.get("containers") or []
    target = next((c for c in containers if c.get("name") == primary), None)
    if target is None:
        raise CheckpointClash(f"the trial's pod has no container {primary!r} to mount its checkpoint folder in")
    _refuse_clash(pod, target, checkpoint.mount)
    pod.setdefault("volumes", []).append({"name": VOLUME, "persistentVolumeClaim": {"claimName": volume.claim}})
    pod["initContainers"] = [init_container(volume, uid, checkpoint), *(pod.get("initContainers") or [])]
    target.setdefault("volumeMounts", []).append(
        {"name": VOLUME, "mountPath": checkpoint.mount, "subPath": f"{uid}/{checkpoint.trial}"})


def init_container(volume: CheckpointVolume, uid: str, checkpoint: Checkpoint) -> dict[str, Any]:
    """The init container that makes the trial's folder in the claim's study folder ``uid``."""
    env = [{"name": TRIAL_ENV, "value": str(checkpoint.trial)}, {"name": MAX_ENV, "value": str(volume.max_bytes)}]
    if checkpoint.parent_trial is not None:
        env.append({"name": PARENT_ENV, "value": str(checkpoint.parent_trial)})
    return {"name": INIT_CONTAINER, "image": volume.image, "command": list(COMMAND), "env": env,
            "workingDir": STUDY_FOLDER, "resources": copy.deepcopy(RESOURCES),
            "securityContext": copy.deepcopy(SECURITY), "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [{"name": VOLUME, "mountPath": STUDY_FOLDER, "subPath": uid}]}


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
