"""Metric lines parsed by Katib's default rule, and reduced per strategy."""

from __future__ import annotations

import math

from functions.core.metric_filters import default_matches
from functions.core.metric_summary import Summary
from functions.core.metrics import Observation, names_printed, parse_json_lines, parse_text


def reduced(observations: list[Observation], strategies: dict[str, str]) -> dict[str, float]:
    """One value per observed metric, as a trial's summary keeps it: its min, max or latest."""
    summary = Summary(strategies, keep=0)
    summary.add(observations)
    return summary.reduced()


def test_a_json_line_nested_past_pythons_recursion_limit_is_no_metric_line():
    """The metric-line parsers never raise on any text a trial prints."""
    nested = "[" * 30_000 + "]" * 30_000
    assert parse_json_lines([nested, '{"score": 0.5}'], ["score"]) == [Observation("score", 0.5)]


def test_names_are_compared_exactly():
    found = parse_text(["Validation-accuracy=0.91 accuracy=0.95 train_accuracy=0.99"], ["accuracy"])
    assert found == [Observation("accuracy", 0.95)]


def test_spacing_signs_and_exponents():
    found = parse_text(["loss = -1.5e-3, lr=+2E2 step-size=.5"], ["loss", "lr", "step-size"])
    assert [(o.metric, o.value) for o in found] == [("loss", -1.5e-3), ("lr", 200.0), ("step-size", 0.5)]


def test_a_leading_rfc3339_timestamp_is_kept():
    line = "2026-11-29T10:00:00.123Z accuracy=0.5"
    assert parse_text([line], ["accuracy"]) == [Observation("accuracy", 0.5, None, "2026-11-29T10:00:00.123Z")]
    assert parse_text(["notatime accuracy=0.5"], ["accuracy"]) == [Observation("accuracy", 0.5)]
    comma = "2026-11-29T10:00:00,5Z"
    assert parse_text([f"{comma} accuracy=0.5"], ["accuracy"])[0].timestamp == comma, "Go takes a comma too"
    for lower in ("2026-11-29t10:00:00Z", "2026-11-29T10:00:00z"):
        assert parse_text([f"{lower} accuracy=0.5"], ["accuracy"])[0].timestamp is None, "Go takes no lower case"


def test_step_or_epoch_marks_intermediate_values():
    found = parse_text(["epoch=3 loss=0.2", "step=10 loss=0.1", "loss=0.05"], ["loss"])
    assert [(o.value, o.step) for o in found] == [(0.2, 3), (0.1, 10), (0.05, None)]


def test_a_step_out_of_optunas_and_the_stores_range_marks_no_step():
    found = parse_text(["step=1e30 loss=0.4", "epoch=99999999999999999999 loss=0.3", "epoch=-1 loss=0.2",
                        "epoch=-1 step=7 loss=0.15", "step=2.9 loss=0.1"], ["loss"])
    assert [(o.value, o.step) for o in found] == [(0.4, None), (0.3, None), (0.2, None), (0.15, 7), (0.1, 2)]
    found = parse_json_lines(['{"step": 1e30, "loss": 0.4}', '{"epoch": -3, "loss": 0.2}'], ["loss"])
    assert [(o.value, o.step) for o in found] == [(0.4, None), (0.2, None)]


def test_a_json_integer_beyond_a_floats_range_is_an_infinity():
    huge = "1" + "0" * 400
    found = parse_json_lines([f'{{"loss": 0.5, "samples": {huge}, "step": {huge}}}', f'{{"samples": -{huge}}}'],
                             ["loss", "samples"])
    assert [(o.metric, o.value, o.step) for o in found] == [
        ("loss", 0.5, None), ("samples", math.inf, None), ("samples", -math.inf, None)]


def test_values_that_are_not_numbers_are_ignored():
    assert parse_text(["loss=", "loss=abc", "loss=nanometre", "loss=inference"], ["loss"]) == []


def test_nan_and_infinities_spelt_out_are_reports_of_them():
    found = parse_text(["loss=nan", "loss = -inf acc=NaN", "loss=+Infinity, step=2"], ["loss", "acc"])
    assert [(o.metric, str(o.value), o.step) for o in found] == [
        ("loss", "nan", None), ("loss", "-inf", None), ("acc", "nan", None), ("loss", "inf", 2)]


def test_an_objective_reported_once_as_nan_or_infinity_stays_so_whatever_its_strategy():
    from functions.core.metric_summary import Summary

    for strategy, values in (("min", (math.inf, 0.2)), ("max", (-math.inf, 0.2)), ("latest", (math.nan, 0.2))):
        summary = Summary({"loss": strategy, "acc": strategy}, objectives=["loss"])
        summary.add([Observation("loss", v) for v in values] + [Observation("acc", v) for v in values])
        reduced = summary.reduced()
        assert str(reduced["loss"]) == str(values[0]), strategy
        assert reduced["acc"] == 0.2, "a metric that is no objective keeps its strategy"


