"""Population-based training's decisions, as Katib's ``pbt`` suggestion service makes them.

Katib's service (``pkg/suggestion/v1beta1/pbt/service.py``) seeds a population of
``n_population`` trials drawn from the search space (generation 0). Once more of them have
succeeded, each later trial is a child of a succeeded trial of the latest generation that has
``n_population`` succeeded trials: its generation is the parent's plus one, and it starts from
a copy of the parent's checkpoint folder. The generation's trials are ranked by the objective
(maximized, or its negative) and cut at the ``truncation_threshold`` quantiles. Exploit: a
trial below the lower cut gets a child that continues its own checkpoint with the
hyperparameters of a trial at or above the upper cut (``int(n_population *
truncation_threshold)`` such children a generation, each bottom trial at most once). Explore:
any other trial gets a child with its hyperparameters perturbed (each times 0.8 or 1.2 for
numbers, the next or previous value for a list) or, with ``resample_probability``, each one
drawn afresh from the space with that probability. A failed trial is run again as it was:
same hyperparameters, generation and parent (its checkpoint copied afresh); unless katuna refused
to copy its parent's checkpoint folder (too large, a FIFO in it, a file it cannot read), which it
would refuse again: that child stays failed, and its parent is given no other child while
another trial of its generation may be.

Katib's service keeps every trial's checkpoint folder while the Experiment lives. A study may
delete, as trials end, the folders no later trial can copy (:func:`never_copied`).

Katib's service keeps these as in-memory queues; here every decision follows from the trials
stored (:class:`Member`) and a random generator the caller seeds per trial, so the trial asked
for is the same whichever process asks, and nothing is lost with a process. No I/O.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from functions.core.errors import Problem
from functions.core.parameters import FloatParameter, IntParameter, Parameter, on_step, steps_within

NAME = "pbt"
"""The algorithm's name, in a native study and in a Katib Experiment alike."""
REQUIRED = ("suggestion_trial_dir", "n_population", "truncation_threshold")
"""The settings Katib's service requires (``_REQUIRED_SETTINGS``)."""
MOST_TRIALS = 10_000
"""The most trials a study of population-based training may run (its ``maxTrials``, which it
must give): each of its trials is decided from the trials before it (the newest full generation,
the next, the failures not run again yet, as the store finds them), which a larger study would
still read more of. Populations of 10 to 80 over tens of generations (the PBT
paper's, Katib's example's 40) stay far below it."""
LEAST_POPULATION = 5
"""The smallest ``n_population`` Katib's service accepts."""
FACTORS = (0.8, 1.2)
"""What a perturbed number is multiplied by, one of them at random (Katib's)."""
SUCCEEDED, FAILED, OTHER = "succeeded", "failed", "other"
"""How a member ended, as the decisions read it: other is still running, or pruned."""


@dataclass(frozen=True)
class Settings:
    """Katib's settings of ``pbt``, converted and checked (:func:`settings_problems`)."""

    n_population: int
    truncation_threshold: float
    suggestion_trial_dir: str
    resample_probability: float | None = None


@dataclass(frozen=True)
class Member:
    """A trial of the population: its hyperparameters, generation and parent (the trial whose
    checkpoint it started from), how it ended and its objective, scaled so that more is better."""

    number: int
    params: Mapping[str, Any]
    generation: int
    parent: int | None
    ended: str
    score: float | None = None
    refused: bool = False
    """Failed because its parent's checkpoint folder was refused: not run again."""
    finished: bool = False
    """Ended (succeeded, failed or pruned): no attempt of it runs, or will, in its folder."""


@dataclass(frozen=True)
class Plan:
    """The next trial: its hyperparameters (None: drawn from the search space), generation and
    parent."""

    params: Mapping[str, Any] | None
    generation: int
    parent: int | None


def settings_of(settings: Mapping[str, Any]) -> Settings:
    """The settings of a study its validation accepted."""
    return Settings(int(settings["n_population"]), float(settings["truncation_threshold"]),
                    str(settings["suggestion_trial_dir"]), settings.get("resample_probability"))


