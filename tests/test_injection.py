"""Parameter values with shell metacharacters reach the trial literally and execute nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import run_study

ARGV_TRIAL = Path(__file__).parent / "trials" / "argv.py"


def hostile_values(marker: Path) -> list[str]:
    """Values that would create ``marker`` if any shell or template engine interpreted them."""
    return [f"; touch {marker}", f"$(touch {marker})", f"`touch {marker}`", f"| touch {marker}",
            f"&& touch {marker}", f"\n touch {marker}", f"' ; touch {marker} '", f'" ; touch {marker} "',
            "${trialParameters.value}", "${trialSpec.Name}", "${HOME}", "$HOME", "*", "~", "%s%s%n",
            f"{{{{ touch {marker} }}}}", "-rf", "--help"]


def test_shell_metacharacters_in_a_categorical_value_reach_the_trial_literally(embedded, tmp_path: Path):
    marker = tmp_path / "executed"
    values = hostile_values(marker)
    out = tmp_path / "argv"
    out.mkdir()
    definition = {
        "name": "inject", "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "value", "type": "categorical", "values": values}],
        "algorithm": {"name": "grid"}, "parallelism": 3,
        "trialTemplate": {"command": [sys.executable, str(ARGV_TRIAL), "--value", "${trialParameters.value}",
                                      "v=${trialParameters.value}"],
                          "env": {"VALUE": "${trialParameters.value}", "ARGV_DIR": str(out)}},
    }
    study = run_study(embedded, definition, tmp_path)
    assert study.status == "completed"
    trials = embedded.store.trials("inject")
    assert sorted(t.params["value"] for t in trials) == sorted(values)
    assert all(t.state == "COMPLETE" for t in trials)
    for trial in trials:
        value = trial.params["value"]
        seen = json.loads((out / f"{trial.number}.json").read_text())
        assert seen == {"argv": ["--value", value, f"v={value}"], "env": value}
    assert not marker.exists()
    assert not list(tmp_path.glob("*touch*"))
