"""Trials that could not start on a cluster, and the study that stops once its trials keep
failing to start for a cause every trial meets.

A trial pod whose image the kubelet cannot pull waits for as long as the start allowance
(``KATUNA_K8S_START_ALLOWANCE``) before its trial fails: a registry may be slow, rate-limit
pulls, or get the image pushed soon. But each trial of the study runs the same image, so a typo
in it would cost every trial its allowance, the whole study through. So each such failure
keeps its cause (:func:`image_cause`: the image, and what the kubelet met) as its reason's
first words (:func:`reason`), and once :data:`UNSTARTABLE_TRIALS` trials have failed, every
one of them for the same cause, naming an image the study's template itself gives (no trial's
parameters made it), with none of its trials completed, the study fails, saying why
(:func:`unstartable`). A study whose image depends on a trial's parameters, or that had a
trial complete, goes on: ``maxFailedTrials`` bounds its failures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from functions.core.records import Counts, TrialRecord
from functions.core.spec import TrialTemplate

UNSTARTABLE_TRIALS = 3
"""Failed trials, every one unable to start for the same cause, after which the study fails."""
PREFIX = "could not start"
_CAUSE = re.compile(r'^could not start: (image "(?P<image>.*)" [^;]*?); ')


def image_cause(image: str, unparsed: bool) -> str:
    """The cause of a pod that cannot start for its ``image``: it cannot be pulled, or (``unparsed``)
    the kubelet cannot parse the reference at all."""
    return f'image "{image}" is no valid image reference' if unparsed else f'image "{image}" cannot be pulled'


def reason(message: str, cause: str | None) -> str:
    """A trial's reason when it could not start: the executor's ``message``, behind the ``cause``
    where it has one."""
    return f"{PREFIX}: {cause}; {message}" if cause else f"{PREFIX} {message}"


def _cause(trial: TrialRecord) -> tuple[str, str] | None:
    """The cause and its image of a trial that could not start for its image (its reason's
    first line, the latest attempt's), else None."""
    found = _CAUSE.match(trial.reason.split("\n", 1)[0])
    return (found.group(1), found.group("image")) if found else None


def _images(value: Any) -> Iterator[str]:
    """Every ``image`` a template holds, in a trialSpec of any kind (a container's, a TrainJob's
    trainer's, an Argo script's, a Tekton step's)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "image" and isinstance(item, str):
                yield item
            else:
                yield from _images(item)
    elif isinstance(value, list):
        for item in value:
            yield from _images(item)


def unstartable(template: TrialTemplate, counts: Counts, failed: Iterable[TrialRecord]) -> str | None:
    """Why the study stops, if its trials keep failing to start for one cause (see the module):
    at least :data:`UNSTARTABLE_TRIALS` ``failed`` trials, none completed or pruned, each unable
    to start for the same image of the study's template. None otherwise."""
    if counts.complete or counts.pruned or counts.failed < UNSTARTABLE_TRIALS:
        return None
    causes = {_cause(trial) for trial in failed}
    found = causes.pop() if len(causes) == 1 else None
    if found is None:
        return None
    cause, image = found
    if image not in {template.image, *_images(template.trial_spec)}:
        return None
    return (f"every trial could not start: {cause} ({counts.failed} trials, each after waiting for it); every "
            "later trial would meet the same, so the study stops. Fix the image, or make it pullable (its tag "
            "pushed, the pull secret given), and submit the study again")