def test_custom_filters_replace_the_default():
    found = parse_text(['{metricName: loss, metricValue: 0.25}'], ["loss"],
                       [r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"])
    assert found == [Observation("loss", 0.25)]


def test_a_metric_printed_in_colour_is_read_as_katibs_collector_reads_it_and_a_filter_can_skip_the_colour():
    """Katib's default filter runs the ANSI escape's ``32m`` into the name (``32mloss``), so
    its collector records no ``loss``; katuna, whose text format is that filter, reads the same
    (docs/katib.md). The filter docs/study-format.md gives reads the coloured reports."""
    coloured = ["\x1b[32mloss=0.5\x1b[0m", "epoch=1 \x1b[1;32mloss=0.4\x1b[0m"]
    assert parse_text(coloured, ["loss"]) == []
    assert [name for name, _, _ in default_matches(coloured[0])] == ["32mloss"]
    skipping = r"(?:\x1b\[[0-9;]*m)?([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
    assert parse_text(coloured, ["loss"], [skipping]) == [Observation("loss", 0.5), Observation("loss", 0.4, 1)]


def test_json_lines():
    lines = ['{"epoch": 1, "loss": 0.5, "timestamp": "2026-11-29T10:00:00Z"}', "not json",
             '{"loss": "0.25", "other": 1}', "[1, 2]", '{"loss": NaN}']
    found = parse_json_lines(lines, ["loss"])
    assert [(o.value, o.step, o.timestamp) for o in found[:2]] == [
        (0.5, 1, "2026-11-29T10:00:00Z"), (0.25, None, None)]
    assert math.isnan(found[2].value)


def test_a_json_metric_is_a_top_level_number_or_numeric_text_and_a_repeated_key_keeps_its_last_value():
    """As docs/trials.md says: booleans, null, arrays and objects are no value, nested keys no
    metric, and Python's JSON reader keeps a repeated key's last value."""
    lines = ['{"score": true}', '{"score": null}', '{"score": [1]}', '{"score": {"score": 1}}',
             '{"metrics": {"score": 0.5}}', '{"score": " 0.3 "}', '{"score": 0.7, "x": {"score": 0.1}}',
             '{"score": "0.05"}', '{"score": 1, "score": 2}']
    assert [o.value for o in parse_json_lines(lines, ["score"])] == [0.7, 0.05, 2.0]


def test_reduction_strategies():
    obs = [Observation("loss", v) for v in (0.5, 0.2, 0.3)] + [Observation("acc", 0.1)]
    assert reduced(obs, {"loss": "min", "acc": "max"}) == {"loss": 0.2, "acc": 0.1}
    assert reduced(obs, {"loss": "max"})["loss"] == 0.5
    assert reduced(obs, {"loss": "latest"})["loss"] == 0.3
    assert math.isnan(reduced([Observation("loss", 1.0), Observation("loss", math.nan)], {"loss": "min"})["loss"])


def test_each_report_is_a_step_unless_the_output_names_its_steps():
    from functions.core.metrics import StepCounter

    katib_style = parse_text(["Epoch 1: loss=0.5 acc=0.1", "loss=0.4", "acc=0.2", "loss=0.3"], ["loss", "acc"])
    assert list(StepCounter("loss").steps(katib_style)) == [(1, 0.5), (2, 0.4), (3, 0.3)]
    named = parse_text(["epoch=1 loss=0.5", "epoch=2 loss=0.4", "loss=0.35"], ["loss"])
    assert list(StepCounter("loss").steps(named)) == [(1, 0.5), (2, 0.4)], "a final value after the epochs is no step"
    counter = StepCounter("loss")
    assert [list(counter.steps(parse_text([line], ["loss"]))) for line in ("loss=1", "loss=2")] == [[(1, 1.0)], [(2, 2.0)]]


def test_where_a_study_counts_reports_each_report_is_the_next_step_whatever_its_line_names():
    """``metricsCollector.steps: reports``, Katib's count toward its median rule's ``start_step``."""
    from functions.core.metrics import StepCounter

    lines = ["epoch=1 batch=0 loss=0.5", "epoch=1 batch=1 loss=0.4", "step=100 loss=0.3", "loss=0.2", "acc=0.9"]
    found = list(StepCounter("loss", every_report=True).steps(parse_text(lines, ["loss", "acc"])))
    assert found == [(1, 0.5), (2, 0.4), (3, 0.3), (4, 0.2)]


def test_a_json_value_is_read_as_katibs_parse_float_reads_it():
    """Python's ``float`` takes spaces around a number, non-ASCII digits and ``-nan``, and
    refuses hexadecimal numbers; Go's ``ParseFloat``, which Katib uses, does the opposite."""
    refused = ['{"loss": " 0.3 "}', '{"loss": "\u0660.\u0665"}', '{"loss": "1__0"}', '{"loss": "1_.5"}']
    lines = [*refused, '{"loss": "1_000"}', '{"loss": "0x1.8p1"}', '{"loss": "0.25"}']
    assert parse_json_lines(lines, ["loss"]) == [Observation("loss", v) for v in (1000.0, 3.0, 0.25)]
    assert parse_json_lines(['{"loss": "-nan"}', '{"loss": "+NaN"}'], ["loss"]) == []


def test_the_names_a_trial_printed_are_those_the_default_rule_reads_with_a_value_steps_aside():
    """What a failed trial's reason offers in place of an objective it never reported."""
    lines = ["epoch=1 loss=0.9 Validation-acc=0.5", "epoch=2 loss=0.8 lr=", "done"]
    assert names_printed(lines) == ["loss", "Validation-acc"]
    assert names_printed([" ".join(f"m{i}=1" for i in range(20))]) == [f"m{i}" for i in range(8)]
