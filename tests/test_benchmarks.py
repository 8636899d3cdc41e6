"""Every benchmark script still runs end to end: each at a tiny size, its figures present and sane.

No timing is asserted here: the targets live in the scripts' own output.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from warm_python import WarmPython

from functions.adapters.kubernetes_resources import LIST_PAGE

pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
NUMBER = r"-?\d+(\.\d+)?(e[-+]?\d+)?"


def figures(stdout: str) -> dict[str, str]:
    """The closing ``name=value`` lines."""
    return dict(re.findall(r"^(\w+)=(\S+)$", stdout, re.MULTILINE))


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmPython]:
    """Each script run in a process of its own, forked from one that imported their libraries."""
    warm = WarmPython(tmp_path_factory.mktemp("warm"))
    yield warm
    warm.close()


def run(warm: WarmPython, script: str, tmp_path: Path, *extra: str, timeout: float = 240,
        name: str | None = None) -> tuple[dict[str, str], dict]:
    """Run ``script`` at its quick size; its figures, and its ``<name>.json`` (default: the script's name)."""
    done = warm.run([str(BENCHMARKS / script), "--quick", "--out", str(tmp_path), *extra], tmp_path, timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    name = name or script.removesuffix(".py")
    assert (tmp_path / f"{name}.png").stat().st_size > 1000
    return figures(done.stdout), json.loads((tmp_path / f"{name}.json").read_text())


def test_a_quick_run_without_out_leaves_the_full_size_figures_alone(warm: WarmPython):
    """docs/performance.md suggests ``--quick``: its tiny-size figures go to an ignored folder of
    their own, never over the committed ones in benchmarks/results/."""
    committed = {path.name: path.read_bytes() for path in (BENCHMARKS / "results").glob("peer_lookup.*")}
    made = [BENCHMARKS / "quick-results" / f"peer_lookup.{kind}" for kind in ("json", "png")]
    for path in made:
        path.unlink(missing_ok=True)
    try:
        done = warm.run([str(BENCHMARKS / "peer_lookup.py"), "--quick"], Path.cwd(), 240)
        assert done.returncode == 0, done.stdout + done.stderr
        assert {path.name: path.read_bytes() for path in (BENCHMARKS / "results").glob("peer_lookup.*")} == committed
        assert all(path.stat().st_size > 0 for path in made)
        assert "benchmarks/quick-results/" in (BENCHMARKS.parent / ".gitignore").read_text().splitlines()
    finally:
        for path in made:
            path.unlink(missing_ok=True)


def number(value: str) -> float:
    assert re.fullmatch(NUMBER, value), value
    return float(value)


def test_overhead(warm: WarmPython, tmp_path: Path):
    """Every tuner runs its trials with the Python it is given (here a wrapper that counts its starts)."""
    starts = tmp_path / "starts.log"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho start >> "{starts}"\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    found, result = run(warm, "overhead.py", tmp_path, "--ray", "off", "--trial-python", str(python))
    assert result["trial_python"] == str(python)
    assert len(starts.read_text().splitlines()) == 3 + 4 * 10, \
        "3 bare trials, then 10 trials for each of katuna, Optuna in memory, on a journal and on RDB"
    assert number(found["overhead_ratio"]) > 0 and number(found["overhead_ratio_vs_persistent"]) > 0
    assert number(found["katuna_cpu_ms_per_trial"]) > 0
    assert number(found["optuna_rdb_ratio"]) > 0 and number(found["optuna_rdb_wall_s"]) > 0
    assert list(found)[-1] == "overhead_ratio", "the headline figure stays the last line"
    assert result["trials"] == 10 and len(result["runs"]["optuna+rdb"]) == 1
    assert result["ray_trials"] == 0 and not any(name.startswith("ray") for name in found)


def load_peers():
    """benchmarks/peers.py as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("peers", BENCHMARKS / "peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peers(tmp_path: Path):
    """The Optuna RDB peer leaves a study that optuna-dashboard could open: every trial complete."""
    import optuna

    database = tmp_path / "optuna.db"
    load_peers().run_optuna_rdb(3, database)
    storage = optuna.storages.RDBStorage(f"sqlite:///{database}")
    [summary] = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert all(t.value == (t.params["x"] - 2) ** 2 for t in trials), "the loss the trial process printed"


def test_overhead_refuses_a_trial_python_that_cannot_run(warm: WarmPython, tmp_path: Path):
    done = warm.run([str(BENCHMARKS / "overhead.py"), "--quick", "--ray", "off", "--trial-python",
                     str(tmp_path / "missing"), "--out", str(tmp_path)], tmp_path, 60)
    assert done.returncode == 2 and "--trial-python: expected an executable Python" in done.stderr, done.stderr
    assert not (tmp_path / "overhead.json").exists()


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray Tune is installed here")
def test_overhead_refuses_ray_when_it_is_not_installed(warm: WarmPython, tmp_path: Path):
    done = warm.run([str(BENCHMARKS / "overhead.py"), "--quick", "--ray", "on", "--out", str(tmp_path)], tmp_path, 60)
    assert done.returncode == 2 and "make bench-peers" in done.stderr, done.stderr
    assert not (tmp_path / "overhead.json").exists()


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray Tune is not in requirements.lock (it is large); `make bench-peers` installs it "
                           "into .venv-peers, where this test runs")
@pytest.mark.timeout(900)  # two Ray clusters started and stopped: minutes on a loaded machine
def test_overhead_beside_ray_tune(warm: WarmPython, tmp_path: Path):
    found, result = run(warm, "overhead.py", tmp_path, "--ray", "on", timeout=840)
    assert result["ray_trials"] == 4
    for prefix in ("ray", "ray_default"):
        assert number(found[f"{prefix}_ratio"]) > 0 and number(found[f"{prefix}_wall_ms_per_trial"]) > 0
        assert number(found[f"{prefix}_init_s"]) > 0
    assert len(result["runs"]["ray+tuned"]) == len(result["runs"]["ray+default"]) == 1


def test_handler_latency(warm: WarmPython, tmp_path: Path):
    found, result = run(warm, "handler_latency.py", tmp_path)
    assert number(found["own_ms_p50_at_60"]) > 0 and number(found["own_ms_p50_at_20"]) > 0
    assert number(found["sampler_ms_p50_at_60"]) > 0
    assert number(found["cold_start_s"]) > 0
    assert number(found["cold_ask_s"]) >= number(found["cold_start_s"]), "the next trial is asked for after the launch"
    assert number(found["cold_process_s"]) >= number(found["cold_ask_s"])
    assert 0 < number(found["cold_start_cpu_s"]) <= number(found["cold_process_cpu_s"])
    assert sorted(result["sizes"], key=int) == ["20", "60"]
    assert result["lookahead"] == 1
    assert number(found["parse_s"]) > 0 and number(found["writer_ms_p50_alone"]) > 0
    assert number(found["writer_ms_max_during_parse"]) > 0
    assert int(found["writer_events_during_parse"]) >= 0 and found["writer_refused_during_parse"] == "0"
    assert result["parse"]["parse_mb"] == 2


def test_scale(warm: WarmPython, tmp_path: Path):
    found, result = run(warm, "scale.py", tmp_path)
    assert found["completed"] == "1" and found["trials"] == "300"
    assert number(found["peak_rss_mb"]) > 0 and number(found["db_mb"]) > 0 and number(found["trials_per_s"]) > 0
    assert result["counts"]["complete"] == 300


def test_burst(warm: WarmPython, tmp_path: Path):
    found, result = run(warm, "burst.py", tmp_path)
    assert found["lost"] == "0" and found["duplicated"] == "0" and found["failed_posts"] == "0"
    assert number(found["events_per_s"]) > 0
    assert result["complete"] == result["told_complete"] == result["events"] == 60


def test_search_quality(warm: WarmPython, tmp_path: Path):
    found, result = run(warm, "search_quality.py", tmp_path)
    for figure in ("wins_vs_random", "lookahead_wins_vs_random", "lookahead_wins_vs_tpe"):
        wins, functions = found[figure].split("/")
        assert functions == "2" and 0 <= int(wins) <= 2
    assert all(0 <= number(found[f"svm_error_{a}"]) < 1 for a in ("tpe", "random", "cmaes"))
    regrets = result["median_regret"]
    assert all(regrets[f][a] >= 0 for f in regrets for a in ("tpe", "tpe-ahead", "random", "cmaes"))


def test_pruning(warm: WarmPython, tmp_path: Path):
    found, result = run(warm, "pruning.py", tmp_path)
    assert 0 <= number(found["epochs_saved_pct"]) < 100
    assert all(0 <= number(found[f"{p}_epochs_saved_pct"]) < 100 for p in ("median", "asha", "hyperband"))
    assert result["summary"]["none"]["epochs"] == 8 * 5, "without pruning every epoch runs"


def test_ui_render(warm: WarmPython, tmp_path: Path):
    found, result = run(warm, "ui_render.py", tmp_path)
    assert result["trials"] == 200 and set(result["pages"]) >= {"study_page", "trial_table", "csv_export"}
    assert all(number(found[f"{page}_ms"]) > 0 for page in result["pages"])
    assert result["pages"]["csv_export"]["bytes"] > 200 * 10, "the export holds every trial"
    assert result["pages"]["study_page"]["sent_bytes"] == result["pages"]["study_page"]["bytes"], "a page goes as it is"
    assert 0 < int(found["charts_sent_bytes"]) < int(found["charts_bytes"]) / 3, "charts go gzipped"
    assert number(found["cli_trials_table_s"]) > 0 and number(found["cli_trials_table_mb"]) > 0


def test_pareto_front(warm: WarmPython, tmp_path: Path):
    """A multi-objective study's view: its front computed, shown again, computed after a change;
    its Pareto chart; a trial's write to a kept front of 100 and 300 trials."""
    found, result = run(warm, "pareto_front.py", tmp_path)
    assert result["trials"] == 500 and 0 < result["front_size"] <= 500
    assert all(number(found[name]) > 0 for name in ("first_ms", "again_ms", "after_change_ms", "chart_ms",
                                                    "front_write_100_ms", "front_first_write_300_ms"))
    assert result["chart_note"] is None and number(found["chart_bytes"]) > 0, "500 trials: every one drawn"


def test_history_load(warm: WarmPython, tmp_path: Path):
    """A fresh process's first suggestion of a new study beside a study past its first snapshot,
    and that study's next; a wide study's parallel coordinates charted in a fresh process."""
    found, result = run(warm, "history_load.py", tmp_path)
    measured = result["sizes"]["6000"]
    assert measured["history"] == 1, "the new study loads its own first trial, none of the other's"
    assert measured["large_history"] == 6_001, "the large study's trials and its next"
    assert measured["snapshot_bytes"] > 6_000 * 100 and number(found["load_us_per_trial"]) > 0
    assert number(found["first_trial_s"]) > 0 and number(found["large_next_trial_s"]) > 0
    assert found["history_trials"] == "6000"
    assert result["wide_chart"]["trials"] == 40 and found["wide_chart_drawn"] == "40"
    assert number(found["wide_chart_s"]) > 0 and number(found["wide_chart_bytes"]) > 40 * 256


def test_reliability(warm: WarmPython, tmp_path: Path):
    found, result = run(warm, "reliability.py", tmp_path)
    assert found["load_5xx_other_than_503"] == "0"
    assert number(found["load_requests_per_second"]) > 0
    assert number(found["peak_rss_loud_mb"]) > 0 and number(found["peak_rss_quiet_mb"]) > 0
    assert result["events"] == 60
    assert number(found["flood_study_seconds_alone"]) > 0 and number(found["flood_study_seconds_under_flood"]) > 0
    assert all(number(found[f"healthz_{p}_ms"]) > 0 for p in ("p50", "p95", "p99", "max"))
    statuses = result["flood"]["statuses"]
    assert {"text_plain", "no_token", "oversize", "forged_event", "bad_study"} <= set(statuses)
    assert int(found["flood_requests"]) == sum(sum(by_status.values()) for by_status in statuses.values())
    assert found["flood_accepted"] == "0", statuses
    assert not any(int(status) >= 500 for by_status in statuses.values() for status in by_status), statuses


LIBRARIES = ("cluster_simulation.py", "instant.py", "report.py", "standins.py", "trivial_trial.py")
"""Modules the benchmark scripts import, not scripts of their own."""


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name not in LIBRARIES))
def test_every_script_is_smoke_tested(script: str):
    assert f"def test_{script.removesuffix('.py')}(" in Path(__file__).read_text()


