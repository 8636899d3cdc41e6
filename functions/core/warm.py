"""Warm start: results known before a study begins, given to its sampler as completed trials.

They come inline (``trials``: parameters and objective values, say from an earlier tool) or
from an earlier study in the same database (``study``). They inform the sampler only: they are
not trials of the new study and do not count toward its limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from functions.core.parameters import ChoiceParameter, IntParameter, Parameter
from functions.core.reader import Reader, is_number, join
from functions.core.space import admits
from functions.core.spec import KnownResult, WarmStart

PATH = "warmStart"


def fits(parameters: Sequence[Parameter], params: Mapping[str, Any]) -> bool:
    """Whether ``params`` is a point of the space: each applicable parameter, within its range."""
    active = [p for p in parameters if p.active(params)]
    if set(params) != {p.name for p in active}:
        return False
    for parameter in active:
        try:
            if not admits(parameter, params[parameter.name]):
                return False
        except (ValueError, TypeError, OverflowError):
            return False
    return True


def _from_row(raw: Mapping[str, Any], parameters: Sequence[Parameter], objectives: Sequence[str]) -> dict[str, Any]:
    """A CSV row (strings) as a known result: parameter columns typed like their parameters,
    objective columns as values; empty cells are parameters the trial did not have."""
    row = raw["csv"]
    params: dict[str, Any] = {}
    for parameter in parameters:
        cell = (row.get(parameter.name) or "").strip()
        if cell:
            params[parameter.name] = _typed(parameter, cell)
    values = [_number(row.get(name)) for name in objectives]
    return {"params": params, "values": values}


def _typed(parameter: Parameter, cell: str) -> Any:
    if isinstance(parameter, ChoiceParameter):
        return next((v for v in parameter.values if str(v) == cell), cell)
    number = _number(cell)
    whole = isinstance(parameter, IntParameter) and number is not None and number.is_integer()
    return int(number) if whole and number is not None else number


def _number(cell: Any) -> float | None:
    try:
        return float(cell)
    except (TypeError, ValueError):
        return None


def parse_warm_start(r: Reader, data: Any, parameters: Sequence[Parameter], objectives: Sequence[str]) -> WarmStart | None:
    if data is None:
        return None
    item = r.mapping(data, PATH, {"study", "trials"})
    study = r.get(item, "study", PATH, "str")
    results = []
    for i, raw in enumerate(r.get(item, "trials", PATH, "list") or []):
        where = f"{PATH}.trials[{i}]"
        entry = _from_row(raw, parameters, objectives) if isinstance(raw, Mapping) and "csv" in raw else raw
        entry = r.mapping(entry, where, {"params", "value", "values"})
        params = r.get(entry, "params", where, "mapping", required=True) or {}
        values = entry.get("values", [entry["value"]] if "value" in entry else None)
        if not isinstance(values, list) or len(values) != len(objectives) or not all(map(is_number, values)):
            r.fail(where, f"expected value (or values: a list of {len(objectives)}) with finite numbers")
            continue
        if parameters and not fits(parameters, params):
            r.fail(join(where, "params"), "expected a value for each parameter that applies, within its range")
            continue
        results.append(KnownResult(dict(params), tuple(float(v) for v in values)))
    if study is None and not results:
        r.fail(PATH, "expected study (an earlier study's name) or trials")
    return WarmStart(study, tuple(results))
