"""The user an image runs as, and the kubelet's refusal to start a container that must not run as
root with one that may (``verifyRunAsNonRoot``, pkg/kubelet/kuberuntime/security_context_others.go,
called by ``generateContainerConfig`` once the container's environment is made).

The container runtime reads the image config's ``USER`` (containerd's ``getUserFromImage``): its
part before any ``:group``, a uid when it parses as a 64-bit integer, else a user name; an image
that names none runs as root (the kubelet's ``getImageUser`` takes uid 0). The container's
``securityContext`` fields win over the pod's (``DetermineEffectiveSecurityContext``). The
kubelet's error becomes the container's ``CreateContainerConfigError`` message, and it is met
again at every sync: the container never starts.
"""

from __future__ import annotations

import json
import re

MAX_USER = 2**31 - 1
_NUMBER = re.compile(r"^[+-]?[0-9]+$")


def image_user(user: str) -> tuple[int | None, str]:
    """``getUserFromImage``: the uid, or the name, of an image config's ``USER``; (None, "") for none."""
    if not user:
        return None, ""
    name = user.split(":")[0]
    if _NUMBER.match(name) and -(2**63) <= int(name) < 2**63:
        return int(name), ""
    return None, name


def non_root_refusal(pod: dict, container: dict, user: str) -> str | None:
    """Why the kubelet will not start ``container`` of ``pod`` from an image whose ``USER`` is
    ``user``, in its words; None when it may."""
    pod_context = pod["spec"].get("securityContext") or {}
    own = container.get("securityContext") or {}

    def effective(field: str):
        return own[field] if own.get(field) is not None else pod_context.get(field)

    if not effective("runAsNonRoot"):
        return None
    who = f'(pod: {json.dumps(_pod(pod))}, container: {container["name"]})'
    if effective("runAsUser") is not None:
        return f"container's runAsUser breaks non-root policy {who}" if effective("runAsUser") == 0 else None
    uid, name = image_user(user)
    if uid is None and name:
        return f"container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is non-root {who}"
    uid = uid or 0
    if uid == 0:
        return f"container has runAsNonRoot and image will run as root {who}"
    if not 0 <= uid <= MAX_USER:
        return (f"container has runAsNonRoot and image has an invalid user id ({uid}). (Must be 1-({MAX_USER})): must "
                f"be between 0 and {MAX_USER}, inclusive {who}")
    return None


def _pod(pod: dict) -> str:
    """``format.Pod``: ``name_namespace(uid)``."""
    metadata = pod["metadata"]
    return f"{metadata['name']}_{metadata['namespace']}({metadata['uid']})"
