"""Trials that could not start on a cluster, and the study that stops once its trials keep
failing to start for a cause every trial meets.

A trial pod whose image the kubelet cannot pull waits for as long as the start allowance
(``KATUNA_K8S_START_ALLOWANCE``) before its trial fails: a registry may be slow, rate-limit
pulls, or get the image pushed soon. So does one whose container reads a Secret or ConfigMap
(or a key of one) that is missing: its kubelet tries again at every sync, and the user may
create it meanwhile. But each trial of the study runs the same image and reads the same
objects, so a typo in one would cost every trial its allowance, the whole study through. So
each such failure keeps its cause (:func:`image_cause`: the image, and what the kubelet met;
:func:`missing_cause`: the object or key, and its namespace) as its reason's first words
(:func:`reason`), and once :data:`UNSTARTABLE_TRIALS` trials have failed, every one of them
for the same cause, naming an image or object the study's template itself gives (no trial's
parameters made it), with none of its trials completed, the study fails, saying why and how to
fix it (:func:`unstartable`; the fix is :func:`functions.core.start_fixes.fix`'s). A study whose
image or object depends on a trial's parameters, or that had a trial complete, goes on:
``maxFailedTrials`` bounds its failures.

A local trial whose program cannot be run (not found, not executable) or whose working
directory cannot be entered fails at once (:func:`program_cause`, :func:`directory_cause`); a
study whose template itself names that program or directory stops after 3 such failures too.

A pod whose container must not run as root (``runAsNonRoot``, katuna's own where trials must meet
restricted) while its image may (its ``USER`` unset, 0, or a name the kubelet cannot tell from
root) fails at once (:func:`non_root_cause`): the kubelet meets the same image at every try; a
study whose template itself names that image stops after 3 such failures, saying how to give it
a user.

A pod the API server refuses to create (the Job controller tries again for ever) waits the start
allowance as well where its ServiceAccount is missing (:func:`account_cause`) or its namespace's
ResourceQuota is full for now, and fails at once where its namespace's Pod Security level forbids
it, where a container of it does not ask for the cpu or memory its namespace's ResourceQuota tracks
(:func:`~functions.core.quota_causes.quota_cause`), where it asks for more than that quota allows in
all, or where a LimitRange of the namespace refuses it (:mod:`functions.core.quota_causes`); a study whose every trial meets one of these stops after 3, saying
what to create or change.

A pod no node of the cluster's pools can fit (it asks for more cpu, memory or GPUs than the
pool's machine type has, or for labels or taints no pool's nodes have) waits for nothing: the
cluster autoscaler says so (:func:`unfit_cause`), and the trial fails at once. Its cause names
what the pod asked for, so a study whose template itself asks for it (no trial's parameters in
its resources, nodeSelector, tolerations or affinity) stops after 3 such failures, saying what to
change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from functions.core import start_fixes
from functions.core.records import Counts, TrialRecord
from functions.core.spec import TrialTemplate

UNSTARTABLE_TRIALS = 3
"""Failed trials, every one unable to start for the same cause, after which the study fails."""
PREFIX = "could not start"
REFUSED = "katuna refused to start the attempt"
"""How the reason of a trial whose attempt katuna refused to start begins."""
_CAUSE = re.compile(r"^could not start: (?P<cause>[^;]*)(?:; |$)")


def image_cause(image: str, unparsed: bool) -> str:
    """The cause of a pod that cannot start for its ``image``: it cannot be pulled, or (``unparsed``)
    the kubelet cannot parse the reference at all."""
    return f'image "{image}" is no valid image reference' if unparsed else f'image "{image}" cannot be pulled'


def missing_cause(kind: str, name: str, namespace: str, key: str | None = None) -> str:
    """The cause of a pod that cannot start because a container reads the ``kind`` (``Secret``
    or ``ConfigMap``) ``name`` of ``namespace`` that is missing, or a ``key`` of it that is."""
    missing = f'{kind} "{name}" in namespace "{namespace}" is missing'
    return f'key "{key}" of {missing}' if key else missing


def non_root_cause(image: str | None, runs_as: str) -> str:
    """The cause of a pod whose container must not run as root (``runAsNonRoot``) while its
    ``image`` may: the image ``runs_as`` root, a user name, or an invalid user id; or (no
    ``image``) the container's own ``runAsUser`` is 0."""
    if image is None:
        return "the container's runAsUser is 0 (root), which runAsNonRoot forbids"
    return f'image "{image}" runs as {runs_as}, which runAsNonRoot forbids'.replace(";", ",")


