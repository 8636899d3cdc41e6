"""What a kubelet says of a container that must not run as root (``runAsNonRoot``, its own or
its pod's) while its image may, in its ``CreateContainerConfigError`` (``verifyRunAsNonRoot``,
pkg/kubelet/kuberuntime/security_context_others.go): the image's ``USER`` is unset or 0 (``image
will run as root``), a name (``image has non-numeric user (app), cannot verify user is
non-root``: the kubelet tells only a numeric user from root) or an invalid id; or the
container's own ``runAsUser`` is 0 (``container's runAsUser breaks non-root policy``). The
kubelet meets the same image and fields at every sync, so no wait starts the container: katuna
fails the trial at once, saying how to give the image a user."""

from __future__ import annotations

import re

from functions.core.start_failures import non_root_cause

_NON_ROOT = re.compile(r"^container has runAsNonRoot and image (?:(?P<root>will run as root)|has non-numeric user "
                       r"\((?P<name>.*)\), cannot verify user is non-root|has an invalid user id \((?P<uid>-?[0-9]+)\)\.)")
_ROOT_USER = re.compile(r"^container's runAsUser breaks non-root policy ")
IMAGE_NEVER = ("the kubelet cannot tell the image's user is not root at any try, so no retry can change it: build "
               "the image with a numeric USER other than 0 (USER 10001), or give the user id to run it as "
               "(kubernetes.runAsUser, or runAsUser in a trialSpec's securityContext)")
USER_NEVER = "no retry can change it: give a runAsUser other than 0, or none, where runAsNonRoot is true"


def non_root(message: str, image: str) -> tuple[str, str] | None:
    """The cause (:func:`~functions.core.start_failures.non_root_cause`) a kubelet's
    ``CreateContainerConfigError`` ``message`` gives for a container of ``image``, and why no
    retry helps, when it must not run as root where it may; None for any other message."""
    if _ROOT_USER.match(message):
        return non_root_cause(None, ""), USER_NEVER
    found = _NON_ROOT.match(message)
    if found is None:
        return None
    if found["root"]:
        runs_as = "root"
    elif found["name"] is not None:
        runs_as = f'the user name "{found["name"]}", which the kubelet cannot tell from root'
    else:
        runs_as = f"the invalid user id {found['uid']}"
    return non_root_cause(image, runs_as), IMAGE_NEVER
