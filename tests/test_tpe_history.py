"""A study of ``tpe`` or ``multivariate-tpe`` with three or more objectives holds at most
``KATUNA_MAX_TPE_HISTORY`` trials in its Optuna history: Optuna's multi-objective TPE splits the
history at every suggestion by a hypervolume subset selection whose cost grows about as the cube
of its trials, in the database's write lock. A study whose ``maxTrials`` would pass it is refused
at ``maxTrials``; one without ``maxTrials`` is capped there, as the other history limits cap it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import study_definition

from functions.adapters.web import create_app
from functions.cli import main
from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.limits import DEFAULTS, Limits
from functions.core.records import TrialCap
from functions.core.trial_cap import admit, implicit_cap
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.runtime import Runtime
from functions.settings import Settings

OBJECTIVES = [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "minimize"},
              {"name": "acc", "direction": "maximize"}, {"name": "time", "direction": "minimize"}]


def several(count: int, algorithm: str = "tpe", **overrides: Any) -> dict[str, Any]:
    """A study of ``count`` objectives, by ``algorithm``."""
    return study_definition(name="front", objective={"metrics": OBJECTIVES[:count]}, algorithm={"name": algorithm},
                            **overrides)


def test_the_limit_is_two_thousand_trials_by_default():
    assert DEFAULTS.tpe_history == 2_000


@pytest.mark.parametrize("algorithm", ["tpe", "multivariate-tpe"])
@pytest.mark.parametrize("count", [3, 4])
def test_tpe_of_three_or_more_objectives_is_refused_past_the_limit_at_max_trials(algorithm, count):
    spec = parse_study(several(count, algorithm, maxTrials=2_001))
    _, problem = admit(spec, DEFAULTS, 0, 0)
    assert problem is not None and problem.path == "maxTrials"
    assert problem.message.startswith(f"{algorithm} of 3 or more objectives holds at most 2,000 trials in a study's "
                                      "Optuna history (set by KATUNA_MAX_TPE_HISTORY), and this study may create "
                                      "2,001 (maxTrials)"), problem.message
    assert "Use nsga2 or nsga3, or fewer objectives" in problem.message, "says what takes more"
    assert admit(parse_study(several(count, algorithm, maxTrials=2_000)), DEFAULTS, 0, 0) == (None, None)


@pytest.mark.parametrize(("count", "algorithm"), [(2, "tpe"), (2, "multivariate-tpe"), (3, "nsga2"), (3, "random")])
def test_two_objectives_and_other_algorithms_take_long_studies(count, algorithm):
    """Two objectives have Optuna's fast two-dimensional selection; other samplers make none."""
    assert admit(parse_study(several(count, algorithm, maxTrials=50_000)), DEFAULTS, 0, 0) == (None, None)


def test_a_warm_start_s_known_results_and_a_restart_s_history_count():
    spec = parse_study(several(3, maxTrials=1_500))
    _, problem = admit(spec, DEFAULTS, 0, 0, known=501)
    assert problem is not None and "takes 501 known results (warmStart) as trials of its history and may create " \
                                   "1,500 (maxTrials) where 1,499 fit" in problem.message, problem
    assert admit(spec, DEFAULTS, 0, 0, known=500) == (None, None)
    restarted = parse_study(several(3, maxTrials=2_001))
    _, problem = admit(restarted, DEFAULTS, 1_000, 0, made=1_000)
    assert problem is not None and problem.path == "maxTrials", "a restart past the limit is refused"
    assert admit(parse_study(several(3, maxTrials=2_000)), DEFAULTS, 1_000, 0, made=1_000) == (None, None)


def test_a_study_without_max_trials_is_capped_at_the_limit_naming_it():
    definition = several(3, timeBudget="1h")
    del definition["maxTrials"]
    spec = parse_study(definition)
    assert implicit_cap(spec, DEFAULTS, 0, 0) == TrialCap(2_000, "KATUNA_MAX_TPE_HISTORY")
    assert implicit_cap(spec, DEFAULTS, 0, 0, known=300) == TrialCap(1_700, "KATUNA_MAX_TPE_HISTORY")
    assert implicit_cap(spec, Limits(history=1_000), 0, 0) == TrialCap(1_000, "KATUNA_MAX_HISTORY"), \
        "the lower limit bounds it"
    two = several(2, timeBudget="1h")
    del two["maxTrials"]
    assert implicit_cap(parse_study(two), DEFAULTS, 0, 0) == TrialCap(100_000, "KATUNA_MAX_HISTORY")


def test_katuna_run_refuses_the_study_naming_the_field_and_the_setting_and_stores_nothing(tmp_path: Path):
    study = tmp_path / "front.yaml"
    study.write_text(yaml.safe_dump(several(3, maxTrials=6)))
    result = CliRunner().invoke(main, ["run", str(study), "--db", str(tmp_path / "katuna.db")],
                                env={"KATUNA_MAX_TPE_HISTORY": "5"})
    assert result.exit_code == 2, result.output
    assert "maxTrials" in result.output and "at most 5 trials" in result.output, result.output
    assert "KATUNA_MAX_TPE_HISTORY" in result.output, result.output
    assert not (tmp_path / "katuna.db").exists(), "nothing made"


def test_the_service_refuses_it_with_422_and_caps_one_without_max_trials_as_it_shows(tmp_path: Path):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", workdir=tmp_path, limits=Limits(tpe_history=5)))
    try:
        client = create_app(runtime).test_client()
        refused = client.post("/studies", json=several(3, maxTrials=6))
        assert refused.status_code == 422, refused.get_json()
        assert [p["path"] for p in refused.get_json()["problems"]] == ["maxTrials"]
        assert client.get("/studies/front").status_code == 404, "nothing stored"
    finally:
        runtime.close()
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(tpe_history=5)))
    definition = several(3, timeBudget="1h")
    del definition["maxTrials"]
    record = runner.submit(*load_study(yaml.safe_dump(definition)), tmp_path)
    assert record.trial_cap == TrialCap(5, "KATUNA_MAX_TPE_HISTORY")
    runner.close()
    with pytest.raises(InvalidStudy):
        Embedded(Settings(db=tmp_path / "other.db", limits=Limits(tpe_history=5))).submit(
            *load_study(yaml.safe_dump(several(4, "multivariate-tpe", maxTrials=6))), tmp_path)
