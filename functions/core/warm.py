"""Warm start: results known before a study begins, given to its sampler as completed trials.

They come inline (``trials``: parameters and objective values, say from an earlier tool) or
from an earlier study in the same database (``study``). They inform the sampler only: they are
not trials of the new study and do not count toward its limits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from functions.core.reader import Reader, join
from functions.core.space import distribution
from functions.core.spec import Parameter

PATH = "warmStart"


@dataclass(frozen=True)
class KnownResult:
    params: Mapping[str, Any]
    values: tuple[float, ...]


@dataclass(frozen=True)
class WarmStart:
    study: str | None = None
    trials: tuple[KnownResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.study:
            out["study"] = self.study
        if self.trials:
            out["trials"] = [{"params": dict(t.params), "values": list(t.values)} for t in self.trials]
        return out


def fits(parameters: Sequence[Parameter], params: Mapping[str, Any]) -> bool:
    """Whether ``params`` is a point of the space: each applicable parameter, within its range."""
    active = [p for p in parameters if p.active(params)]
    if set(params) != {p.name for p in active}:
        return False
    for parameter in active:
        dist = distribution(parameter)
        try:
            if not dist._contains(dist.to_internal_repr(params[parameter.name])):
                return False
        except (ValueError, TypeError):
            return False
    return True


def parse_warm_start(r: Reader, data: Any, parameters: Sequence[Parameter], n_objectives: int) -> WarmStart | None:
    if data is None:
        return None
    item = r.mapping(data, PATH, {"study", "trials"})
    study = r.get(item, "study", PATH, "str")
    results = []
    for i, raw in enumerate(r.get(item, "trials", PATH, "list") or []):
        where = f"{PATH}.trials[{i}]"
        entry = r.mapping(raw, where, {"params", "value", "values"})
        params = r.get(entry, "params", where, "mapping", required=True) or {}
        values = entry.get("values", [entry["value"]] if "value" in entry else None)
        if not isinstance(values, list) or len(values) != n_objectives or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            r.fail(where, f"expected value (or values: a list of {n_objectives}) with finite numbers")
            continue
        if parameters and not fits(parameters, params):
            r.fail(join(where, "params"), "expected a value for each parameter that applies, within its range")
            continue
        results.append(KnownResult(dict(params), tuple(float(v) for v in values)))
    if study is None and not results:
        r.fail(PATH, "expected study (an earlier study's name) or trials")
    return WarmStart(study, tuple(results))
