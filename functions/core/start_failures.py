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
fix it (:func:`unstartable`). A study whose image or object depends on a trial's parameters,
or that had a trial complete, goes on: ``maxFailedTrials`` bounds its failures.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from functions.core import quota_causes
from functions.core.records import Counts, TrialRecord
from functions.core.spec import TrialTemplate
from functions.core.trial_spec import local_folder

UNSTARTABLE_TRIALS = 3
"""Failed trials, every one unable to start for the same cause, after which the study fails."""
PREFIX = "could not start"
REFUSED = "katuna refused to start the attempt"
"""How the reason of a trial whose attempt katuna refused to start begins."""
_CAUSE = re.compile(r"^could not start: (?P<cause>[^;]*)(?:; |$)")
_IMAGE = re.compile(r'^image "(?P<image>[^"]*)" ')
_MISSING = re.compile(r'^(?:key "(?P<key>[^"]*)" of )?(?P<kind>Secret|ConfigMap) "(?P<name>[^"]*)" in namespace '
                      r'"(?P<namespace>[^"]*)" is missing$')
_UNFIT = re.compile(r"^cannot be scheduled: the pod asks for ")
_ACCOUNT = re.compile(r'^ServiceAccount "(?P<name>[^"]*)" in namespace "(?P<namespace>[^"]*)" is missing$')
_POD_SECURITY = re.compile(r"^violates PodSecurity ")
_NON_ROOT = re.compile(r"""^(?:image "(?P<image>[^"]*)" runs as .*|the container's runAsUser is 0 \(root\)), """
                       r"which runAsNonRoot forbids$")
_PROGRAM = re.compile(r'^program "(?P<program>[^"]*)" cannot be run: ')
_DIRECTORY = re.compile(r"^working directory .* cannot be entered: ")
_INVALID_POD = re.compile(r"^the API server refuses the pod as invalid: ")
SCHEDULING = frozenset({"resources", "nodeSelector", "tolerations", "affinity"})
"""The fields of a trialSpec's pod that decide which nodes may take it."""
REFERENCES = {"secretKeyRef": "Secret", "secretRef": "Secret", "configMapKeyRef": "ConfigMap",
              "configMapRef": "ConfigMap"}
"""The fields of a container that read a Secret or ConfigMap into its environment (an ``env``'s
``valueFrom``, an ``envFrom``), to the kind each reads."""


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


def _walk(value: Any, key: object = None) -> Iterator[tuple[object, Any]]:
    """Each value a template holds, however deep, with the key it is under (None for a list's
    items and the template itself)."""
    yield key, value
    if isinstance(value, Mapping):
        for name, item in value.items():
            yield from _walk(item, name)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)


def _directory_fix(template: TrialTemplate) -> str | None:
    """How to fix a working directory every trial fails to enter: the folder a local trial runs
    in (:func:`~functions.core.trial_spec.local_folder`), the ``workingDir`` of its trialSpec's
    primary container, where it runs as the container would, or the template's own (None where
    a trial's parameters fill it in: each trial has its own)."""
    runs_in = local_folder(template)
    if runs_in is None or "${" in runs_in.folder:
        return None
    if runs_in.in_container:
        return ("Fix the workingDir of the trialSpec's primary container (a folder that exists on this machine, "
                "where a local trial runs its command as Kubernetes runs it in that folder of the image), or "
                "leave it out to run the trials in the study's folder")
    return "Fix trialTemplate.workingDir (a folder that exists, relative to where katuna runs)"


def _images(value: Any) -> Iterator[str]:
    """Every ``image`` a template holds, in a trialSpec of any kind (a container's, a TrainJob's
    trainer's, an Argo script's, a Tekton step's)."""
    return (item for key, item in _walk(value) if key == "image" and isinstance(item, str))


def _strings(value: Any) -> Iterator[str]:
    """Every string a template holds, however deep."""
    return (item for _, item in _walk(value) if isinstance(item, str))


def _references(value: Any) -> Iterator[tuple[str, str, str | None]]:
    """Every Secret or ConfigMap a template's containers must read (:data:`REFERENCES`, not
    ``optional``: the kubelet skips those), as its kind, its name and the key read (None for
    an ``envFrom``'s, which reads them all), in a ``trialSpec`` of any kind."""
    return ((REFERENCES[key], item["name"], item.get("key")) for key, item in _walk(value)
            if key in REFERENCES and isinstance(item, Mapping) and isinstance(item.get("name"), str)
            and not item.get("optional"))


def _create(kind: str, name: str, namespace: str, keys: Iterable[str | None]) -> str:
    """How to create the missing ``kind`` ``name`` with the ``keys`` the template reads."""
    literals = " ".join(f"--from-literal={key}=<value>" for key in sorted({k for k in keys if k})) \
        or "--from-literal=<key>=<value>"
    command = "secret generic" if kind == "Secret" else "configmap"
    return f"Create it (kubectl create {command} {name} -n {namespace} {literals})"


def _add(kind: str, name: str, namespace: str, key: str) -> str:
    """How to add the missing ``key`` to the ``kind`` ``name``."""
    field = "stringData" if kind == "Secret" else "data"
    return (f"Add the key (kubectl patch {kind.lower()} {name} -n {namespace} --type merge -p "
            f"'{{\"{field}\":{{\"{key}\":\"<value>\"}}}}')")


