"""The Pareto front of a study of several objectives, against its definition."""

from __future__ import annotations

import random

from conftest import study_definition

from functions.core.pareto_search import KeptFront, extended_front, front_order, pareto_front
from functions.core.spec import Study
from functions.core.validate import parse_study


def by_definition(signs: list[int], scored: list[tuple[int, list[float]]]) -> list[int]:
    """Every trial that no other is no worse than on each objective and better than on one,
    ordered by its (signed) values and then its number: each trial compared with every other."""
    signed = [([s * v for s, v in zip(signs, values)], number) for number, values in scored]
    kept = [(values, number) for values, number in signed
            if not any(all(o <= v for o, v in zip(other, values)) and other != values for other, _ in signed)]
    return [number for _, number in sorted(kept)]


def test_the_front_is_every_trial_no_other_beats_in_order_with_ties_and_duplicates_kept():
    """Random histories of 2 to 8 objectives (most of 2 or 3, which take another way to the
    front), each minimized or maximized, whose values come mostly from a few (ties on some
    objectives, trials equal on all), infinities among them."""
    rng = random.Random(5)
    for case in range(400):
        signs, spec, scored = _random_history(rng, rng.choice([2, 3, rng.randint(2, 8)]))
        rng.shuffle(scored)
        assert pareto_front(spec, scored) == by_definition(signs, scored), case


def test_a_front_each_trial_of_which_goes_in_before_the_others_is_found_as_defined():
    """Trials shaped ``(i, -i, i)`` (signed) each go in at the start of the staircase of the
    later objectives, which took O(n²) list shifts (6.6 s for 200,000 trials): such a front, with
    trials behind it, ties and duplicates among them, is found whole by the other way, as
    defined."""
    rng = random.Random(7)
    signs = [-1, 1, -1]
    objective = {"metrics": [{"name": f"m{i}", "direction": "minimize" if s == 1 else "maximize"}
                             for i, s in enumerate(signs)]}
    shaped = [float(i) for i in range(800)] + [rng.choice([3, 400, 799]) + rng.choice([0, 0.5]) for _ in range(150)]
    signed = [(number, [x, -x, x + (number >= 800 and rng.random() < 0.5)]) for number, x in enumerate(shaped)]
    scored = [(number, [s * v for s, v in zip(signs, values)]) for number, values in signed]
    rng.shuffle(scored)
    assert pareto_front(parse_study(study_definition(objective=objective)), scored) == by_definition(signs, scored)


def test_a_front_extended_by_trials_added_since_is_the_front_of_them_all():
    """A process keeps a study's front and, as trials complete, compares with it only the
    trials added since: random histories of 2 to 8 objectives (ties, duplicates and infinities
    among them), cut anywhere into a front found before and the trials added after it, give the
    front of them all, as defined."""
    rng = random.Random(11)
    for case in range(300):
        signs, spec, scored = _random_history(rng, rng.randint(2, 8))
        cut = rng.randint(0, len(scored))
        earlier = scored[:cut]
        front = [(number, dict(earlier)[number]) for number in by_definition(signs, earlier)]
        assert extended_front(spec, front, scored[cut:]) == by_definition(signs, scored), case


def test_a_front_joined_by_trials_one_at_a_time_is_the_front_of_them_all():
    """The store keeps a study's front as each trial completes, comparing the new trial with the
    front alone: random histories (ties, duplicates, -0.0 beside 0.0, infinities; 2 to 8
    objectives), cut anywhere and joined a trial at a time, give the front of them all, numbers
    and values, and each join names the trials it took out; in :func:`pareto_front`'s order
    by :func:`front_order`."""
    rng = random.Random(13)
    for case in range(300):
        signs, spec, scored = _random_history(rng, rng.choice([2, 2, 3, rng.randint(2, 8)]))
        scored = [(number, [-0.0 if v == 0.0 and rng.random() < 0.3 else v for v in values])
                  for number, values in scored]
        values = dict(scored)
        cut = rng.randint(0, len(scored))
        front = KeptFront(spec, [(number, values[number]) for number in by_definition(signs, scored[:cut])])
        for number, trial in scored[cut:]:
            before = set(front.values)
            beaten = front.join(number, trial)
            after = set(front.values)
            assert (after, beaten) == ((before, None) if beaten is None else (before - set(beaten) | {number}, beaten))
        expected = [(number, values[number]) for number in by_definition(signs, scored)]
        assert front_order(spec, list(front.values.items())) == expected, case


def _random_history(rng: random.Random, objectives: int) -> tuple[list[int], Study, list[tuple[int, list[float]]]]:
    """A study of ``objectives`` objectives, each minimized (sign 1) or maximized (-1) at random,
    and up to 120 trials' values drawn mostly from a few (ties, duplicates, infinities)."""
    signs = [rng.choice([1, -1]) for _ in range(objectives)]
    objective = {"metrics": [{"name": f"m{i}", "direction": "minimize" if s == 1 else "maximize"}
                             for i, s in enumerate(signs)]}
    few = rng.choice([[0.0, 1.0], [0.0, 1.0, 2.0], [float("-inf"), -1.5, 0.5, float("inf")]])
    scored = [(number, [rng.choice(few) if rng.random() < 0.8 else rng.random() for _ in signs])
              for number in range(rng.randint(0, 120))]
    return signs, parse_study(study_definition(objective=objective)), scored
