"""Katib's algorithm settings in Optuna's terms.

Katib runs each algorithm in a suggestion service (hyperopt for ``random`` and ``tpe``, Optuna
for ``multivariate-tpe`` and ``grid``, goptuna for ``cmaes`` and ``sobol``, scikit-optimize for
``bayesianoptimization``; a deployment may route ``tpe``, ``random`` and ``cmaes`` to the Optuna
service instead). Each service documents its settings, always given as strings. Every setting
either becomes the Optuna setting with the same meaning, converted to its type and checked as
Katib's service checks it, or is refused naming the setting and the algorithm with the reason.
(``hyperband`` is translated on its own: its settings shape the search, not a sampler.)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.core import skopt_sampler
from functions.core.errors import Problem
from functions.core.limits import MAX_SEED

SEED = "seed"
"""The Optuna name that stands for the algorithm's seed (``random_state`` in Katib)."""


@dataclass(frozen=True)
class Setting:
    """One Katib setting: the Optuna setting it becomes, and how its text converts (a
    ``ValueError`` saying what was expected)."""

    optuna: str
    convert: Callable[[str], Any]


def _integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """A whole-number setting of at least ``minimum`` and, where given, at most ``maximum``."""
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if maximum is not None and not minimum <= value <= maximum:
            raise ValueError(f"expected an integer from {minimum} to {maximum}, got {value}")
        if value < minimum:
            raise ValueError(f"expected an integer >= {minimum}, got {value}")
        return value
    return convert