def account_cause(name: str, namespace: str) -> str:
    """The cause of a pod the API server refuses because its ServiceAccount ``name`` is missing."""
    return f'ServiceAccount "{name}" in namespace "{namespace}" is missing'


def invalid_pod_cause(why: str) -> str:
    """The cause of a pod the API server's validation refuses (``Pod "x" is invalid``), ``why``
    in its words: what a pod may not hold that a Job's pod template may (an image with whitespace
    around it)."""
    return f"the API server refuses the pod as invalid: {why}".replace(";", ",")


def unfit_cause(asked: str, autoscaler: str) -> str:
    """The cause of a pod no node the cluster's pools can add would fit: what it ``asked`` for
    (its resources and nodeSelector), and the cluster ``autoscaler``'s words."""
    return (f"cannot be scheduled: the pod asks for {asked}, and no node the cluster's pools can add fits it "
            f"(cluster autoscaler: {autoscaler})").replace(";", ",")


def program_cause(program: str, why: str) -> str:
    """The cause of a local trial whose ``program`` (its command's first word) could not be run."""
    return f'program "{program}" cannot be run: {why}'.replace(";", ",")


def directory_cause(directory: str, why: str) -> str:
    """The cause of a local trial whose working ``directory`` could not be entered."""
    return f'working directory "{directory}" cannot be entered: {why}'.replace(";", ",")


def reason(message: str, cause: str | None, refused: bool = False) -> str:
    """A trial's reason when it could not start: the executor's ``message``, behind the ``cause``
    where it has one (the cause alone where the message would only repeat it); for an attempt
    katuna ``refused`` to start (:func:`refusal`), its refusal."""
    if refused:
        return refusal(message)
    if cause:
        return f"{PREFIX}: {cause}; {message}" if message else f"{PREFIX}: {cause}"
    return f"{PREFIX} {message}"


def refusal(message: str) -> str:
    """A trial's reason when katuna refused to start its attempt for what an earlier trial left
    (a link planted where it would log, a parent's checkpoint folder it does not copy)."""
    return f"{REFUSED}: {message}"


def _cause(trial: TrialRecord) -> str | None:
    """The cause of a trial that could not start for one (its reason's first line, the latest
    attempt's), else None."""
    found = _CAUSE.match(trial.reason.split("\n", 1)[0])
    return found.group("cause") if found else None


def may_be_unstartable(counts: Counts) -> bool:
    """Whether a study of these ``counts`` may stop for :func:`unstartable`: none of its trials
    completed or pruned, enough failed. Asked first, so that the failed trials of a study that
    has completed some (thousands, in a large study) are not read for each that fails to start."""
    return not (counts.complete or counts.pruned) and counts.failed >= UNSTARTABLE_TRIALS


def unstartable(template: TrialTemplate, counts: Counts, failed: Iterable[TrialRecord]) -> str | None:
    """Why the study stops, and how to fix it, if its trials keep failing to start for one
    cause (see the module): at least :data:`UNSTARTABLE_TRIALS` ``failed`` trials, none
    completed or pruned, each unable to start for the same image, Secret or ConfigMap of the
    study's template, for the same program or working directory of it that a local trial could
    not run or enter, or for the same pod no node fits that the template asks for. None otherwise."""
    if not may_be_unstartable(counts):
        return None
    causes = {_cause(trial) for trial in failed}
    cause = causes.pop() if len(causes) == 1 else None
    fix = start_fixes.fix(cause, template) if cause is not None else None
    if cause is None or fix is None:
        return None
    waited = ", each after waiting for it" if start_fixes.waited(cause) else ""
    return (f"every trial could not start: {cause} ({counts.failed} trials{waited}); every "
            f"later trial would meet the same, so the study stops. {fix}, then delete this study and submit it "
            "again (submitted again as it is, a failed study stays failed)")
