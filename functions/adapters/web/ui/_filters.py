"""How the pages show times, durations, numbers and a trial's text (Jinja filters)."""

from __future__ import annotations

from functions.adapters.web import tables
from functions.adapters.web.ui._blueprint import blueprint
from functions.core import trial_csv
from functions.core.log_reads import without_escapes
from functions.core.memory_sizes import memory
from functions.core.parameters import is_number, numeric
from functions.core.spec import Study
from functions.core.views import cost_text, figure


@blueprint.app_template_filter("when")
def _when(value: float | None) -> str:
    """A time as the pages show it, saying its zone."""
    shown = trial_csv.timestamp(value)
    return f"{shown} UTC" if shown else ""


@blueprint.app_template_filter("span")
def _span(seconds: float | None) -> str:
    """A duration as the pages show it; one the wall clock gave less than nothing (set back
    between its two readings, or read on two replicas apart), as none."""
    if seconds is None:
        return ""
    seconds = max(seconds, 0.0)
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f}s"


@blueprint.app_template_filter("num")
def _num(value) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


blueprint.app_template_filter("figure")(figure)
blueprint.app_template_filter("cost")(cost_text)
blueprint.app_template_filter("memory")(memory)


@blueprint.app_template_filter("plain")
def _plain(text: str | None) -> str:
    """Text a trial printed, without the terminal escape sequences that colour it."""
    return without_escapes(text or "")


blueprint.app_template_filter("is_bound")(tables.is_bound)


LONG_CELL = 24
"""The most characters a table cell shows on one line: a longer value (a categorical parameter's
path, a long label) wraps within its column, where it would widen its table past the page."""


@blueprint.app_template_test("label")
def _label(value: object) -> bool:
    """Whether a cell's value is a label (text that is no number, true or false) rather than a
    number: a label's cell is left-aligned as text is, a number's right-aligned (``td.num``), a
    discrete parameter written as strings (``"16"``) being a number."""
    return not is_number(value)


@blueprint.app_template_filter("cell_class")
def _cell_class(value: object, shown: str) -> str:
    """The classes of a parameter's or metric's cell: ``num`` for a number, ``long`` for a
    value its cell wraps, none for a short label."""
    return " ".join(name for name, holds in (("num", not _label(value)), ("long", _long(shown))) if holds)


@blueprint.app_template_test("long")
def _long(shown: str) -> bool:
    """Whether a cell's text is longer than :data:`LONG_CELL` characters (its cell wraps it)."""
    return len(shown) > LONG_CELL


NUMBER_FIELDS = frozenset({"number", "generation", "parent", "duration"})
"""The trial table's fields whose cells are numbers in every study."""


@blueprint.app_template_filter("number_fields")
def _number_fields(spec: Study) -> frozenset[str]:
    """The trial table's fields whose cells are all numbers, right-aligned (``td.num``), their
    header right-aligned over them (``th.num``): the metrics, a parameter whose values are all
    numbers (:func:`~functions.core.parameters.numeric`, the CLI's rule too), and
    :data:`NUMBER_FIELDS`."""
    numbers = {f"param:{p.name}" for p in spec.parameters if numeric(p)}
    return NUMBER_FIELDS | numbers | {f"metric:{name}" for name in spec.metric_names}