def _parametrized(value: Any, scheduling: bool = False) -> bool:
    """Whether a trial's parameters (a ``${...}`` reference) reach a field of :data:`SCHEDULING` in ``value``."""
    if isinstance(value, Mapping):
        return any(_parametrized(item, scheduling or key in SCHEDULING) for key, item in value.items())
    if isinstance(value, list):
        return any(_parametrized(item, scheduling) for item in value)
    return scheduling and isinstance(value, str) and "${" in value


def _fix(cause: str, template: TrialTemplate) -> str | None:
    """What the user does about ``cause`` when an image or object the study's template itself
    gives meets it, or a pod it asks for that no node fits; None for one a trial's parameters made.
    The first of :data:`_FIXES` whose cause it is answers."""
    for matches, fix in _FIXES:
        found = matches(cause)
        if found:
            return fix(found, template)
    return None


def _account_fix(found: re.Match[str], template: TrialTemplate) -> str:
    name, namespace = found.group("name", "namespace")
    return (f"Create the ServiceAccount (kubectl create serviceaccount {name} -n {namespace}), or name one that "
            "exists in kubernetes.serviceAccountName")


def _pod_security_fix(found: re.Match[str], template: TrialTemplate) -> str:
    restricted = " (for restricted, the operator's KATUNA_TRIAL_POD_SECURITY=restricted has katuna's own trial " \
                 "pods meet it)" if found.string.startswith('violates PodSecurity "restricted:') else ""
    return ("Ask for no more than the namespace's Pod Security level allows in the trial template (its "
            "securityContext, host namespaces, hostPath volumes, capabilities), or run the trials in a namespace "
            f"whose level allows it (kubernetes.namespace){restricted}")


def _unfit_fix(found: re.Match[str], template: TrialTemplate) -> str | None:
    if _parametrized({"resources": dict(template.resources)}) or _parametrized(template.trial_spec):
        return None
    return ("Ask for what a node of the pool offers in the trial template (its resources, nodeSelector, "
            "tolerations), or give the pool a machine type that fits the trials (enough cpu, memory or GPUs, "
            "the labels and taints the trials select)")


def _program_fix(found: re.Match[str], template: TrialTemplate) -> str | None:
    if found.group("program") not in set(_strings([template.command, template.trial_spec])):
        return None
    return ("Fix the program the trial template runs (its command's first word: one on the trials' PATH, or "
            "the path of an executable file)")


def _quota_fix(cause: str, template: TrialTemplate) -> str | None:
    parametrized = _parametrized({"resources": dict(template.resources)}) or _parametrized(template.trial_spec)
    return quota_causes.fix(cause, template, parametrized)


def _invalid_pod_fix(found: re.Match[str], template: TrialTemplate) -> str | None:
    if any("${" in image for image in {template.image or "", *_images(template.trial_spec)}):
        return None
    return "Fix the trial template's pod where the API server says"


def _image_fix(found: re.Match[str], template: TrialTemplate) -> str | None:
    if found.group("image") not in {template.image, *_images(template.trial_spec)}:
        return None
    return "Fix the image, or make it pullable (its tag pushed, the pull secret given)"


def _missing_fix(found: re.Match[str], template: TrialTemplate) -> str | None:
    kind, name, namespace, key = found.group("kind", "name", "namespace", "key")
    keys = [read for of, called, read in _references(template.trial_spec) if (of, called) == (kind, name)]
    if not keys or (key is not None and key not in keys):
        return None
    return _add(kind, name, namespace, key) if key is not None else _create(kind, name, namespace, keys)


_FIXES: tuple[tuple[Callable[[str], Any], Callable[[Any, TrialTemplate], str | None]], ...] = (
    (_ACCOUNT.match, _account_fix),
    (_NON_ROOT.match, lambda found, template: _user_fix(found.group("image"), template)),
    (_POD_SECURITY.match, _pod_security_fix),
    (_UNFIT.match, _unfit_fix),
    (_PROGRAM.match, _program_fix),
    (_DIRECTORY.match, lambda found, template: _directory_fix(template)),
    (lambda cause: cause if quota_causes.refused(cause) else None, _quota_fix),
    (_INVALID_POD.match, _invalid_pod_fix),
    (_IMAGE.match, _image_fix),
    (_MISSING.match, _missing_fix),
)
"""The causes :func:`_fix` knows, in the order it asks (a cause that two match is the first's):
how each is told (a match, or the cause), and the fix it gives for what was found."""


def _user_fix(image: str | None, template: TrialTemplate) -> str | None:
    """How to run the study's ``image`` (None: the template's ``runAsUser``) as a user the kubelet
    can tell is not root; None for an image a trial's parameters made."""
    own = "securityContext.runAsUser in the trialSpec's pod template" if template.trial_spec is not None \
        else "kubernetes.runAsUser"
    if image is None:
        return f"Give a runAsUser other than 0 ({own}), or none"
    if image not in {template.image, *_images(template.trial_spec)}:
        return None
    return f"Build the image with a numeric USER other than 0 (USER 10001 in its Dockerfile), or give the user id to " \
           f"run it as ({own})"


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
    fix = _fix(cause, template) if cause is not None else None
    if cause is None or fix is None:
        return None
    waits = any(rule.match(cause) for rule in (_IMAGE, _MISSING, _ACCOUNT)) and not _NON_ROOT.match(cause)
    waited = ", each after waiting for it" if waits else ""
    return (f"every trial could not start: {cause} ({counts.failed} trials{waited}); every "
            f"later trial would meet the same, so the study stops. {fix}, then delete this study and submit it "
            "again (submitted again as it is, a failed study stays failed)")