def _number(check: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected {expected}, got {text!r}") from None
        if not check(value):
            raise ValueError(f"expected {expected}, got {value}")
        return value
    return convert


def _one_of(accepted: Mapping[str, Any]) -> Callable[[str], Any]:
    """A setting that takes one of the ``accepted`` words (text to value)."""
    def convert(text: str) -> Any:
        if text not in accepted:
            raise ValueError(f"expected {' or '.join(map(repr, accepted))}, got {text!r}")
        return accepted[text]
    return convert


def _hinted(convert: Callable[[str], Any], differs: Callable[[str], bool], hint: str) -> Callable[[str], Any]:
    """``convert``, whose refusal of a value ``differs`` picks out says ``hint``: what Katib's
    service does with that value, which it does not refuse."""
    def hinted(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as exc:
            if not differs(text):
                raise
            raise ValueError(_with_hint(exc, hint)) from None
    return hinted


def _with_hint(refusal: ValueError, hint: str) -> str:
    """The words of ``refusal`` (``expected ..., got ...``) with ``hint`` after what was expected."""
    said, got = str(refusal).rsplit(", got ", 1)
    return f"{said} ({hint}), got {got}"


def _zero_or_less(text: str) -> bool:
    """Whether ``text`` is a number of 0 or less."""
    value = _parsed(float, text)
    return value is not None and value <= 0


def _parsed(kind: Callable[[str], Any], text: str) -> Any:
    """``text`` read as ``kind`` (``int``, ``float``), or None where it is not one."""
    try:
        return kind(text)
    except ValueError:
        return None


_FAILS_ABOVE = "fails on a larger one at its first suggestion, past numpy's seed range"
_TAKES_ANY = "takes any 64-bit integer"
_IGNORES = "ignores random_state"
SEED_ON_KATIB: dict[str, tuple[str, str]] = {
    "random": ("hyperopt", _FAILS_ABOVE), "tpe": ("hyperopt", _FAILS_ABOVE), "grid": ("Optuna", _FAILS_ABOVE),
    "multivariate-tpe": ("Optuna", _FAILS_ABOVE), "bayesianoptimization": ("skopt", _FAILS_ABOVE),
    "cmaes": ("goptuna", _TAKES_ANY), "sobol": ("goptuna", _IGNORES), "hyperband": ("hyperband", _IGNORES),
}
"""For each algorithm, the Katib service that runs it by default and what it does with a
``random_state`` outside katuna's seeds: hyperopt, Optuna and scikit-optimize seed numpy
(``RandomState``, 0 to 2**32 - 1) and refuse a negative one up front; goptuna's CMA-ES reads any
64-bit integer (``strconv.Atoi``), negative too; goptuna's Sobol sampler and the hyperband
service never read the setting."""


def random_state(algorithm: str) -> Setting:
    """``random_state`` of ``algorithm``, the study's seed: checked against the seed's range as
    it is read, so that its refusal names the setting, and says what Katib's service does with
    the value where it would not refuse it too."""
    service, rule = SEED_ON_KATIB[algorithm]

    def convert(text: str) -> int:
        try:
            return _integer(0, MAX_SEED)(text)
        except ValueError as exc:
            if not _worth_saying(rule, text):
                raise
            raise ValueError(_with_hint(exc, f"the seeds katuna's samplers take; Katib's {service} service, "
                                             f"which runs {algorithm}, {rule}")) from None
    return Setting(SEED, convert)


def _worth_saying(rule: str, text: str) -> bool:
    """Whether Katib's service, by ``rule``, does other with a ``random_state`` katuna refuses
    than refuse it up front: it takes it, ignores it, or fails on it once the Experiment runs."""
    value = _parsed(int, text)
    if value is None:
        return rule == _IGNORES
    return rule == _IGNORES or (rule == _TAKES_ANY and -2**63 <= value < 2**63) or value > MAX_SEED


TPE = {
    "random_state": random_state("tpe"),
    "gamma": Setting("gamma", _number(lambda v: 0 < v < 1, "a number in (0, 1)")),
    "prior_weight": Setting("prior_weight", _number(lambda v: v > 0, "a number > 0")),
    "n_EI_candidates": Setting("n_ei_candidates", _integer(1)),
    "n_ei_candidates": Setting("n_ei_candidates", _hinted(
        _integer(1), lambda t: _parsed(int, t) == 0, "Katib's Optuna service takes 0, then fails at its first suggestion "
        "after the start-up trials: Optuna's TPE has no candidate to score")),
    "n_startup_trials": Setting("n_startup_trials", _integer(0)),
}
CMAES = {
    "random_state": random_state("cmaes"),
    "sigma": Setting("sigma0", _hinted(_number(lambda v: v > 0, "a number > 0"), _zero_or_less,
                                       "Katib's goptuna service, which runs cmaes, runs 0 or less as its default "
                                       "sigma, the narrowest range / 6: leave sigma out for that")),
    "restart_strategy": Setting("restart_strategy", _one_of({"none": None, "None": None, "ipop": "ipop", "bipop": "bipop"})),
}

def _choice(name: str, accepted: Mapping[str, str]) -> Callable[[str], str]:
    """A setting taken as it is written, when it is one of the ``accepted`` values katuna runs."""
    def convert(text: str) -> str:
        skopt_sampler.check_choice(name, text, accepted)
        return text
    return convert


BAYESIAN = {
    "random_state": random_state("bayesianoptimization"),
    "n_initial_points": Setting("n_startup_trials", _integer(0)),
    "base_estimator": Setting("base_estimator", _choice("base_estimator", skopt_sampler.BASE_ESTIMATORS)),
    "acq_func": Setting("acq_func", _choice("acq_func", skopt_sampler.ACQUISITION_FUNCTIONS)),
    "acq_optimizer": Setting("acq_optimizer", _choice("acq_optimizer", skopt_sampler.ACQUISITION_OPTIMIZERS)),
}
_THRESHOLD = _number(lambda v: 0 <= v <= 1, "a number from 0 to 1, inclusive")
PBT = {
    "suggestion_trial_dir": Setting("suggestion_trial_dir", str),
    "n_population": Setting("n_population", _integer(5)),
    "truncation_threshold": Setting("truncation_threshold", _THRESHOLD),
    "resample_probability": Setting("resample_probability", _THRESHOLD),
}
"""Katib's pbt service's settings, checked as it checks them (``ValidateAlgorithmSettings``;
its check of ``resample_probability`` compares the setting's text with numbers, which Python
refuses, so on Katib any Experiment that gives it fails: katuna checks it as documented)."""
HYPEROPT_TPE = frozenset({"random_state", "gamma", "prior_weight", "n_EI_candidates"})
"""The settings Katib's hyperopt service takes for ``tpe``, where Katib runs it by default."""
OPTUNA_TPE = frozenset({"random_state", "n_startup_trials", "n_ei_candidates"})
"""The settings Katib's Optuna service takes for ``tpe`` and ``multivariate-tpe``."""
OPTUNA_ONLY_TPE = OPTUNA_TPE - HYPEROPT_TPE
"""The ``tpe`` settings only Katib's Optuna service takes: an Experiment that gives one runs
where a deployment routes ``tpe`` there, since hyperopt's service refuses it."""
SETTINGS: dict[str, dict[str, Setting]] = {
    "random": {"random_state": random_state("random")},
    "grid": {"random_state": random_state("grid")},
    "sobol": {"random_state": random_state("sobol")},
    "tpe": TPE,
    "multivariate-tpe": {**{name: setting for name, setting in TPE.items() if name in OPTUNA_TPE},
                         "random_state": random_state("multivariate-tpe")},
    "cmaes": CMAES,
    "bayesianoptimization": BAYESIAN,
    "pbt": PBT,
}
"""For each Katib algorithm, the settings its suggestion services document."""
IMPLIED: dict[str, dict[str, Any]] = {"bayesianoptimization": {"log_uniform_floats": True},
                                     "cmaes": {"n_startup_trials": 0}, "tpe": {"multivariate": False}}
"""Settings that carry how Katib's service runs an algorithm whatever it is given: its skopt
service searches every double on a log scale; its goptuna service suggests the first trials
from CMA-ES's first generation (``NStartupTrials(0)``), where Optuna's CMA-ES would draw at
random every trial asked before one completes; both its ``tpe`` services model each parameter
on its own (hyperopt's TPE, and Optuna's with ``multivariate=False``), where Optuna's TPE
models them jointly by default for one objective (and whether ``tpe`` heeds running trials
depends on the service: :func:`tpe_on_optuna`)."""


def setting_text(value: Any) -> str:
    """A setting's value as the text it is read from (Katib's settings are strings): a number
    or boolean an unquoted YAML scalar made as YAML writes it (``true``, never Python's
    ``True``), so that a refusal shows what was written; none as the empty string, as Katib
    decodes a setting without a value, never as the word None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def translate(algorithm: str, settings: list[Any], path: str) -> tuple[dict[str, Any], Any, list[Problem]]:
    """Katib's ``algorithmSettings`` of ``algorithm`` as Optuna settings, the seed (or None),
    and a problem for each setting that has no equivalent or whose value does not convert."""
    known = SETTINGS.get(algorithm, {})
    out: dict[str, Any] = dict(IMPLIED.get(algorithm, {}))
    seed = None
    problems = []
    for i, item in enumerate(settings):
        name, text = (item.get("name"), item.get("value")) if isinstance(item, Mapping) else (None, None)
        where = f"{path}[{i}]"
        setting = known.get(name) if isinstance(name, str) else None
        if setting is None:
            problems.append(Problem(f"{where}.name", _unknown(name, algorithm, list(known))))
            continue
        try:
            value = setting.convert(setting_text(text))
        except ValueError as exc:
            problems.append(Problem(f"{where}.value", f"{name} of {algorithm}: {exc}"))
            continue
        if setting.optuna == SEED:
            seed = value
        elif setting.optuna and value is not None:
            out[setting.optuna] = value
    given = {item.get("name") for item in settings if isinstance(item, Mapping)} & known.keys()
    if algorithm == "tpe" and not (given <= HYPEROPT_TPE or given <= OPTUNA_TPE):
        problems.append(Problem(path, _mixed(given)))
    return out, seed, problems


def tpe_on_optuna(settings: list[Any]) -> bool:
    """Whether Katib runs a ``tpe`` Experiment of these ``algorithmSettings`` on its Optuna
    service (it gives a setting only that service takes), rather than on hyperopt's, its
    default. The two differ beyond their settings: hyperopt's starts TPE after its first
    request with hyperopt's ``gamma`` (:func:`functions.core.katib_search.as_hyperopt`);
    Optuna's runs Optuna's TPE defaults. Either way katuna's TPE counts each running trial as
    the worst (``constant_liar``, Optuna's default, as Katib's Optuna service runs it), where
    hyperopt's service is told only the trials that ended: parallel trials' suggestions spread
    instead of piling up beside the trials still running."""
    names = {item.get("name") for item in settings if isinstance(item, Mapping)}
    return bool(names & OPTUNA_ONLY_TPE)


IGNORES_UNKNOWN = {"cmaes": "goptuna", "sobol": "goptuna", "pbt": "pbt", "hyperband": "hyperband"}
"""The algorithms whose default Katib service ignores a setting name it does not know, each with
that service: goptuna, and the pbt and hyperband services, which read the settings they know
from all given (every other service fails the Experiment on one)."""


def _unknown(name: Any, algorithm: str, known: list[str]) -> str:
    """Why a setting ``name`` is refused: the names expected, the one it may be a misspelling of,
    and, where Katib's service would run the Experiment without it, that katuna does not."""
    said = f"{name!r} is not a setting of Katib's {algorithm}; expected one of: {', '.join(known) or 'none'}"
    close = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
    if close:
        said += f" (did you mean {close[0]!r}?)"
    return said + ignored_by_katib(algorithm)


def ignored_by_katib(algorithm: str) -> str:
    """What follows the refusal of a setting name ``algorithm``'s Katib service would ignore:
    that it would, and why katuna does not; nothing for an algorithm whose service refuses it."""
    if algorithm not in IGNORES_UNKNOWN:
        return ""
    return (f"; Katib's {IGNORES_UNKNOWN[algorithm]} service, which runs {algorithm}, ignores a name it does not "
            "know, where katuna refuses it so that a misspelt setting never runs without its value: remove it, "
            "or correct its name")


def _mixed(names: set[Any]) -> str:
    """Why ``tpe`` settings of both Katib services fit neither: each refuses the other's."""
    hyperopt = ", ".join(sorted(n for n in names if n in HYPEROPT_TPE - OPTUNA_TPE))
    optuna = ", ".join(sorted(n for n in names if n in OPTUNA_TPE - HYPEROPT_TPE))
    return (f"mixes the settings of Katib's two tpe services, each of which refuses the other's: {hyperopt} "
            f"(hyperopt's, which runs tpe by default) with {optuna} (Optuna's); expected the settings of one")


def setting_index(algorithm: Mapping[str, Any], optuna_name: str) -> int | None:
    """The position in ``algorithmSettings`` of the Katib setting that became ``optuna_name``."""
    known = SETTINGS.get(str(algorithm.get("algorithmName", "random")), {})
    for i, item in enumerate(algorithm.get("algorithmSettings") or []):
        setting = known.get(str(item.get("name"))) if isinstance(item, Mapping) else None
        if setting is not None and setting.optuna == optuna_name:
            return i
    return None