def test_progress_scan(warm: WarmPython, tmp_path: Path):
    """Through the real executor and client against the Kubernetes stand-in on a simulated clock:
    every running trial's log read once a round, and nothing written to Optuna's journal."""
    found, result = run(warm, "progress_scan.py", tmp_path)
    assert [r["reads"] for r in result["rounds"]] == [result["trials"]] * 3, "each running trial's log once a round"
    assert found["journal_records_per_round"] == "0"
    assert number(found["store_cpu_ms_per_trial"]) > 0 and number(found["scan_ms_per_trial"]) > 0
    assert list(found)[-1] == "scan_ms_per_trial"


def test_cluster_requests(warm: WarmPython, tmp_path: Path):
    """A look at every running trial, a progress scan and the study's end, counted from the
    Kubernetes stand-in's audit log: a few requests for the whole study, not a few per trial;
    then the tick's passes over the stored studies, ended and running, timed."""
    found, result = run(warm, "cluster_requests.py", tmp_path)
    assert result["requests"]["look"] == {"list jobs": 1, "list pods": 1}
    stop = dict(result["requests"]["stop"])
    deletes = stop.pop("deletecollection jobs")
    assert stop == {"list pods": 1, "get pods": result["trials"]}, \
        "the pods listed together, and one read of each log's last lines before the Jobs go"
    # One delete for the trials whose logs were read in each round of a second (a loaded machine
    # reads them over a few rounds), never one a trial.
    assert 1 <= deletes <= result["trials"] // 4, deletes
    assert result["requests"]["scan"]["get pods"] == result["trials"], "one log read a trial"
    assert result["requests"]["sweep"] == {"list jobs": -(-result["kept"] // LIST_PAGE) + 1}, \
        "a list of the kept Jobs a page, and one of the Jobs deleting checkpoints"
    assert (result["ended"], result["tick_events"]) == (40, 0), \
        "every stored study's resource as the store has it: the tick's passes find nothing to send"
    assert number(found["resource_check_cpu_ms"]) > 0 and number(found["stray_sweep_cpu_ms"]) > 0
    assert list(found) == ["look_requests_per_trial", "scan_requests_per_trial", "stop_requests", "sweep_requests",
                           "sweep_peak_mb", "resource_check_cpu_ms", "stray_sweep_cpu_ms"]


@pytest.mark.parametrize(("cloud", "name"), [("gke", "cluster_cost"), ("eks", "cluster_cost_eks")])
def test_cluster_cost(warm: WarmPython, tmp_path: Path, cloud: str, name: str):
    """Through katuna's Kubernetes executor and node-pool adapter (GKE's, or EKS's against moto)
    against the stand-ins on a simulated clock, with spot interruptions frequent enough to hit the
    small study; each cloud's figures in a file of their own."""
    found, result = run(warm, "cluster_cost.py", tmp_path, "--preemptions", "2", "--cloud", cloud, name=name)
    assert result["cloud"] == cloud
    assert [path.name for path in tmp_path.glob("cluster_cost*.json")] == [f"{name}.json"]
    policies = ["spot", "on_demand", "fixed", "spot_shared_first", "spot_steady"]
    assert [r["policy"] for r in result["results"]] == policies
    assert [r["seed"] for r in result["results"]] == [18, None, None, 18, 18], "a smoke run is one draw"
    for policy in policies:
        assert number(found[f"{policy}_makespan_h"]) > 0 and number(found[f"{policy}_node_hours"]) > 0
        assert number(found[f"{policy}_cost_usd"]) > 0
    assert 0 < number(found["spot_measured_node_hours"]) <= number(found["spot_node_hours"]), \
        "katuna measures the registered nodes' hours, their boot excluded"
    for prefix in ("first_study_", ""):
        assert 0 < number(found[f"{prefix}cost_ratio_vs_fixed"]) < 1, "spot nodes cost less than on-demand ones"
        assert number(found[f"{prefix}makespan_ratio_vs_fixed"]) >= 1, "a pool that boots its nodes cannot finish first"
    assert [r["complete"] for r in result["results"]] == [result["trials"]] * len(policies)
    assert result["results"][0]["preemptions"] > 0, "spot nodes were taken back, and every trial still completed"


def load_cluster_cost(monkeypatch: pytest.MonkeyPatch):
    """benchmarks/cluster_cost.py as a module, beside the modules it imports from benchmarks/."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("cluster_cost", BENCHMARKS / "cluster_cost.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "cluster_cost", module)
    spec.loader.exec_module(module)
    return module


def test_cluster_cost_takes_a_spot_price_of_zero_and_refuses_a_negative_one(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture, tmp_path: Path):
    cost = load_cluster_cost(monkeypatch)
    assert cost.prices(cost.arguments().parse_args(["--spot-price", "0"])) == {"spot": 0.0, "on_demand": 0.134}
    for flag, value, expected in (("--spot-price", "-1", "a finite number of 0 or more"),
                                  ("--preemptions", "nan", "a finite number of 0 or more"),
                                  ("--on-demand-price", "0", "a finite number above 0"),
                                  ("--seeds", "1,x", "distinct whole numbers separated by commas"),
                                  ("--seeds", "3,3", "distinct whole numbers separated by commas")):
        with pytest.raises(SystemExit):
            cost.main(["--quick", "--out", str(tmp_path), flag, value])
        assert f"argument {flag}: expected {expected}, got {value!r}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "nothing ran"


def test_cluster_cost_states_the_median_of_its_draws_and_the_worst(monkeypatch: pytest.MonkeyPatch):
    """Several draws of the interruptions: each ratio is the median of the draws' own ratios to
    the one fixed pool, and the worst is printed beside it."""
    cost = load_cluster_cost(monkeypatch)

    def row(policy: str, seed: int | None, makespan: float, dollars: float) -> dict:
        return {"policy": policy, "seed": seed, "makespan_h": makespan, "cost_usd": dollars, "node_hours": dollars,
                "measured_node_hours": dollars, "first_trial_s": 0.0, "launch_wait_s": 0.0}

    fixed = [row("on_demand", None, 1.0, 10.0), row("fixed", None, 1.0, 10.0)]
    drawn = [row(policy, seed, makespan, dollars) for seed, makespan, dollars in ((1, 1.2, 3.0), (2, 1.1, 4.0),
                                                                                 (3, 1.3, 3.5))
             for policy in ("spot", "spot_shared_first", "spot_steady")]
    figures = cost.ratios(fixed + drawn)
    assert figures["makespan_ratio_vs_fixed"] == pytest.approx(1.2)
    assert figures["makespan_ratio_vs_fixed_max"] == pytest.approx(1.3)
    assert figures["cost_ratio_vs_fixed"] == pytest.approx(0.35)
    assert figures["cost_ratio_vs_fixed_max"] == pytest.approx(0.4)
    assert figures["spot_steady_makespan_h"] == pytest.approx(1.2)
    assert "makespan_ratio_vs_fixed_max" not in cost.ratios(fixed + drawn[:3]), "one draw has no worst"


def test_cluster_cost_submits_its_study_as_the_api_does(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The study goes through the service's own submission (its checks, the access review the
    cluster answers), so a study the API refuses is refused here too, and nothing is stored."""
    from functions.core.errors import InvalidStudy

    cost = load_cluster_cost(monkeypatch)
    cloud = cost.make_cloud("gke", cost.SimulatedClock(), 0.0, 1)
    sim = cost.Simulation(tmp_path, cloud, cost.Reference(trials=2, parallelism=1))
    try:
        study = cost.definition(cost.Reference(trials=2, parallelism=1), "gke", "spot")
        with pytest.raises(InvalidStudy, match="kubernetes.serviceAccountName"):
            sim.submit({**study, "kubernetes": {"serviceAccountName": "katuna"}})
        assert not sim.deps.store.list_studies(), "refused before anything was stored"
        record = sim.submit(study)
        sim.settle()
        assert sim.deps.store.pool_use(record.uid) is not None, "its study.created reached the handlers"
    finally:
        sim.close()
        cloud.close()


def test_process_exit(warm: WarmPython, tmp_path: Path):
    """A command and a stopping service are timed to their ends; the service's workers go before it."""
    found, result = run(warm, "process_exit.py", tmp_path)
    assert all(len(runs) == 2 for runs in result["runs"].values())
    assert all(number(found[key]) > 0 for key in ("command_s", "command_teardown_s", "serve_stop_s"))
    assert number(found["serve_workers_gone_s"]) <= number(found["serve_stop_s"])


def test_metrics_wrapper(warm: WarmPython, tmp_path: Path):
    """The wrapper copies the metrics file both ways; the block copy reads it in fewer system calls."""
    found, result = run(warm, "metrics_wrapper.py", tmp_path)
    assert all(len(runs) == 2 for runs in result["runs"].values())
    assert number(found["block_s"]) > 0 and number(found["shell_s"]) > 0
    assert int(found["block_reads"]) < int(found["shell_reads"])


def test_cli_start(warm: WarmPython, tmp_path: Path):
    """A bare Python, the list of commands and the list of studies are each timed to their ends."""
    found, result = run(warm, "cli_start.py", tmp_path)
    assert all(len(runs) == 2 for runs in result["runs"].values())
    assert list(found) == ["python_s", "cli_help_s", "cli_studies_s"]
    assert all(number(value) > 0 for value in found.values())


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc/net/tcp")
def test_peer_lookup(warm: WarmPython, tmp_path: Path):
    """Both lookups find the caller's owner, before and after the TIME_WAIT sockets are added."""
    found, result = run(warm, "peer_lookup.py", tmp_path)
    assert [r["time_wait_added"] for r in result["results"]] == [0, 500]
    assert int(found["tables_sockets"]) >= 500, "the closed connections are still listed, in TIME_WAIT"
    assert number(found["tables_us_per_lookup"]) > 0 and number(found["sock_diag_us_per_lookup"]) > 0
    assert list(found)[-1] == "sock_diag_us_per_lookup"


def test_pbt_decision(warm: WarmPython, tmp_path: Path):
    """A pbt decision reads the few trials it needs, and decides as it did reading every one."""
    found, result = run(warm, "pbt_decision.py", tmp_path)
    assert [row[0] for row in result["rows"]] == [200, 1000]
    assert all(row[1] < 200 for row in result["rows"]), "a decision reads a few generations, not every trial"
    assert all(number(found[f"{kind}_ms_at_{size}"]) > 0 for kind in ("decision", "every_trial") for size in (200, 1000))


@pytest.mark.timeout(660)
def test_large_study(warm: WarmPython, tmp_path: Path):
    """Every command and request answers for both studies, and the front shown again after a trial
    reads fewer rows than its first computation."""
    found, result = run(warm, "large_study.py", tmp_path, timeout=600)  # its commands are many processes: slow under load
    assert result["trials"] == int(found["trials"]) == 2_000
    assert all(r["bytes"] > 0 and r["peak_mb"] > 0 for r in result["commands"].values())
    assert all(r["bytes"] > 0 for r in result["requests"].values())
    front = result["front"]
    assert front["front_size"] > 0 and front["after_trial_steps"] < front["first_steps"]
    assert all(number(found[key]) > 0 for key in ("slowest_request_s", "chart_pareto_warm_s", "front_after_trial_ms"))