def settings_problems(settings: Mapping[str, Any], parameters: Sequence[Parameter]) -> list[Problem]:
    """Katib's rules for the settings (each converted to its type already), each broken one a
    problem naming the setting; and a parameter with a condition, which a child trial, taking
    every hyperparameter of its parent, could not follow."""
    path = "algorithm.settings"
    problems = [Problem(f"{path}.{name}", f"{name} is required by pbt (Katib's service requires "
                                          f"{', '.join(REQUIRED)})")
                for name in REQUIRED if settings.get(name) is None]
    population = settings.get("n_population")
    if isinstance(population, int) and population < LEAST_POPULATION:
        problems.append(Problem(f"{path}.n_population", f"expected an integer >= {LEAST_POPULATION}, as Katib's "
                                                        f"service requires, got {population}"))
    for name in ("truncation_threshold", "resample_probability"):
        value = settings.get(name)
        if isinstance(value, int | float) and not 0 <= value <= 1:
            problems.append(Problem(f"{path}.{name}", f"expected a number from 0 to 1, inclusive, got {value}"))
    folder = settings.get("suggestion_trial_dir")
    if isinstance(folder, str) and (not folder.startswith("/") or folder.rstrip("/") == ""):
        problems.append(Problem(f"{path}.suggestion_trial_dir", f"expected an absolute path other than / (where "
                                                                f"the trial finds its checkpoint folder), got {folder!r}"))
    problems += [Problem(f"parameters[{i}].when", "pbt gives a child every hyperparameter of a trial of its "
                                                 "parent's generation; drop the when conditions")
                 for i, p in enumerate(parameters) if p.when]
    return problems


def next_plan(settings: Settings, parameters: Sequence[Parameter], members: Sequence[Member],
              rng: random.Random) -> Plan:
    """The trial to ask for next, given every trial asked for so far (by number)."""
    retried = _unanswered_failure(members)
    if retried is not None:
        return Plan(retried.params, retried.generation, retried.parent)
    closed = [g for g, pool in _pools(members).items() if len(pool) >= settings.n_population]
    if not closed:
        return Plan(None, 0, None)
    generation = max(closed)
    pool = _pools(members)[generation]
    children = [m for m in members if m.generation == generation + 1 and m.ended != FAILED]
    refused = {m.parent for m in members if m.generation == generation + 1 and m.refused}
    return _child(settings, parameters, pool, rng, children=children, refused=refused)


def _pools(members: Sequence[Member]) -> dict[int, list[Member]]:
    """The succeeded members of each generation, by number."""
    pools: dict[int, list[Member]] = {}
    for member in members:
        if member.ended == SUCCEEDED and member.score is not None:
            pools.setdefault(member.generation, []).append(member)
    return pools


def _unanswered_failure(members: Sequence[Member]) -> Member | None:
    """The first failed member not run again yet: run again as one later member of the same
    generation, parent and hyperparameters."""
    failures = _unanswered_failures(members)
    return failures[-1] if failures else None


def _unanswered_failures(members: Sequence[Member]) -> list[Member]:
    """The failed members (by number) not run again yet, not refused their parent's folder, the
    last first. One pass from the last member back, so a study of many failures costs no more
    than one of few."""
    later: set[tuple[Any, ...]] = set()
    found = []
    for member in reversed(members):
        key = _plan_of(member)
        if member.ended == FAILED and not member.refused and key not in later:
            found.append(member)
        later.add(key)
    return found


def newest_pool(settings: Settings, members: Sequence[Member]) -> int | None:
    """The newest generation with ``n_population`` succeeded members (None while there is
    none): the pool :func:`next_plan` draws parents from."""
    return max((g for g, pool in _pools(members).items() if len(pool) >= settings.n_population), default=None)


def never_copied(newest: int | None, candidates: Sequence[Member], family: Sequence[Member]) -> list[int]:
    """The numbers of the ``candidates`` whose checkpoint folders no later trial can copy, given
    the ``newest`` pool (:func:`newest_pool`, read no later than ``family``) and ``family``,
    every member (by number) whose parent is a candidate. A candidate's folder is kept while it
    has not ended (its own attempts use it), while it may still be chosen as a parent (it
    succeeded in the newest pool's generation or a later one: pools only move to later
    generations, so one older is never drawn from again), and while a child of it has not
    ended (its attempt may still copy the folder) or failed and is not run again yet (that is
    run again from a fresh copy), unless katuna refused it the copy (never run again).
    A failed or pruned member is never a parent."""
    needed = {m.parent for m in family if not m.finished}
    needed |= {m.parent for m in _unanswered_failures(family)}
    return [m.number for m in candidates if m.finished and m.number not in needed and not _drawable(m, newest)]


def _drawable(member: Member, newest: int | None) -> bool:
    """Whether ``member`` may yet be in the pool a child's parent is drawn from."""
    return member.ended == SUCCEEDED and member.score is not None and (newest is None or member.generation >= newest)


def _plan_of(member: Member) -> tuple[Any, ...]:
    """What a member was asked to run: its generation, parent and hyperparameters."""
    return member.generation, member.parent, tuple(sorted(member.params.items()))


def _child(settings: Settings, parameters: Sequence[Parameter], pool: list[Member], rng: random.Random, *,
           children: list[Member], refused: set[int | None]) -> Plan:
    """A child of the generation ``pool``, given its ``children`` asked for (those not failed)
    and the parents of those ``refused`` their copy: exploit while fewer than its share of
    exploiting children were asked for, and a bottom trial is left; else explore a trial not yet
    explored (any but a bottom one, once each is). A parent whose copy was refused is left out
    while another trial may be chosen."""
    scores = [m.score for m in pool if m.score is not None]
    low, high = quantile(scores, settings.truncation_threshold), quantile(scores, 1 - settings.truncation_threshold)
    bottom = [m for m in pool if m.score is not None and m.score < low]
    upper = [m for m in pool if m.score is not None and m.score >= high]
    rest = [m for m in pool if m not in bottom]
    generation = pool[0].generation + 1
    parents = {c.parent for c in children}
    exploiting = int(settings.n_population * settings.truncation_threshold)
    left = [m for m in bottom if m.number not in parents | refused]
    if len(children) < exploiting and left:
        exploited = rng.choice(left)
        return Plan(dict(rng.choice(upper).params), generation, exploited.number)
    usable = [m for m in rest if m.number not in refused] or rest
    explored = rng.choice([m for m in usable if m.number not in parents] or usable)
    return Plan(explore(settings, parameters, explored.params, rng), generation, explored.number)


def explore(settings: Settings, parameters: Sequence[Parameter], params: Mapping[str, Any],
            rng: random.Random) -> dict[str, Any]:
    """Hyperparameters near ``params``: each perturbed, or (with ``resample_probability``) drawn
    afresh from the space with that probability and kept otherwise."""
    out = dict(params)
    for parameter in parameters:
        if settings.resample_probability is None:
            out[parameter.name] = perturb(parameter, params[parameter.name], rng)
        elif rng.random() < settings.resample_probability:
            out[parameter.name] = resample(parameter, rng)
    return out


def perturb(parameter: Parameter, value: Any, rng: random.Random) -> Any:
    """A number times 0.8 or 1.2, within the range (an integer's truncated, as Katib's), on the
    step where there is one; a list's value, the next or the previous one (round the list)."""
    if isinstance(parameter, IntParameter | FloatParameter):
        factor = rng.choice(FACTORS)
        moved = int(int(value) * factor) if isinstance(parameter, IntParameter) else float(value) * factor
        inside = max(parameter.low, min(parameter.high, moved))
        return on_step(parameter, inside) if parameter.step is not None and not parameter.log else inside
    values = list(parameter.values)
    return values[(values.index(value) + rng.choice((-1, 1))) % len(values)]


def resample(parameter: Parameter, rng: random.Random) -> Any:
    """A value drawn afresh from the parameter's space: uniform on its steps where it has one
    (as Katib's service draws), on a log scale where it is logarithmic."""
    if isinstance(parameter, IntParameter):
        return rng.randrange(parameter.low, parameter.high + 1, parameter.step)
    if isinstance(parameter, FloatParameter):
        if parameter.step is not None:
            return on_step(parameter, parameter.low + rng.randint(0, steps_within(parameter)) * parameter.step)
        if parameter.log:
            return math.exp(rng.uniform(math.log(parameter.low), math.log(parameter.high)))
        return rng.uniform(parameter.low, parameter.high)
    return rng.choice(list(parameter.values))


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values``, interpolated linearly (numpy's default, as Katib's),
    kept between the two values it lies between: where the difference of two scores far apart
    (``-1e308`` and ``1.7e308``) overflows, each is weighed apart instead, so the upper cut
    never rises above every trial and leaves a bottom trial no upper one to exploit."""
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    below = math.floor(at)
    above = min(below + 1, len(ordered) - 1)
    low, high, share = ordered[below], ordered[above], at - below
    between = low + (high - low) * share
    if not math.isfinite(between):
        between = low * (1 - share) + high * share
    return min(max(between, low), high)
